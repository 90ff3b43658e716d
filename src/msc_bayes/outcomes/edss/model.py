"""EDSS change: one hierarchical model in which every reporting format is an exact likelihood.

The formats are in :mod:`msc_bayes.outcomes.edss.formats`, one module each; the units and
formats per unit are chosen by :mod:`msc_bayes.outcomes.edss.prepare`.

Each modelled unit u (a study arm at its chosen timepoint) has a latent mean EDSS change

    theta[u] = mu + X[u] @ beta - msc_effect * control[u] + e[study[u]],   e[s] ~ N(0, tau)

and, where a format needs it, a within-arm SD of change sigma[u]. A patient's change is
a latent normal Delta ~ N(theta, sigma) observed on the 0.5-step EDSS grid, i.e. rounded
to the nearest half point. The formats (a row contributes through what it has):

- ``change``: mean change with SD, SE or CI: y ~ N(theta, se), se known (exactly the
  normal-normal random-effects model in the plain case);
- ``baseline_followup``: follow-up minus baseline mean ~ N(theta, sigma/sqrt(n)) with
  sigma^2 = sd_b^2 + sd_f^2 - 2 rho sd_b sd_f; rho (pre-post correlation) is a parameter
  with a prior, and the reported SDs are data on sd_b, sd_f ((n-1)s^2/sd^2 ~ chi2(n-1));
- ``means_only``: a mean change with no SD: ~ N(theta, sigma/sqrt(n)) through sigma;
- ``counts``: improved / stable / worsened (or collapsed categories): a multinomial over
  every split of n consistent with what is reported, in closed form (a multinomial, or a
  binomial of the one category the report fixes; see `count_groups`); with threshold t,
  improved means a rounded change <= -t, i.e. Delta < -t + 0.25, worsened Delta >= t - 0.25;
- ``patient``: each patient's change d (a multiple of 0.5): P(d - 0.25 <= Delta < d + 0.25).

Per unit, the formats are used in the spec's priority order (only the first available, so
the same patients are not counted twice) unless `combine = "all"`.

Parameterisation of the study effects e. The formats ``change``,
``baseline_followup`` and ``means_only`` are normal terms y ~ N(theta, se) (weight w =
`unit_weight`); given every other parameter, e is then normal with precision
(1 + r) / tau^2, r = tau^2 * sum(w / se^2) over the study's normal terms, and mean
tau^2 * b / (1 + r), b = sum(w * (y - theta + e) / se^2). The free ``study_offset`` z is e
standardised by that conditional mean and SD: e / tau = tau * b / (1 + r) + z / sqrt(1 + r),
and the Potential ``study_offset_jacobian`` adds the N(0, 1) prior of e / tau and the
Jacobian, so the posterior is exactly that of the plain non-centred model (e / tau ~ N(0, 1)).
This removes the funnels of the plain form between a precise study's effect and tau
(Petrou 2020) or the SD of change (Petrou 2021, sigma -> 0 as rho -> 1): on the bundled data
at target_accept 0.99, 0 divergences on 6 seeds and ~40% fewer leapfrog steps than the plain
form (which diverged on some seeds); on 20 seeds (4 x 1000 draws), 3 divergences on one. A study
with no normal term (counts, patient data only, or left out with weight 0) has r = b = 0, i.e. the
plain non-centred form. ``theta`` and every
reported quantity keep their meaning; ``study_offset`` is the standardised coordinate.

Parameterisation of the locations L = (mu, beta, msc_effect). theta without the study effect is
A @ L (A: 1, the design, minus the control indicator net of carry-over). With the study effects
integrated out of the normal terms (per study, precision diag(p) - c p p^T with p = w / se^2 and
c = tau^2 / (1 + tau^2 sum p), Sherman-Morrison), and each location prior replaced by a normal of
its location and scale (`LOCATION_SCALE`), L is normal given the scales with precision
P = diag(1 / s0^2) + A^T (...) A; the free ``location_offset`` w is L standardised by it:
L = P^-1 b + R^-T w, P = R R^T. The Potential ``location_jacobian`` adds the true priors of L, takes
out w's N(0, 1) and adds log |dL/dw| = -sum log diag(R); the study effects are then standardised
given L as above (the map is triangular, so the Jacobians multiply). The posterior is exactly the
plain model's. This removes the funnel between tau -> 0 and the locations: with tau small every
study's precise mean (Petrou 2020's arms have SEs near 0.07) pins mu, beta and msc_effect together,
with tau large each study's effect absorbs it; at target_accept 0.9 the form with free locations
diverged on 18 of 20 seeds, half of the divergences starting at tau < 0.03; with the standardised
locations none starts there, and the ones left start at a small within-arm SD of a 5-patient counts
arm (Sahraian 2014 SPMS). So the outcome samples the free-location form (``build(...,
locations=False)``, the default) at target_accept 0.99; ``locations=True`` is kept as a tested exact
alternative. There mu, beta and msc_effect are Deterministics; a location prior outside
`LOCATION_SCALE` keeps them free.
"""

from __future__ import annotations

import numpy as np

from msc_bayes.evidence import Evidence
from msc_bayes.outcomes.covariates import tensor, with_effects
from msc_bayes.outcomes.edss import shared
from msc_bayes.outcomes.edss.formats import FORMATS, NEEDS_SIGMA, BuildContext
from msc_bayes.outcomes.edss.prepare import Prepared, prepare
from msc_bayes.outcomes.likelihood import observe, unit_weight
from msc_bayes.outcomes.sizes import zeros

#: The order in which the formats' hooks add to the model: the parameters and normal terms
#: before theta, then the terms that need theta. Reordering changes the graph (and the draws).
BUILD_ORDER = ("baseline_followup", "change", "means_only", "counts", "patient")


def build(spec, evidence: Evidence, *, standardise: bool = True, locations: bool = False):
    """A PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared).

    By default (the form the outcome samples) the study effects are standardised and mu, beta and
    msc_effect are free random variables; `locations=True` standardises the locations too (module
    docstring: it removes the tau -> 0 funnel but not every divergence at target_accept 0.9, and its
    Cholesky and triangular solves more than double the numba compile); `standardise=False` gives the plain
    non-centred study effects (study_offset = effect / tau) with free locations. Each is the same
    posterior in another parameterisation.
    """
    import pymc as pm
    import pytensor.tensor as pt

    prep = prepare(spec, evidence)
    units, d = prep.units, prep.design
    studies = prep.studies
    study_idx = np.array([studies.index(s) for s in units["study"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    coords = {"study": studies, "arm": list(units["label"])}
    if d.columns:
        coords["covariate"] = list(d.columns)
    U = len(units)
    use = {f: np.array([f in fs for fs in units["formats"]]) for f in FORMATS}
    gives = np.array([any(FORMATS[f].gives_sigma for f in fs) for fs in units["formats"]])
    hier = np.array([bool(set(fs) & NEEDS_SIGMA) for fs in units["formats"]]) & ~gives
    n = units["n"].to_numpy(dtype=float)

    frac = units["carry_fraction"].to_numpy(dtype=float)  # control periods after MSC
    locate = standardise and locations and standardisable_locations(spec, d.columns, control)
    if locate:
        coords["location"] = location_names(d.columns, control)
    with pm.Model(coords=coords) as model:
        if locate:  # mu, beta and msc_effect come from location_offset once the normal terms exist
            tau = spec.priors["tau"].create("tau")
            z = pm.Normal("study_offset", 0.0, 1.0, dims="study")
            X = tensor(d) if d.columns else None
            share = shared.carry_over_share(spec, frac)
        else:
            mu = spec.priors["mu"].create("mu")
            tau = spec.priors["tau"].create("tau")
            z = pm.Normal("study_offset", 0.0, 1.0, dims="study")
            fixed = with_effects(mu + zeros("arm"), spec, d, control)  # theta without the study effect
            carried = shared.carry_over_term(spec, frac)
            if carried is not None:
                fixed = fixed + carried

        sigma = zeros("arm")
        if hier.any():
            idx = np.flatnonzero(hier)
            model.add_coord("arm_sd", [units["label"][i] for i in idx])
            s_mu = spec.priors["sigma_mu"].create("sigma_mu")
            s_tau = spec.priors["sigma_tau"].create("sigma_tau")
            s_z = pm.Normal("sigma_offset", 0.0, 1.0, dims="arm_sd")
            sigma = pt.set_subtensor(sigma[idx], pt.exp(s_mu + s_tau * s_z))
        ctx = BuildContext(spec, evidence, model, units, n, sigma, hier | gives,
                           counts_weight=shared.counts_weight(prep.shared, U))
        for f in BUILD_ORDER:
            if use[f].any():
                FORMATS[f].before_theta(ctx, np.flatnonzero(use[f]))

        if locate:
            A = location_design(X, control, share, frac)
            fixed = (A * standardised_locations(spec, d.columns, control, A, tau, ctx.normal, study_idx)).sum(axis=1)
        offset = standardised_study_offset(z, tau, fixed, ctx.normal if standardise else [], study_idx)
        theta = pm.Deterministic("theta", fixed + tau * offset[study_idx], dims="arm")
        ctx.terms.extend(_normal_terms(spec, prep.shared, ctx.normal, theta))
        for f in BUILD_ORDER:
            if use[f].any():
                FORMATS[f].after_theta(ctx, np.flatnonzero(use[f]), theta)
        # one accumulation of every term into its unit (few graph nodes: each node costs compile
        # time and ~60 ns per gradient in the numba backend)
        at = np.concatenate([i for i, _ in ctx.terms])
        observe(pt.inc_subtensor(zeros("arm")[at], pt.concatenate([t for _, t in ctx.terms])))
    return model, prep


def _normal_terms(spec, groups, normal, theta) -> list:
    """The normal terms y ~ N(theta, se): independent, except the first normal term of each unit whose
    arm shares patients with another (:mod:`.shared`: jointly normal within its study and timepoint)."""
    import pymc as pm

    grouped = {u for g in groups for u in g.units}
    normal_at: dict = {}
    terms = []
    for idx, y, se in normal:
        alone = np.array([u not in grouped or u in normal_at for u in idx])
        for j in np.flatnonzero(~alone):
            normal_at[int(idx[j])] = (y[j], se[j])
        if alone.all():
            terms.append((idx, pm.logp(pm.Normal.dist(theta[idx], se), y)))
        elif alone.any():
            j = np.flatnonzero(alone)
            terms.append((idx[j], pm.logp(pm.Normal.dist(theta[idx[j]], se[j]), y[j])))
    return terms + shared.correlated_terms(spec, groups, normal_at, theta)


#: Location priors (mu, beta, msc_effect) the standardisation can approximate by a normal: dist -> (location
#: parameter, scale parameter, SD per unit of scale). Any other family keeps mu, beta and msc_effect free.
LOCATION_SCALE = {"Normal": ("mu", "sigma", 1.0), "StudentT": ("mu", "sigma", 1.0),
                  "Laplace": ("mu", "b", np.sqrt(2.0)), "Cauchy": ("alpha", "beta", 1.0)}


def location_names(columns, control: np.ndarray) -> list[str]:
    """The coordinate of ``location_offset``: mu, the covariate columns, msc_effect (when there are controls)."""
    return ["mu", *columns] + (["msc_effect"] if control.any() else [])


def standardisable_locations(spec, columns, control: np.ndarray) -> bool:
    """Whether every location prior is a location-scale family on the real line (`LOCATION_SCALE`)."""
    priors = [spec.priors["mu"], *(spec.coefficient_prior(c) for c in columns)]
    if control.any():
        priors.append(spec.priors["msc_effect"])
    return all(p.dist in LOCATION_SCALE for p in priors)


def location_design(X, control: np.ndarray, share, frac: np.ndarray):
    """theta without the study effect is (A * L).sum(1), L = (mu, beta, msc_effect): A's columns are 1, the
    design X, and -(control - carry_over share * periods after MSC) (:mod:`.shared`)."""
    import pytensor.tensor as pt

    cols = [(zeros("arm") + 1.0)[:, None]]
    if X is not None:
        cols.append(X)
    if control.any():
        treated = -pt.as_tensor_variable(control) if share is None else share * frac - control
        cols.append(treated[:, None])
    return pt.concatenate(cols, axis=1)


def _location_priors(spec, columns, control: np.ndarray) -> list:
    """(positions in L, family, parameters, PyMC distribution) of each location prior, on the same pm.Data as ``Prior.create``
    and ``covariates.coefficients`` make (a refit under other prior values sets them)."""
    import pymc as pm

    from msc_bayes.outcomes.covariates import (
        _part_name,
        coefficient_groups,
        coefficient_prior_data,
    )
    from msc_bayes.spec import prior_data_name

    model = pm.modelcontext(None)

    def data(name, value):
        return model[name] if name in model.named_vars else pm.Data(name, value)

    def scalar(key, prior):
        return prior.dist, {k: data(prior_data_name(key, k), np.float64(v)) for k, v in prior.params.items()}

    out = [(np.array([0]), *scalar("mu", spec.priors["mu"]))]
    groups = coefficient_groups(spec, columns)
    values = coefficient_prior_data(spec, columns)
    for j, (dist, names, idx) in enumerate(groups):
        key = "beta" if len(groups) == 1 else _part_name(groups, j)
        params = {k: data(prior_data_name(key, k), values[prior_data_name(key, k)]) for k in names}
        out.append((1 + np.array(idx), dist, params))
    if control.any():
        out.append((np.array([1 + len(columns)]), *scalar("msc_effect", spec.priors["msc_effect"])))
    return [(pos, name, params, getattr(pm, name).dist(**params)) for pos, name, params in out]


def standardised_locations(spec, columns, control: np.ndarray, A, tau, normal, study_idx: np.ndarray):
    """L = (mu, beta, msc_effect) from the free standardised ``location_offset`` w (module docstring);
    creates mu, beta and msc_effect as Deterministics and the Potential ``location_jacobian``."""
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.tensor.linalg import cholesky, solve_triangular

    model = pm.modelcontext(None)
    priors = _location_priors(spec, columns, control)
    m0, s0 = pt.zeros(A.shape[1]), pt.ones(A.shape[1])  # the priors' normal approximation
    for pos, name, params, _ in priors:
        loc, scale, k = LOCATION_SCALE[name]
        m0 = pt.set_subtensor(m0[pos], params[loc])
        s0 = pt.set_subtensor(s0[pos], k * params[scale])
    weight = unit_weight()
    p_u, py_u = zeros("arm"), zeros("arm")  # per unit: sum of w / se^2 and of w y / se^2 over its normal terms
    for idx, y, se in normal:
        p = weight[idx] / se**2
        p_u = pt.inc_subtensor(p_u[idx], p)
        py_u = pt.inc_subtensor(py_u[idx], p * y)
    G = pt.zeros((model.dim_lengths["study"], A.shape[1]))
    G = pt.inc_subtensor(G[study_idx], p_u[:, None] * A)  # per study: sum of p_u A_u
    p_s = pt.inc_subtensor(zeros("study")[study_idx], p_u)
    py_s = pt.inc_subtensor(zeros("study")[study_idx], py_u)
    c = tau**2 / (1 + tau**2 * p_s)  # the study effect integrated out (Sherman-Morrison)
    Q = (p_u[:, None, None] * A[:, :, None] * A[:, None, :]).sum(axis=0) - (
        c[:, None, None] * G[:, :, None] * G[:, None, :]).sum(axis=0)
    h = (py_u[:, None] * A).sum(axis=0) - ((c * py_s)[:, None] * G).sum(axis=0)
    R = cholesky(pt.diag(1 / s0**2) + Q, lower=True)
    w = pm.Normal("location_offset", 0.0, 1.0, dims="location")
    L = solve_triangular(R.T, solve_triangular(R, m0 / s0**2 + h, lower=True) + w, lower=False)
    pm.Potential("location_jacobian", sum(pm.logp(dist, L[pos]).sum() for pos, *_, dist in priors)
                 - pm.logp(pm.Normal.dist(0.0, 1.0), w).sum() - pt.log(pt.diag(R)).sum())
    pm.Deterministic("mu", L[0])
    if columns:
        pm.Deterministic("beta", L[1:1 + len(columns)], dims="covariate")
    if control.any():
        pm.Deterministic("msc_effect", L[1 + len(columns)])
    return L[None, :]


def standardised_study_offset(z, tau, fixed, normal, study_idx: np.ndarray):
    """Each study's effect / tau from the free standardised `study_offset` z (module docstring).

    `normal` lists the normal terms (units, y, se), y ~ N(fixed[units] + e[study], se).
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not normal:
        return z
    weight = unit_weight()
    prec, b = zeros("study"), zeros("study")  # per study: sum of w / se^2 and of w (y - fixed) / se^2
    for idx, y, se in normal:
        p = weight[idx] / se**2
        prec = pt.inc_subtensor(prec[study_idx[idx]], p)  # repeated studies accumulate
        b = pt.inc_subtensor(b[study_idx[idx]], p * (y - fixed[idx]))
    r = tau**2 * prec
    offset = tau * b / (1 + r) + z / pt.sqrt(1 + r)
    pm.Potential("study_offset_jacobian", (-(offset**2 - z**2) / 2 - pt.log1p(r) / 2).sum())
    return offset


#: Thresholds for probability statements about EDSS change (points; negative = improvement).
CHANGE_THRESHOLDS = (-0.5, 0.0)
#: Follow-up at which predictions are made when follow-up is a covariate (months).
PREDICTION_MONTHS = 12.0


def derive(posterior, prepared: Prepared, spec):
    """Quantities computed from the draws (dims chain, draw, ...).

    Predictions are for a new study's MSC arm at the covariates' zero on the model's scale
    (the reference level; for numeric covariates 0, or the mean when the spec centres them);
    `*_by_design` gives them over a grid of route levels and numbers of courses. Random
    draws (a new study's effect) use `spec.sampler.seed`, which `fit` sets to its seed.
    """
    import xarray as xr

    rng = np.random.default_rng(spec.sampler.seed)
    mu, tau = posterior["mu"].values, posterior["tau"].values
    shape = mu.shape
    new = mu + tau * rng.standard_normal(shape)
    out = {"theta_new": (("chain", "draw"), new)}
    below = np.stack([new < t for t in CHANGE_THRESHOLDS], axis=-1).astype(float)
    out["p_new_below"] = (("chain", "draw", "threshold"), below)
    coords = {"threshold": list(CHANGE_THRESHOLDS)}
    terms = {t.name: t for t in prepared.design.terms}
    beta = posterior["beta"].values if "beta" in posterior else np.zeros(shape + (0,))
    columns = list(prepared.design.columns)

    def effect(values: dict) -> np.ndarray:
        x = np.zeros(len(columns))
        for name, term in terms.items():
            value = values.get(name)
            if value is None:
                continue
            enc = term.encode(value)
            for c, v in zip(term.columns, enc):
                x[columns.index(c)] = v
        return beta @ x

    if "route" in terms and terms["route"].kind == "categorical":
        levels = list(terms["route"].levels)
        pairs = [(a, b) for i, b in enumerate(levels) for a in levels[i + 1:]]
        out["route_contrast"] = (("chain", "draw", "contrast"),
                                 np.stack([effect({"route": a}) - effect({"route": b}) for a, b in pairs], axis=-1))
        coords["contrast"] = [f"{a} vs {b}" for a, b in pairs]
    grid_names = [n for n in ("route", "courses") if n in terms]
    if grid_names:
        axes = {"route": list(terms["route"].levels) if "route" in terms else [],
                "courses": list(range(1, 10))}
        fixed = {"timepoint_months": PREDICTION_MONTHS} if "timepoint_months" in terms else {}
        grid = np.zeros(shape + tuple(len(axes[n]) for n in grid_names))
        for idx in np.ndindex(*[len(axes[n]) for n in grid_names]):
            values = {**fixed, **{n: axes[n][i] for n, i in zip(grid_names, idx)}}
            grid[(..., *idx)] = mu + effect(values)
        dims = ("chain", "draw") + tuple(grid_names)
        out["change_by_design"] = (dims, grid)
        out["new_study_by_design"] = (dims, grid + (tau * rng.standard_normal(shape))[(...,) + (None,) * len(grid_names)])
        coords.update({n: axes[n] for n in grid_names})
    ds = xr.Dataset(out, coords={"chain": posterior["chain"], "draw": posterior["draw"], **coords})
    ds.attrs["prediction_months"] = PREDICTION_MONTHS if "timepoint_months" in terms else "follow-up not in the model"
    return ds
