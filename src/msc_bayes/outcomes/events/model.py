"""Adverse events and MRI activity: a binomial-logit random-effects meta-regression.

One model serves two outcomes: ``adverse_events`` (table ``adverse_events.csv``) and
``mri_activity`` (table ``mri.csv``). A modelled unit u is one (study, arm, event) row
left after selection (see :func:`~msc_bayes.outcomes.events.prepare.prepare`). Its linear predictor, on the logit scale of
the per-patient risk of at least one event over the arm's follow-up, is

    theta[u] = mu + event_effect[event[u]] + X[u] @ beta - msc_effect * control[u]
               + tau * study_offset[study_event[u]]

- ``study_offset`` ~ N(0, 1) is non-centred and has the flat dim ``study_event``: one
  offset per *observed* (study, event) pair, labelled ``"study:event"``. Arms (and
  timepoints) of one study share the offset of each event type; different event types of
  one study get independent offsets.
- ``event_effect = tau_event * event_offset`` (dim ``event``) exists only when more than
  one event type is modelled; ``mu`` is then the logit risk of a typical event type.
- ``beta`` (dim ``covariate``) exists only with covariates, ``msc_effect`` only when a
  control arm is modelled (a control arm's logit is ``msc_effect`` *below* the MSC arms').
  Treatment covariates act on MSC arms only (:mod:`msc_bayes.outcomes.covariates`).
- In the plain case (one arm per study, one event type, no covariates, no controls) this
  is exactly the binomial-normal random-intercept model ``logit p_i = mu + tau z_i``.

Likelihood, per unit, from what the row reports (exact; reported zeros are data):

- ``patients_with_event`` present: ``y ~ Binomial(n_at_risk, sigmoid(theta))``;
- only an event count ``events``: each patient's events are a Poisson process over the
  follow-up with P(>= 1 event) = sigmoid(theta), i.e. expected events per patient
  ``-log(1 - p) = softplus(theta)``, so ``events ~ Poisson(n_at_risk * softplus(theta))``.
  A row reporting both uses the binomial only (the same patients are not counted twice).

Periods versus patients (crossover arms): ``n_at_risk`` of a binomial unit is the number of
*patients*, each counted once. An arm to which m patients contribute two periods (a
``shared_patients`` row with ``other_arm == arm``) enters with n = n_at_risk - m (the fewest
distinct patients its periods can hold; the event is "an event in either period", and the
reported count is capped at that n). A patient in two arms (MSC and sham periods) counts in
each arm's binomial, under that arm's treatment: the arms are different exposures and share
the study effect. A Poisson unit keeps its n_at_risk periods as the exposure of its count.

The per-unit log likelihood is the ``loglik`` Deterministic (dim ``arm``); the model gets
``sum(unit_weight * loglik)`` as one ``pm.Potential`` (``unit_weight`` = 1, or 0 for a unit
left out by ``inference.fit(exclude_studies=...)``). Counts and denominators are ``pm.Data``
containers (``n_at_risk``, ``patients_with_event``, ``event_count``, ``unit_weight``), so a
compiled model can be refitted to new counts of the same shape (nutpie's
``compiled.with_data``) without recompiling.

Parameterisation: the study and event effects are non-centred; ``tau`` and ``tau_event``
with light-tailed priors (half-normal, exponential, gamma, normal truncated at 0) are
sampled on the inverse-softplus scale instead of the log scale (see `_scale_parameter`:
with the bundled, mostly-zero adverse-event data the log scale gave rare divergent
transitions with huge energy errors; the inverse-softplus scale gave none).

Derived quantities (:func:`derive`) are documented there; the units are selected by
:mod:`msc_bayes.outcomes.events.prepare`, the per-unit likelihoods are in
:mod:`msc_bayes.outcomes.events.formats`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from msc_bayes.evidence import Evidence
from msc_bayes.outcomes.covariates import with_effects
from msc_bayes.outcomes.events.formats import binomial_logit_logp, poisson_softplus_logp
from msc_bayes.outcomes.events.prepare import Prepared, column, prepare
from msc_bayes.outcomes.likelihood import observe

#: Risk thresholds of `p_risk_above` (per-patient risk over follow-up, new study).
RISK_THRESHOLDS = (0.01, 0.05, 0.10)
#: MRI activity's thresholds: about a quarter of MSC-arm patients have MRI activity here (pooled risk ~25%), so
#: thresholds of 1% and 5% are exceeded with near certainty and say nothing; 10%, 25% and 50% bracket that risk
#: (low activity, about the pooled risk, more than half the patients: the summary's important MRI risk).
MRI_RISK_THRESHOLDS = (0.10, 0.25, 0.50)


def build(spec, evidence: Evidence):
    """The PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared)."""
    import pymc as pm
    import pytensor.tensor as pt

    prep = prepare(spec, evidence)
    units = prep.units
    binom = (units["likelihood"] == "binomial").to_numpy()

    with pm.Model(coords=coords_of(prep)) as model:
        n = pm.Data("n_at_risk", units["n"].to_numpy(dtype=float), dims="arm")
        y = pm.Data("patients_with_event", units["patients_with_event"].fillna(0).to_numpy(dtype=float), dims="arm")
        k = pm.Data("event_count", column(units, "events").fillna(0).to_numpy(dtype=float), dims="arm")
        theta = linear_predictor(spec, prep)

        if binom.all():
            ll = binomial_logit_logp(y, n, theta)
        elif not binom.any():
            ll = poisson_softplus_logp(k, n, theta)
        else:
            ll = pt.switch(binom, binomial_logit_logp(y, n, theta), poisson_softplus_logp(k, n, theta))
        observe(ll)
    return model, prep


def coords_of(prep) -> dict:
    """The model's coords from prepared units (``units``: label, study_event, event; ``design``; ``study_events``,
    ``events``): study_event, arm, and event / covariate when there are several event types / covariates."""
    coords = {"study_event": list(prep.study_events), "arm": list(prep.units["label"])}
    if len(prep.events) > 1:
        coords["event"] = list(prep.events)
    if prep.design.columns:
        coords["covariate"] = list(prep.design.columns)
    return coords


def linear_predictor(spec, prep):
    """In the current model (coords from `coords_of`): ``theta`` (Deterministic, dim arm) = mu + event effect +
    X·beta − msc_effect·control + tau·study_offset[study_event] (the module docstring), on the scale of the
    outcome's link (logit risk here; log rate in :mod:`msc_bayes.outcomes.rates`)."""
    import pymc as pm

    units, d = prep.units, prep.design
    se_labels = list(prep.study_events)
    se_idx = np.array([se_labels.index(s) for s in units["study_event"]])
    events = list(prep.events)
    ev_idx = np.array([events.index(e) for e in units["event"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    mu = spec.priors["mu"].create("mu")
    tau = _scale_parameter(spec, "tau")
    offset = pm.Normal("study_offset", 0.0, 1.0, dims="study_event")
    eta = mu + tau * offset[se_idx]
    if len(events) > 1:
        tau_event = _scale_parameter(spec, "tau_event")
        event_offset = pm.Normal("event_offset", 0.0, 1.0, dims="event")
        event_effect = pm.Deterministic("event_effect", tau_event * event_offset, dims="event")
        eta = eta + event_effect[ev_idx]
    return pm.Deterministic("theta", with_effects(eta, spec, d, control), dims="arm")


#: Scale priors whose density falls at least like a normal's: sampled through the
#: inverse-softplus transform rather than the log (see `_scale_parameter`).
_LIGHT_TAILED = frozenset({"HalfNormal", "Exponential", "Gamma", "TruncatedNormal"})


def _scale_parameter(spec, name: str):
    """Create the scale parameter `name` (tau, tau_event) with the spec's prior.

    A light-tailed prior on [0, inf) is sampled on u = log(exp(s) - 1) instead of log(s).
    On the log scale a half-normal prior's log density is -exp(2 log s)/2, an ever stiffer
    wall that leapfrog steps sized for the bulk overshoot when a trajectory runs up it
    (mostly-zero event data leave the downward direction of the effects flat, so
    trajectories do): rare divergences with huge energy errors. Under softplus the scale is
    ~exp(u) near 0 (like the log, right for the funnel) but ~u above 1, so the prior's upper
    wall is Gaussian in u. The posterior is unchanged; only the sampler's coordinates move.
    Heavy-tailed priors (half-Cauchy, half-t, log-normal, inverse-gamma) and bounded ones
    keep PyMC's default transform.
    """
    from pymc.distributions.transforms import log_exp_m1

    prior = spec.priors[name]
    light = prior.dist in _LIGHT_TAILED and prior.support == (0.0, np.inf)
    return prior.create(name, transform=log_exp_m1 if light else None)


def _sigmoid(x):
    return special.expit(x)


def _softplus(x):
    return np.logaddexp(0.0, x)


def derive(posterior: xr.Dataset, prepared: Prepared, spec, *,
           risk_thresholds: tuple[float, ...] = RISK_THRESHOLDS, rates: bool = True) -> xr.Dataset:
    """Quantities computed from the draws (dims chain, draw, ...).

    A *new study* is an MSC arm of a study not in the data, at reference covariates (the
    design's zero: the reference level of a categorical covariate, the centre of a centred
    numeric one), with a study effect ``tau * z_new``; ``z_new`` ~ N(0, 1) is drawn per draw
    from ``numpy.random.default_rng(spec.sampler.seed)`` (then ``predicted_count`` from
    the same generator), so results are reproducible. With several event types the new
    study's event type is a typical one (event effect 0) unless a variable has dim event.

    - ``risk_pooled``: sigmoid(mu), the pooled per-patient risk (reference covariates);
    - ``risk_new``: sigmoid(mu + tau z_new), the risk in a new study;
    - ``risk_new_event`` (dim event; several event types): the same, per event type;
    - ``risk_pooled_event`` (dim event; several event types): sigmoid(mu + event_effect), the pooled
      per-patient risk of each event type (a typical study, reference covariates);
    - ``risk_new_control`` (with control arms): a new study's control arm;
    - ``risk_by_route`` (dim route; when route is a covariate): a new study's MSC arm
      given each route level; ``route_contrast`` (dim contrast, e.g. "IT vs IV"): each
      non-reference level minus the reference on the log-odds scale (= its beta);
    - ``rate_per_administration_new``: expected events per administration in a new study,
      softplus(eta_new) / A, A = median administrations per patient over the MSC units
      that report it (attribute ``administrations_per_patient``); omitted if none does (or ``rates`` is
      False: MRI activity is not an event per administration);
    - ``rate_per_administration`` (dim arm_admin): per unit, n softplus(theta) / the
      administrations its patients received (units where that is known);
    - ``p_risk_above`` (dim threshold): indicator risk_new > threshold per draw, so its
      posterior mean is P(risk_new > threshold) (`risk_thresholds`: the outcome's, e.g. MRI_RISK_THRESHOLDS);
    - ``risk_arm`` (dim arm): sigmoid(theta), the shrunken per-unit risks;
    - ``predicted_count`` (dim arm): posterior predictive replicate of each unit's reported
      count: Binomial(n_at_risk, sigmoid(theta)) patients with an event (binomial units) or
      Poisson(n_at_risk softplus(theta)) events (units reporting only an event count).
    """
    rng = np.random.default_rng(spec.sampler.seed)
    mu = posterior["mu"]
    tau = posterior["tau"]
    sample = mu.dims
    shape = mu.shape
    z_new = xr.DataArray(rng.standard_normal(shape), dims=sample, coords=mu.coords)
    eta_new = mu + tau * z_new
    units, d = prepared.units, prepared.design
    out = {
        "risk_pooled": _sigmoid(mu),
        "risk_new": _sigmoid(eta_new),
    }
    if "event_effect" in posterior:
        out["risk_new_event"] = _sigmoid(eta_new + posterior["event_effect"])
        out["risk_pooled_event"] = _sigmoid(mu + posterior["event_effect"])
    if "msc_effect" in posterior:
        out["risk_new_control"] = _sigmoid(eta_new - posterior["msc_effect"])
    route = next((t for t in d.terms if t.name == "route"), None)
    if route is not None and route.levels:
        beta = posterior["beta"]
        cols = list(route.columns)
        eff = [xr.zeros_like(mu)] + [beta.sel(covariate=c, drop=True) for c in cols]
        by_route = xr.concat([_sigmoid(eta_new + e) for e in eff], dim="route")
        out["risk_by_route"] = by_route.assign_coords(route=list(route.levels)).transpose(*sample, "route")
        if cols:
            contrast = xr.concat([beta.sel(covariate=c, drop=True) for c in cols], dim="contrast")
            labels = [f"{lv} vs {route.levels[0]}" for lv in route.levels[1:]]
            out["route_contrast"] = contrast.assign_coords(contrast=labels).transpose(*sample, "contrast")
    a_ref = prepared.administrations_reference if rates else None  # rates: events per administration
    theta = posterior["theta"]
    if a_ref is not None:
        out["rate_per_administration_new"] = _softplus(eta_new) / a_ref
        known = units["administrations_total"].notna().to_numpy()
        if known.any():
            labels = list(units["label"][known])
            total = xr.DataArray(units["administrations_total"].to_numpy(dtype=float)[known], dims="arm_admin",
                                 coords={"arm_admin": labels})
            n_known = xr.DataArray(units["n"].to_numpy(dtype=float)[known], dims="arm_admin",
                                   coords={"arm_admin": labels})
            th = theta.sel(arm=labels).rename(arm="arm_admin")
            out["rate_per_administration"] = (n_known * _softplus(th) / total).transpose(*sample, "arm_admin")
    thresholds = xr.DataArray(list(risk_thresholds), dims="threshold", coords={"threshold": list(risk_thresholds)})
    out["p_risk_above"] = (out["risk_new"] > thresholds).astype(float).transpose(*sample, "threshold")
    risk_arm = _sigmoid(theta)
    out["risk_arm"] = risk_arm
    n = units["n"].to_numpy(dtype=int)
    binom = (units["likelihood"] == "binomial").to_numpy()
    p = risk_arm.transpose(*sample, "arm").values
    counts = np.empty(p.shape, dtype=np.int64)
    counts[..., binom] = rng.binomial(n[binom], p[..., binom])
    if (~binom).any():
        lam = n[~binom] * _softplus(theta.transpose(*sample, "arm").values[..., ~binom])
        counts[..., ~binom] = rng.poisson(lam)
    out["predicted_count"] = xr.DataArray(counts, dims=(*sample, "arm"), coords=risk_arm.coords)
    ds = xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims and c not in sample], errors="ignore")
                     if isinstance(v, xr.DataArray) else v for k, v in out.items()})
    ds["p_risk_above"].attrs["meaning"] = "per-draw indicator risk_new > threshold; its mean is the probability"
    ds["predicted_count"].attrs["meaning"] = "replicate of each unit's reported count (see unit likelihood)"
    if a_ref is not None:
        ds["rate_per_administration_new"].attrs["administrations_per_patient"] = a_ref
    ds.attrs["new_study"] = "MSC arm at reference covariates; z_new ~ N(0,1) seeded by spec.sampler.seed"
    return ds
