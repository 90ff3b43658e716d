"""Sensitivity analyses and model comparison, as tidy tables with a figure each.

Every analysis is a sweep of fits (:mod:`msc_bayes.sweep`): it runs here, reusing compiled
models, or on a Dask cluster given ``scheduler="tcp://..."``. Each returns a
``pandas.DataFrame`` with one row per (scenario, quantity) and the columns

    scenario, family, <what the scenario changes>, quantity, mean, sd, median,
    eti95_lower, eti95_upper, prob_below_0, mcse_mean, ess_bulk, r_hat, method, notes, seconds

where the interval is the package's one interval (``msc_bayes.INTERVAL_PROB`` = 95%,
equal-tailed; the column names say so and ``df.attrs["interval"]`` spells it out),
``prob_below_0`` is the posterior probability that the quantity is below 0 (for EDSS change:
improvement, or for ``msc_effect`` benefit of MSC over control), ``method`` says how the row
was computed ("mcmc", "oracle" = exact normal-normal posterior, "reweight" = importance
reweighting of the base fit) and ``notes`` carries warnings (divergences, Pareto k, a
quantity informed by its prior only). Every ``plot_*`` function takes such a table first,
keyword-only options after, and returns a matplotlib ``Figure`` (never shown).

Analyses (all keyword options after spec and evidence; sampler settings default to the spec's):

- :func:`prior_sensitivity`: refits under alternative priors for tau, mu, beta (and
  msc_effect), see :func:`default_prior_grid`; exact oracle for a plain effect-size table;
  optionally PSIS importance reweighting of the base fit (``method="reweight"``).
- :func:`power_scaling`: ArviZ's power-scaling sensitivity (``psense``) of the hyperpriors.
- :func:`rho_sensitivity`: the pre-post correlation held near fixed values vs its prior.
- :func:`threshold_sensitivity`: the EDSS threshold of improved/worsened category counts.
- :func:`leave_one_out`: leave-one-study-out (exact zero-weight refits, or PSIS importance
  reweighting of the base fit with exact refits where Pareto k is high) and each study's influence.
- :func:`evidence_scenarios`: secondary sources, overlapping cohorts, timepoints, subgroups.
- :func:`compare_models`: covariate sets by leave-one-study-out PSIS-LOO, with exact refits
  for studies whose Pareto k is too high.
- :func:`sensitivity_for_report`: the compact table (scenario x headline quantities) and the
  power-scaling table that the report shows; :func:`plot_sensitivity_grid` draws it.

Cost: a refit of an already compiled model only samples (seconds); a change of prior
*family*, covariates, options (e.g. the threshold) or data compiles a new model (tens of
seconds). Subgroup scenarios that drop whole studies are run as exact zero-weight refits of
the base model (``exclude_studies``), which needs no compile.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB
from msc_bayes.spec import Prior
from msc_bayes.sweep import (
    DEFAULT_QUANTITIES,
    _sampler_notes,
    _tag,
    LOWER,
    SUMMARY_COLUMNS,
    UPPER,
    Scenario,
    concat,
    quantity_draws,
    run_scenarios,
    summarise,
)

__all__ = [
    "EVIDENCE_SCENARIOS",
    "ReportSensitivity",
    "compare_models",
    "default_prior_grid",
    "evidence_scenarios",
    "headline_quantities",
    "leave_one_out",
    "plot_evidence_scenarios",
    "plot_leave_one_out",
    "plot_model_comparison",
    "plot_power_scaling",
    "plot_prior_sensitivity",
    "plot_rho_sensitivity",
    "plot_scenarios",
    "plot_sensitivity_grid",
    "plot_threshold_sensitivity",
    "power_scaling",
    "prior_sensitivity",
    "report_table",
    "rho_sensitivity",
    "sensitivity_for_report",
    "threshold_sensitivity",
]

INTERVAL_LABEL = f"{INTERVAL_PROB:.0%} {INTERVAL_KIND}"
#: Pareto k above which an importance-sampling or PSIS-LOO estimate is not trusted
#: (Vehtari et al. 2024); such scenarios / studies are refitted exactly.
K_THRESHOLD = 0.7
#: Prior keys whose variables are named differently from the key.
_PRIOR_VARIABLES = {"sigma_edss": ("sd_baseline", "sd_followup")}
#: Disease codes of progressive MS, and of NMO spectrum disorders (data/README.md).
PROGRESSIVE = ("SPMS", "PPMS", "progressive")
NMO = ("NMO", "NMOSD")


def _prior_variables(key: str) -> tuple[str, ...]:
    return _PRIOR_VARIABLES.get(key, (key,))


def _fit_kwargs(draws=None, tune=None, chains=None, seed=None, target_accept=None) -> dict:
    kw = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    return {k: v for k, v in kw.items() if v is not None}


_TRAILING = ("pareto_k", "shift", "shift_sd", "method", "notes", "seconds")


def _finish(df: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """Tidy the column order (scenario and what it changes, summary, extras) and state the interval."""
    if family is not None and "family" not in df:
        df.insert(1, "family", family)
    first = [c for c in df.columns if c not in SUMMARY_COLUMNS and c not in _TRAILING]
    cols = first + [c for c in SUMMARY_COLUMNS if c in df] + [c for c in _TRAILING if c in df]
    df = df[cols].reset_index(drop=True)
    if "notes" in df:
        df["notes"] = df["notes"].fillna("")
    df.attrs["interval"] = INTERVAL_LABEL
    return df


def _prepare(spec, evidence):
    """The outcome module's `prepare(spec, evidence)` (pure: selection of units, design)."""
    from msc_bayes.fitting import OUTCOME_MODULES

    return importlib.import_module(f"msc_bayes.{OUTCOME_MODULES[spec.outcome]}").prepare(spec, evidence)


_WEIGHTED: dict[str, bool] = {}


def _supports_exclusion(spec, evidence) -> bool:
    """Does the outcome's model take unit weights (exact leave-out without recompiling)?"""
    from msc_bayes.fitting import build, structure_key

    key = structure_key(spec, evidence)
    if key not in _WEIGHTED:
        model, _ = build(spec, evidence)
        _WEIGHTED[key] = "unit_weight" in {d.name for d in model.data_vars}
    return _WEIGHTED[key]


def _has_control(units: pd.DataFrame) -> bool:
    return bool((units["group"].fillna("msc") == "control").any())


def headline_quantities(spec, evidence) -> tuple[str, str | None]:
    """(pooled effect, route contrast): ``msc_effect`` when a control arm is modelled, else ``mu``;
    ``route_contrast[IT vs IV]`` when route is a covariate, else None."""
    units = _prepare(spec, evidence).units
    pooled = "msc_effect" if _has_control(units) else "mu"
    return pooled, ("route_contrast[IT vs IV]" if "route" in spec.covariates else None)


# ======================================================================================
# Weighted summaries (importance reweighting)
# ======================================================================================


def _r_eff(x: np.ndarray) -> float:
    """Relative efficiency of the (chain, draw) draws of a quantity for its mean: ESS / draws, at most 1."""
    import arviz_stats as azs

    x = np.asarray(x, dtype=float)
    if np.ptp(x) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(min(1.0, azs.ess(x, method="mean") / x.size))


def _weighted_summary(x: np.ndarray, w: np.ndarray, prob: float = INTERVAL_PROB, r_eff: float = 1.0
                      ) -> dict[str, float]:
    """Summary of draws ``x`` with normalised importance weights ``w``. The ESS and the MCSE of
    the weighted mean (sum of w^2 (x - mean)^2) are those of independent draws divided by
    ``r_eff`` (:func:`_r_eff` of the unweighted draws: their autocorrelation)."""
    x = np.asarray(x, dtype=float).ravel()
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cw = np.cumsum(ws) - ws / 2
    lo, med, hi = np.interp([(1 - prob) / 2, 0.5, 1 - (1 - prob) / 2], cw, xs)
    mean = float(np.dot(w, x))
    sd = float(np.sqrt(np.dot(w, (x - mean) ** 2)))
    ess = float(r_eff / np.sum(w**2))
    mcse = float(math.sqrt(np.dot(w**2, (x - mean) ** 2) / r_eff))
    return {"mean": mean, "sd": sd, "median": float(med), LOWER: float(lo), UPPER: float(hi),
            "prob_below_0": float(np.dot(w, x < 0)), "mcse_mean": mcse, "ess_bulk": ess, "r_hat": np.nan}


def _log_ratio(fit, changes: Mapping[str, Prior]) -> np.ndarray:
    """log p_new(draws) - log p_old(draws) over the prior keys changed, per (chain, draw)."""
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    out = np.zeros(shape)
    for key, prior in changes.items():
        for var in _prior_variables(key):
            if var in post:
                x = post[var].transpose("chain", "draw", ...).values
                d = prior.logpdf(x) - fit.spec.priors[key].logpdf(x)
                out += d.reshape(shape + (-1,)).sum(axis=-1)
    return out


def _psis_weights(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised Pareto-smoothed importance weights (ArviZ ``psislw``) and their Pareto k, for
    draws of the base posterior with log importance ratios ``log_ratio`` (log target - log base)."""
    from arviz_stats.base import array_stats

    lr = np.asarray(log_ratio, dtype=float).ravel()
    if np.all(lr == lr[0]):
        lw, k = np.full(lr.shape, -math.log(lr.size)), 0.0
    else:
        lw, k = array_stats.psislw(-lr, r_eff=1.0)  # it smooths the weights exp(-input), like LOO's -loglik
    w = np.exp(lw - np.max(lw))
    return w / w.sum(), float(k)


def _reweight_extract(fit, sc: Scenario) -> pd.DataFrame:
    """Base summary plus each alternative prior by PSIS importance reweighting of the base draws."""
    draws = quantity_draws(fit, sc.quantities)
    r_eff = {q: _r_eff(x) for q, x in draws.items()}
    frames = []
    base = summarise(fit, sc)
    base.insert(0, "scenario", sc.name)
    base.insert(1, "target", sc.meta.get("target", ""))
    base.insert(2, "prior", sc.meta.get("prior", ""))
    base["method"], base["notes"] = "mcmc", _sampler_notes(fit)
    frames.append(base)
    for label, target, changes in sc.extract_args["alternatives"]:
        w, k = _psis_weights(_log_ratio(fit, changes))
        rows = [{"scenario": label, "target": target, "prior": _prior_text(changes), "quantity": q,
                 **_weighted_summary(x, w, r_eff=r_eff[q]), "pareto_k": k, "method": "reweight",
                 "notes": f"Pareto k = {float(k):.2f} > {K_THRESHOLD}: unreliable" if k > K_THRESHOLD else ""}
                for q, x in draws.items()]
        frames.append(pd.DataFrame(rows))
    return concat(frames)


def _prior_text(changes: Mapping[str, Prior]) -> str:
    return "; ".join(f"{k} ~ {p}" for k, p in changes.items())


# ======================================================================================
# Prior sensitivity
# ======================================================================================


def _prior_median(prior: Prior) -> float:
    """Median of a prior on (0, inf), from its density on a log grid."""
    t = np.exp(np.linspace(-14, 8, 4001))
    dens = np.exp(prior.logpdf(t)) * t
    cdf = np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(np.log(t)))
    return float(np.interp(0.5 * cdf[-1], cdf, t[1:]))


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def default_prior_grid(spec, evidence=None) -> dict[str, list[Prior]]:
    """The alternative priors tried one at a time by :func:`prior_sensitivity`.

    With ``m`` the median of the spec's ``tau`` prior and ``s = m / 0.6745`` (the half-normal
    scale with that median; s = 0.5 for the EDSS default):

    - ``tau``: HalfNormal(s/2), HalfNormal(2s) (less / more heterogeneity), and three other
      shapes with the same median m: HalfCauchy(m) (heavy tail), HalfStudentT(3, m/0.765)
      and LogNormal(log m, 1) (no mass piled up at tau = 0);
    - ``mu``: the spec's Normal with half and twice its SD;
    - ``beta`` (when there are covariates): half and twice its SD;
    - ``msc_effect`` (when a control arm is modelled; needs ``evidence``): half and twice its SD.

    Priors that are not Normal for mu/beta/msc_effect get Normal(0, 0.5) and Normal(0, 2)
    instead. The tau alternatives of another family each compile a new model.
    """
    grid: dict[str, list[Prior]] = {}
    m = _prior_median(spec.priors["tau"])
    s = m / 0.6745
    grid["tau"] = [
        Prior("HalfNormal", {"sigma": _sig(s / 2)}),
        Prior("HalfNormal", {"sigma": _sig(2 * s)}),
        Prior("HalfCauchy", {"beta": _sig(m)}),
        Prior("HalfStudentT", {"nu": 3, "sigma": _sig(m / 0.7649)}),
        Prior("LogNormal", {"mu": _sig(math.log(m), 4), "sigma": 1}),
    ]
    grid["tau"] = [p for p in grid["tau"] if p != spec.priors["tau"]]

    def scaled(key: str) -> list[Prior]:
        p = spec.priors[key]
        if p.dist == "Normal":
            return [Prior("Normal", {"mu": p.params["mu"], "sigma": _sig(p.params["sigma"] / 2)}),
                    Prior("Normal", {"mu": p.params["mu"], "sigma": _sig(p.params["sigma"] * 2)})]
        return [Prior("Normal", {"mu": 0, "sigma": 0.5}), Prior("Normal", {"mu": 0, "sigma": 2})]

    grid["mu"] = scaled("mu")
    if spec.covariates and "beta" in spec.priors:
        grid["beta"] = scaled("beta")
    if evidence is not None and "msc_effect" in spec.priors and _has_control(_prepare(spec, evidence).units):
        grid["msc_effect"] = scaled("msc_effect")
    return grid


def _grid_entries(spec, grid) -> list[tuple[str, str, dict[str, Prior]]]:
    """(label, target, {key: Prior}) per grid entry."""
    def as_prior(p) -> Prior:
        return p if isinstance(p, Prior) else Prior.from_dict(p)

    out = []
    if isinstance(grid, Mapping):
        for key, priors in grid.items():
            if key not in spec.priors:
                raise ValueError(f"grid: {key!r} is not a prior of {spec.outcome}: {sorted(spec.priors)}")
            for p in priors:
                p = as_prior(p)
                out.append((f"{key} ~ {p}", key, {key: p}))
    else:
        for label, changes in grid:
            changes = {k: as_prior(p) for k, p in changes.items()}
            out.append((str(label), "+".join(changes), changes))
    return out


def prior_sensitivity(spec, evidence, *, grid=None, quantities: Sequence[str] | None = None, method: str = "auto",
                      base_fit=None, include_base: bool = True, k_threshold: float = K_THRESHOLD,
                      refit_unreliable: bool | str = True, draws: int | None = None, tune: int | None = None,
                      chains: int | None = None, seed: int | None = None, target_accept: float | None = None,
                      scheduler=None, on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """Posterior summaries under alternative priors, one scenario per grid entry.

    grid: None (:func:`default_prior_grid`), ``{key: [Prior | dict, ...]}`` (one key changed
        at a time), or ``[(label, {key: Prior, ...}), ...]`` (several keys at once).
    method: "auto" (exact normal-normal oracle where it applies, else MCMC refits), "mcmc",
        "oracle", or "reweight": PSIS importance reweighting of the base fit (``base_fit``, or
        one fit of ``spec``) by p_new/p_old of the changed hyperparameters. Entries with
        Pareto k > ``k_threshold`` are refitted with MCMC when ``refit_unreliable`` is True,
        only those keeping the base prior families (no compile) when it is "same-family",
        none when False (they stay, flagged in ``notes``). Reweighting compiles nothing.
    Extra columns: ``target`` (prior keys changed), ``prior`` (the alternative), and
    ``pareto_k`` with ``method="reweight"``.
    """
    if method not in ("auto", "mcmc", "oracle", "reweight"):
        raise ValueError("method must be 'auto', 'mcmc', 'oracle' or 'reweight'")
    entries = _grid_entries(spec, default_prior_grid(spec, evidence) if grid is None else grid)
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    base_prior = "; ".join(f"{k} ~ {spec.priors[k]}" for k in dict.fromkeys(t for _, t, c in entries for t in c))

    def refit(label, target, changes) -> Scenario:
        return Scenario(label, spec.replace(priors=changes), evidence, fkw, quantities=quantities,
                        method="mcmc" if method == "reweight" else method,
                        meta={"family": "prior", "target": target, "prior": _prior_text(changes)})

    base = Scenario("base", spec, evidence, fkw, quantities=quantities,
                    method="mcmc" if method == "reweight" else method,
                    meta={"family": "prior", "target": "", "prior": base_prior})
    if method != "reweight":
        scenarios = ([base] if include_base else []) + [refit(*e) for e in entries]
        df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
        return _finish(df)

    rw = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_reweight_extract,
                  extract_args={"alternatives": entries}, method="mcmc",
                  meta={"family": "prior", "target": "", "prior": base_prior})
    if base_fit is not None:
        df = _tag(_reweight_extract(base_fit, rw), rw, "mcmc", "", np.nan)
    else:
        df = run_scenarios([rw], scheduler=scheduler, on_error="raise", progress=progress)[0]
    if not include_base:
        df = df[df["scenario"] != "base"]
    if refit_unreliable not in (True, False, "same-family"):
        raise ValueError("refit_unreliable must be True, False or 'same-family'")
    if refit_unreliable:
        bad = df.loc[df["pareto_k"] > k_threshold, "scenario"].unique()
        if refit_unreliable == "same-family":
            same = {e[0] for e in entries if all(p.dist == spec.priors[k].dist for k, p in e[2].items())}
            bad = [b for b in bad if b in same]
        if len(bad):
            todo = [refit(*e) for e in entries if e[0] in set(bad)]
            fresh = concat(run_scenarios(todo, scheduler=scheduler, on_error=on_error, progress=progress))
            fresh["pareto_k"] = fresh["scenario"].map(df.groupby("scenario")["pareto_k"].first())
            fresh["notes"] = [";  ".join(x for x in (n, f"refitted: Pareto k = {k:.2f} > {k_threshold}") if x)
                              for n, k in zip(fresh["notes"], fresh["pareto_k"])]
            order = {s: i for i, s in enumerate(df["scenario"].unique())}
            df = pd.concat([df[~df["scenario"].isin(bad)], fresh], ignore_index=True)
            df = df.sort_values("scenario", key=lambda s: s.map(order), kind="stable")
    return _finish(df, "prior")


# ======================================================================================
# Power scaling
# ======================================================================================


def _log_likelihood_used(fit) -> xr.Dataset:
    """The per-arm log likelihood of the arms that were fitted (left-out studies dropped)."""
    ll = fit.tree["log_likelihood"].to_dataset()
    excluded = json.loads(fit.tree.attrs.get("excluded_studies", "[]"))
    if excluded:
        keep = ~fit.prepared.units["study"].isin(excluded).to_numpy()
        ll = ll.isel(arm=np.flatnonzero(keep))
    return ll


def power_scaling(fit, *, var_names: Sequence[str] = ("mu", "tau", "beta"), quantities: Sequence[str] | None = None,
                  threshold: float = 0.05, alphas: tuple[float, float] = (0.99, 1.01),
                  scenario: str = "base") -> pd.DataFrame:
    """Power-scaling prior/likelihood sensitivity (ArviZ ``psense_summary``) of the hyperpriors.

    The ``log_prior`` group holds only the priors of ``var_names`` (log densities of the draws
    by :meth:`Prior.logpdf`), so only these hyperpriors are power-scaled; the likelihood is the
    per-arm log likelihood of the fitted arms. Sensitivity is reported for ``quantities``
    (default: the ``var_names`` the fit has, plus ``msc_effect`` when modelled; any posterior
    or derived quantity or cell label such as ``route_contrast[IT vs IV]`` may be given).

    Columns: scenario, quantity, prior_sensitivity, likelihood_sensitivity, diagnosis
    (ArviZ: "potential prior-data conflict" when both are >= ``threshold``, "potential strong
    prior / weak likelihood" when only the prior one is, "✓" otherwise), threshold.
    """
    import arviz_stats as azs

    post = fit.posterior
    spec = fit.spec
    lp = {}
    for key in var_names:
        if key not in spec.priors:
            continue
        for var in _prior_variables(key):
            if var in post:
                da = post[var]
                lp[var] = xr.DataArray(spec.priors[key].logpdf(da.values), dims=da.dims, coords=da.coords)
    if not lp:
        raise ValueError(f"none of {list(var_names)} is a parameter of this fit")
    if quantities is None:
        quantities = [v for v in var_names if v in post] + (["msc_effect"] if "msc_effect" in post else [])
        quantities = list(dict.fromkeys(quantities))
    draws = quantity_draws(fit, quantities)
    chain, draw = post["chain"].values, post["draw"].values
    assess = xr.Dataset({k: (("chain", "draw"), v) for k, v in draws.items()}, coords={"chain": chain, "draw": draw})
    tree = xr.DataTree.from_dict({"posterior": assess, "log_prior": xr.Dataset(lp),
                                  "log_likelihood": _log_likelihood_used(fit)})
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = azs.psense_summary(tree, var_names=list(draws), threshold=threshold, alphas=alphas, round_to=10)
    finally:
        logger.setLevel(level)
    df = pd.DataFrame({"scenario": scenario, "quantity": list(res.index),
                       "prior_sensitivity": res["prior"].astype(float).to_numpy(),
                       "likelihood_sensitivity": res["likelihood"].astype(float).to_numpy(),
                       "diagnosis": res["diagnosis"].to_numpy(), "threshold": threshold,
                       "power_scaled": ", ".join(lp)})
    return df


# ======================================================================================
# rho and threshold
# ======================================================================================


def _tight_prior(base: Prior, value: float, sd: float) -> Prior:
    """A prior concentrated at `value` (SD `sd`) in the base family when it is Beta (no recompile),
    else a narrow TruncatedNormal on [-1, 1]."""
    if base.dist == "Beta" and 0 < value < 1:
        n = value * (1 - value) / sd**2 - 1
        return Prior("Beta", {"alpha": _sig(value * n, 6), "beta": _sig((1 - value) * n, 6)})
    return Prior("TruncatedNormal", {"mu": value, "sigma": sd, "lower": -1, "upper": 1})


def rho_sensitivity(spec, evidence, *, values: Sequence[float] = (0.2, 0.5, 0.8), sd: float = 0.01,
                    quantities: Sequence[str] | None = None, include_base: bool = True, draws: int | None = None,
                    tune: int | None = None, chains: int | None = None, seed: int | None = None,
                    target_accept: float | None = None, scheduler=None, on_error: str = "record",
                    progress: bool = False) -> pd.DataFrame:
    """The pre-post correlation rho held (almost) fixed at each of ``values`` vs its prior.

    rho only enters arms reported as baseline/follow-up mean and SD. "Fixed" is a prior with
    SD ``sd`` at the value: a concentrated Beta when the spec's rho prior is Beta (same
    family, so no recompile), else TruncatedNormal(value, sd, -1, 1). Extra columns:
    ``rho_value`` (NaN for the prior) and ``prior``.
    """
    base_prior = spec.priors["rho"]
    quantities = list(DEFAULT_QUANTITIES if quantities is None else quantities)
    quantities += [] if "rho" in quantities else ["rho"]
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    scenarios = [Scenario(f"rho ~ {base_prior} (prior)", spec, evidence, fkw, quantities=quantities, method="mcmc",
                          meta={"family": "rho", "rho_value": np.nan, "prior": str(base_prior)})] if include_base else []
    for v in values:
        p = _tight_prior(base_prior, float(v), sd)
        scenarios.append(Scenario(f"rho = {v:g}", spec.replace(priors={"rho": p}), evidence, fkw,
                                  quantities=quantities, method="mcmc",
                                  meta={"family": "rho", "rho_value": float(v), "prior": str(p)}))
    df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
    if "quantity" in df and not (df["quantity"] == "rho").any():
        df["notes"] = [";  ".join(x for x in (n, "rho is not in this model (no baseline/follow-up arms)") if x)
                       for n in df["notes"]]
    return _finish(df)


def threshold_sensitivity(spec, evidence, *, thresholds: Sequence[float] = (0.5, 1.0, 1.5),
                          quantities: Sequence[str] | None = None, draws: int | None = None, tune: int | None = None,
                          chains: int | None = None, seed: int | None = None, target_accept: float | None = None,
                          scheduler=None, on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """Category counts (improved / stable / worsened) read with each default EDSS threshold.

    The spec option ``default_threshold`` applies to count rows whose study states no
    threshold (those arms are listed in ``notes``); thresholds are multiples of 0.5. Each
    threshold compiles its own model. Extra column: ``threshold`` (the spec's own is the base).
    When no count row relies on the default, the threshold changes nothing and the base model
    is refitted (noted).
    """
    if spec.outcome != "edss_change":
        raise ValueError("threshold_sensitivity applies to the edss_change outcome only")
    units = _prepare(spec, evidence).units
    affected = [lab for lab, f, t in zip(units["label"], units["formats"], units.get("threshold", pd.Series(
        [np.nan] * len(units)))) if "counts" in f and pd.isna(t)]
    note = ("default threshold applies to: " + ", ".join(affected)) if affected else \
        "no count row without a stated threshold: the default threshold changes nothing"
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    own = float(spec.options["default_threshold"])
    values = list(dict.fromkeys([own] + [float(t) for t in thresholds]))
    # with no count row relying on the default, every threshold is the base model (no compile)
    scenarios = [Scenario("base" if t == own else f"threshold {t:g}",
                          spec if t == own or not affected else spec.replace(options={"default_threshold": t}),
                          evidence, fkw, quantities=quantities, method="mcmc",
                          meta={"family": "threshold", "threshold": t})
                 for t in values]
    df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
    df["notes"] = [";  ".join(x for x in (n, note) if x) for n in df["notes"]]
    return _finish(df)


# ======================================================================================
# Leave one study out
# ======================================================================================


def _add_shift(df: pd.DataFrame, base_name: str = "base") -> pd.DataFrame:
    """shift = mean - base mean; shift_sd = shift / base sd (per quantity)."""
    base = df[df["scenario"] == base_name].drop_duplicates("quantity").set_index("quantity")
    df["shift"] = df["mean"] - df["quantity"].map(base["mean"])
    df["shift_sd"] = df["shift"] / df["quantity"].map(base["sd"])
    return df


def _loo_reweight_extract(fit, sc: Scenario) -> pd.DataFrame:
    """Base summary plus each study left out by PSIS importance reweighting of the base draws:
    log weights = minus the study's summed log likelihood per draw (its Pareto k in ``pareto_k``)."""
    draws = quantity_draws(fit, sc.quantities)
    r_eff = {q: _r_eff(x) for q, x in draws.items()}
    base = summarise(fit, sc)
    base.insert(0, "scenario", sc.name)
    base.insert(1, "left_out", "")
    base["method"] = "mcmc"
    frames = [base]
    ll = _study_loglik(fit, sc.extract_args["studies"])
    for s in ll["study"].values:
        w, k = _psis_weights(-ll.sel(study=s).values)
        frames.append(pd.DataFrame([{"scenario": f"without {s}", "left_out": s, "quantity": q,
                                     **_weighted_summary(x, w, r_eff=r_eff[q]), "pareto_k": k,
                                     "method": "reweight"}
                                    for q, x in draws.items()]))
    return concat(frames)


def leave_one_out(spec, evidence, *, studies: Sequence[str] | None = None,
                  quantities: Sequence[str] = ("msc_effect", "mu"), method: str = "auto", base_fit=None,
                  k_threshold: float = K_THRESHOLD, draws: int | None = None, tune: int | None = None,
                  chains: int | None = None, seed: int | None = None, target_accept: float | None = None,
                  scheduler=None, on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """Leave-one-study-out: each study's arms at zero likelihood weight.

    studies: the studies to leave out (default: every modelled study).
    method: "auto" (exact refits reusing the base model's compiled form; a plain effect-size
        table is answered by the exact oracle without the study), "mcmc" (refits always), or
        "reweight": PSIS importance reweighting of the base fit (``base_fit``, or one fit of
        ``spec``) with log weights minus the study's summed log likelihood per draw; a study
        whose Pareto k > ``k_threshold`` is refitted exactly (zero weight, MCMC) instead, so
        every row is trustworthy. Its rows say which (``method`` "reweight" or "mcmc") and
        carry ``pareto_k``.
    Extra columns: ``left_out`` (empty for the base), ``shift`` (posterior mean minus the base
    mean: the study's influence is minus this), ``shift_sd`` (shift in base posterior SDs) and
    ``pareto_k`` with ``method="reweight"``. A row notes when leaving the study out leaves no
    control arm (``msc_effect`` is then its prior).
    """
    if method not in ("auto", "mcmc", "reweight"):
        raise ValueError("method must be 'auto', 'mcmc' or 'reweight'")
    units = _prepare(spec, evidence).units
    modelled = list(dict.fromkeys(units["study"]))
    studies = modelled if studies is None else list(studies)
    unknown = set(studies) - set(modelled)
    if unknown:
        raise ValueError(f"studies {sorted(unknown)} are not among the modelled studies: {modelled}")
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    control_studies = set(units.loc[units["group"].fillna("msc") == "control", "study"])
    meta = {"family": "leave-one-out", "left_out": ""}

    def refit(s: str) -> Scenario:
        return Scenario(f"without {s}", spec, evidence, {**fkw, "exclude_studies": (s,)}, quantities=quantities,
                        method="mcmc" if method == "reweight" else method,
                        meta={"family": "leave-one-out", "left_out": s})

    if method != "reweight":
        scenarios = [Scenario("base", spec, evidence, fkw, quantities=quantities, method=method, meta=meta)]
        df = concat(run_scenarios(scenarios + [refit(s) for s in studies], scheduler=scheduler, on_error=on_error,
                                  progress=progress))
    else:
        rw = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_loo_reweight_extract,
                      extract_args={"studies": studies}, method="mcmc", meta=meta)
        if base_fit is not None:
            df = _tag(_loo_reweight_extract(base_fit, rw), rw, "mcmc", _sampler_notes(base_fit), np.nan)
        else:
            df = run_scenarios([rw], scheduler=scheduler, on_error="raise", progress=progress)[0]
        k = df.groupby("left_out")["pareto_k"].first()
        bad = [s for s in studies if not k[s] <= k_threshold]  # NaN k: refitted too
        if bad:
            fresh = concat(run_scenarios([refit(s) for s in bad], scheduler=scheduler, on_error=on_error,
                                         progress=progress))
            fresh["pareto_k"] = fresh["left_out"].map(k)
            fresh["notes"] = [";  ".join(x for x in (n, f"refitted: Pareto k = {kk:.2f} > {k_threshold:g}") if x)
                              for n, kk in zip(fresh["notes"], fresh["pareto_k"])]
            df = pd.concat([df[~df["left_out"].isin(bad)], fresh], ignore_index=True)
            order = {s: i for i, s in enumerate([""] + studies)}
            df = df.sort_values("left_out", key=lambda c: c.map(order), kind="stable")
    if control_studies:
        lonely = [s for s in studies if control_studies <= {s}]
        for s in lonely:
            m = (df["left_out"] == s) & (df["quantity"] == "msc_effect")
            df.loc[m, "notes"] = [";  ".join(x for x in (n, "no control arm left: msc_effect is its prior") if x)
                                  for n in df.loc[m, "notes"]]
    return _finish(_add_shift(df))


# ======================================================================================
# Evidence scenarios
# ======================================================================================


def _primary_only(spec, evidence):
    return spec.replace(options={"exclude_secondary": True}), evidence, \
        "values from secondary sources blanked (options.exclude_secondary)"


def _next_ranked(spec, evidence):
    """Demote, in each overlap group, the cohort(s) the base analysis uses, so the next-ranked one with data is used."""
    arms = evidence.arms
    used = set(zip(*[_prepare(spec, evidence).units[c] for c in ("study", "arm")]))
    grouped = arms["overlap_group"].notna()
    new_rank = arms["overlap_rank"].copy()
    changed = []
    for g, idx in arms[grouped].groupby("overlap_group").groups.items():
        members = arms.loc[idx]
        in_use = [i for i in idx if (arms.at[i, "study"], arms.at[i, "arm"]) in used]
        if in_use and len(members) > len(in_use):
            top = int(members["overlap_rank"].max())
            for i in in_use:
                new_rank[i] = top + 1
            changed.append(g)
    if not changed:
        return spec, evidence, "no overlapping cohort is used by this outcome: same as base"
    return spec, evidence.with_tables(arms=arms.assign(overlap_rank=new_rank)), \
        "next-ranked cohort preferred in " + ", ".join(changed)


def _all_timepoints(spec, evidence):
    return spec.replace(options={"timepoint": "all"}), evidence, \
        "every reported timepoint of an arm is a unit (options.timepoint = 'all'; not independent evidence)"


def _progressive(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: a["disease"].isin(PROGRESSIVE)), \
        "arms with disease " + "/".join(PROGRESSIVE)


def _without_nmo(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: ~a["disease"].isin(NMO)), \
        "arms with disease " + "/".join(NMO) + " left out"


#: The default evidence scenarios: name -> f(spec, evidence) -> (spec, evidence, description).
EVIDENCE_SCENARIOS: dict[str, Callable] = {
    "primary sources only": _primary_only,
    "next-ranked overlapping cohort": _next_ranked,
    "all timepoints": _all_timepoints,
    "progressive MS only": _progressive,
    "without NMO/NMOSD": _without_nmo,
}


def _as_exclusion(spec, evidence, spec2, evidence2) -> tuple[str, ...] | None:
    """The studies whose zero weight in the base model gives exactly the (spec2, evidence2) fit, or None.

    True when the spec is unchanged, the scenario's units are the base units minus whole
    studies, and their design rows are the same (extra base columns zero on them).
    """
    if spec2 != spec or evidence2 is evidence:
        return None
    try:
        p0, p1 = _prepare(spec, evidence), _prepare(spec2, evidence2)
    except Exception:  # noqa: BLE001 - e.g. no usable rows left: the scenario's own fit reports it
        return None
    u0, u1 = p0.units, p1.units
    lab0, lab1 = list(u0["label"]), list(u1["label"])
    if not set(lab1) <= set(lab0) or not _supports_exclusion(spec, evidence):
        return None
    removed = set(u0.loc[~u0["label"].isin(lab1), "study"])
    if set(u1["study"]) & removed:
        return None
    X0 = pd.DataFrame(p0.design.X, index=lab0, columns=list(p0.design.columns)).loc[lab1]
    X1 = pd.DataFrame(p1.design.X, index=lab1, columns=list(p1.design.columns))
    if not set(X1.columns) <= set(X0.columns):
        return None
    extra = [c for c in X0.columns if c not in X1.columns]
    same = np.allclose(X0[list(X1.columns)].to_numpy(), X1.to_numpy(), equal_nan=True)
    if not same or (extra and np.nan_to_num(X0[extra].to_numpy()).any()):
        return None

    def latent(p, labels):
        cols = list(p.design.columns)
        return {(labels[lt.row], cols[lt.column], lt.low, lt.high) for lt in p.design.latent}

    if {x for x in latent(p0, lab0) if x[0] in set(lab1)} != latent(p1, lab1):
        return None
    return tuple(sorted(removed))


def evidence_scenarios(spec, evidence, *, scenarios: Sequence[str] | Mapping[str, Callable] | None = None,
                       quantities: Sequence[str] | None = None, include_base: bool = True, method: str = "auto",
                       draws: int | None = None, tune: int | None = None, chains: int | None = None,
                       seed: int | None = None, target_accept: float | None = None, scheduler=None,
                       on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """The analysis under other readings of the evidence.

    scenarios: names from :data:`EVIDENCE_SCENARIOS` (default: all of them) —
    "primary sources only" (secondary-source values blanked), "next-ranked overlapping
    cohort" (in each overlap group the cohort used is demoted so the next-ranked one with
    data is used), "all timepoints" (``options.timepoint = "all"``), "progressive MS only",
    "without NMO/NMOSD" — or a mapping name -> ``f(spec, evidence) -> (spec, evidence, description)``.

    A subgroup that removes whole studies is fitted as an exact zero-weight refit of the base
    model (no compile; noted); other scenarios compile their own model. ``method`` as in
    :func:`leave_one_out`. Extra column: ``description``.
    """
    if scenarios is None:
        chosen = dict(EVIDENCE_SCENARIOS)
    elif isinstance(scenarios, Mapping):
        chosen = dict(scenarios)
    else:
        unknown = [s for s in scenarios if s not in EVIDENCE_SCENARIOS]
        if unknown:
            raise ValueError(f"unknown evidence scenarios {unknown}; known: {list(EVIDENCE_SCENARIOS)}")
        chosen = {s: EVIDENCE_SCENARIOS[s] for s in scenarios}
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    todo = [Scenario("base", spec, evidence, fkw, quantities=quantities, method=method,
                     meta={"family": "evidence", "description": "all evidence, spec as given"})] if include_base else []
    failed: dict[int, pd.DataFrame] = {}
    for name, make in chosen.items():
        try:
            spec2, ev2, description = make(spec, evidence)
        except Exception as exc:  # noqa: BLE001 - recorded like a failed fit
            if on_error == "raise":
                raise
            failed[len(todo) + len(failed)] = pd.DataFrame([{"scenario": name, "family": "evidence", "description": "",
                                                             "quantity": None, "method": "error",
                                                             "notes": f"{type(exc).__name__}: {exc}"}])
            continue
        excl = _as_exclusion(spec, evidence, spec2, ev2)
        if excl is not None:
            description += f" (exact zero-weight refit of the base model without {', '.join(excl) or 'no study'})"
            todo.append(Scenario(name, spec, evidence, {**fkw, "exclude_studies": excl}, quantities=quantities,
                                 method=method, meta={"family": "evidence", "description": description}))
        else:
            todo.append(Scenario(name, spec2, ev2, fkw, quantities=quantities, method=method,
                                 meta={"family": "evidence", "description": description}))
    results = list(run_scenarios(todo, scheduler=scheduler, on_error=on_error, progress=progress))
    for i in sorted(failed):
        results.insert(i, failed[i])
    return _finish(concat(results))


# ======================================================================================
# Model comparison
# ======================================================================================


def _study_loglik(fit, studies: Sequence[str] | None = None) -> xr.DataArray:
    """Per-study log likelihood (chain, draw, study): the sum of the per-arm log likelihood over a study's arms."""
    ll = fit.tree["log_likelihood"].to_dataset()
    da = ll[fit.spec.outcome] if fit.spec.outcome in ll else ll[list(ll.data_vars)[0]]
    study = fit.prepared.units["study"].to_numpy()
    da = da.assign_coords(study_of_arm=("arm", study)).groupby("study_of_arm").sum("arm")
    da = da.rename({"study_of_arm": "study"}).transpose("chain", "draw", "study")
    order = list(dict.fromkeys(study))
    da = da.sel(study=order if studies is None else list(studies))
    return da


def _logmeanexp(x: np.ndarray) -> float:
    from scipy.special import logsumexp

    x = np.asarray(x, dtype=float).ravel()
    return float(logsumexp(x) - math.log(x.size))


def _loo_extract(fit, sc: Scenario) -> pd.DataFrame:
    """PSIS-LOO with a study as the unit left out: per-study elpd, Pareto k and lppd."""
    import arviz_stats as azs

    da = _study_loglik(fit, sc.extract_args.get("studies"))
    tree = xr.DataTree.from_dict({"posterior": fit.tree["posterior"].to_dataset(),
                                  "log_likelihood": xr.Dataset({"study_loglik": da})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = azs.loo(tree, pointwise=True, var_name="study_loglik")
    lppd = [_logmeanexp(da.sel(study=s).values) for s in da["study"].values]
    return pd.DataFrame({"study": da["study"].values, "elpd_psis": res.elpd_i.values, "pareto_k": res.pareto_k.values,
                         "lppd": lppd, "n_samples": res.n_samples, "good_k": res.good_k})


def _heldout_extract(fit, sc: Scenario) -> pd.DataFrame:
    """log p(y_s | y_-s): log-mean-exp over the draws of a fit without study s of s's log likelihood,
    with its Monte Carlo SE (delta method on the MCSE of the mean density) and the Pareto k of
    the density draws (> 0.7: a few draws dominate the mean and the MCSE is not to be trusted)."""
    import arviz_stats as azs
    from arviz_stats.base import array_stats

    s = sc.extract_args["study"]
    ll = _study_loglik(fit, [s]).values[..., 0]  # (chain, draw)
    dens = np.exp(ll - ll.max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcse = float(azs.mcse(dens, method="mean")) / float(dens.mean())
        k = float(array_stats.pareto_khat(ll, tail="right", log_weights=True, r_eff=1.0))
    return pd.DataFrame({"study": [s], "elpd_exact": [_logmeanexp(ll)], "elpd_exact_mcse": [mcse],
                         "elpd_exact_k": [k]})


def _covariate_sets(covariate_sets) -> dict[str, tuple[str, ...]]:
    if isinstance(covariate_sets, Mapping):
        return {str(k): tuple(v) for k, v in covariate_sets.items()}
    return {(" + ".join(c) if c else "no covariates"): tuple(c) for c in covariate_sets}


def _aligned(specs: Mapping[str, Any], evidence) -> tuple[Any, dict[str, tuple[str, ...]], list[str], list[str]]:
    """Evidence and per-model left-out studies such that every model is scored on the same studies.

    Returns (evidence, {model: studies at zero weight}, common studies, notes).
    """
    notes: list[str] = []
    for _ in range(3):
        units = {m: _prepare(s, evidence).units for m, s in specs.items()}
        labels = {m: set(u["label"]) for m, u in units.items()}
        common = set.intersection(*labels.values())
        if all(lab == common for lab in labels.values()):
            studies = list(dict.fromkeys(next(iter(units.values()))["study"]))
            return evidence, {m: () for m in specs}, studies, notes
        excl: dict[str, tuple[str, ...]] = {}
        for m, u in units.items():
            removed = set(u.loc[~u["label"].isin(common), "study"])
            if set(u.loc[u["label"].isin(common), "study"]) & removed or not _supports_exclusion(specs[m], evidence):
                break
            excl[m] = tuple(sorted(removed))
        else:
            u0 = next(iter(units.values()))
            studies = list(dict.fromkeys(u0.loc[u0["label"].isin(common), "study"]))
            notes.append("scored on the studies every model can use; left out at zero weight: "
                         + "; ".join(f"{m}: {', '.join(e)}" for m, e in excl.items() if e))
            return evidence, excl, studies, notes
        pairs = {tuple(lab.split("@")[0].split(":", 1)) for lab in common}
        evidence = evidence.subset(arms_where=lambda a: pd.Series(list(zip(a["study"], a["arm"])), index=a.index)
                                   .isin(pairs))
        notes.append("evidence restricted to the arms every model can use")
    raise ValueError("the covariate sets select different arms and no common set could be found")


def compare_models(spec, evidence, covariate_sets, *, k_threshold: float = K_THRESHOLD, method: str = "stacking",
                   draws: int | None = None, tune: int | None = None, chains: int | None = None,
                   seed: int | None = None, target_accept: float | None = None, scheduler=None,
                   progress: bool = False) -> pd.DataFrame:
    """Compare covariate sets by leave-one-study-out predictive accuracy (ELPD).

    covariate_sets: ``[["route", "courses"], ["route"], []]`` or ``{name: covariates}``.
    Each model is fitted once; PSIS-LOO (ArviZ ``loo``) uses the per-study log likelihood
    (sum of the per-arm log likelihood over a study's arms), so the unit left out is a study.
    Studies with Pareto k > ``k_threshold`` get the exact value instead: a refit with the
    study at zero weight and log-mean-exp of its log likelihood over that fit's draws. The
    ELPDs go to ArviZ ``compare`` (``method`` = stacking weights by default). All models are
    scored on the same studies (arms a covariate set cannot use are left out of every model).

    Columns: scenario (model), covariates, rank, elpd, se, p, elpd_diff, dse, weight,
    n_studies, n_high_k (PSIS k > threshold), exact_refits, notes. ``df.attrs["pointwise"]``
    holds the per-study table (model, study, elpd_psis, pareto_k, lppd, elpd_exact with its
    Monte Carlo SE and the Pareto k of the held-out density draws, elpd (the one used), method).
    The exact value is itself a Monte Carlo mean over the refit's draws: for a study far from
    the others it is dominated by rare draws (e.g. the tail of tau) and biased low with few
    draws; a Pareto k > 0.7 of the density draws is noted, but k cannot see draws that were
    never made, so an outlier's value deserves more draws.
    """
    import arviz_stats as azs
    from arviz_stats.utils import ELPDDataLOO

    sets = _covariate_sets(covariate_sets)
    specs = {m: spec.replace(covariates=list(c)) for m, c in sets.items()}
    ev, excl, studies, notes = _aligned(specs, evidence)
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    first = [Scenario(m, s, ev, {**fkw, "exclude_studies": excl[m]}, extract=_loo_extract,
                      extract_args={"studies": studies}, method="mcmc") for m, s in specs.items()]
    psis = run_scenarios(first, scheduler=scheduler, on_error="raise", progress=progress)
    psis = dict(zip(specs, psis))
    second = [Scenario(f"{m} without {row.study}", specs[m], ev,
                       {**fkw, "exclude_studies": tuple(excl[m]) + (row.study,)},
                       extract=_heldout_extract, extract_args={"study": row.study}, method="mcmc", meta={"model": m})
              for m, df in psis.items() for row in df.itertuples() if row.pareto_k > k_threshold]
    exact = concat(run_scenarios(second, scheduler=scheduler, on_error="raise", progress=progress)) if second else None

    pointwise, elpds, rows = [], {}, []
    for m, df in psis.items():
        df = df[["study", "elpd_psis", "pareto_k", "lppd", "n_samples", "good_k"]].copy()
        df.insert(0, "model", m)
        ex = exact[exact["model"] == m].set_index("study") if exact is not None else \
            pd.DataFrame(columns=["elpd_exact", "elpd_exact_mcse", "elpd_exact_k"], dtype=float)
        for c in ("elpd_exact", "elpd_exact_mcse", "elpd_exact_k"):
            df[c] = df["study"].map(ex[c])
        df["elpd"] = df["elpd_exact"].fillna(df["elpd_psis"])
        df["method"] = np.where(df["elpd_exact"].notna(), "exact refit", "psis")
        pointwise.append(df)
        n = len(df)
        elpd_i = xr.DataArray(df["elpd"].to_numpy(), dims="study", coords={"study": df["study"].to_numpy()})
        k_left = xr.DataArray(np.where(df["elpd_exact"].notna(), np.nan, df["pareto_k"]), dims="study",
                              coords={"study": df["study"].to_numpy()})
        good_k = float(df["good_k"].iloc[0])
        elpds[m] = ELPDDataLOO(elpd=float(elpd_i.sum()), se=float(math.sqrt(n * np.var(elpd_i.values))),
                               p=float((df["lppd"] - df["elpd"]).sum()), n_samples=int(df["n_samples"].iloc[0]),
                               n_data_points=n, scale="log", warning=bool((k_left > good_k).any()), good_k=good_k,
                               elpd_i=elpd_i, pareto_k=k_left)
        shaky = df.loc[df["elpd_exact_k"] > K_THRESHOLD, "study"]
        rows.append({"scenario": m, "covariates": ", ".join(sets[m]) or "(none)", "n_studies": n,
                     "n_high_k": int((df["pareto_k"] > k_threshold).sum()),
                     "exact_refits": ", ".join(df.loc[df["elpd_exact"].notna(), "study"]),
                     "model_notes": ("exact refit estimate dominated by a few draws (Pareto k > "
                                     f"{K_THRESHOLD}; needs more draws): " + ", ".join(shaky)) if len(shaky) else ""})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = azs.compare(elpds, method=method, round_to="none")
    out = pd.DataFrame(rows).set_index("scenario")
    keep = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight", "p_worse", "diag_diff") if c in cmp]
    out = cmp[keep].join(out).reset_index(names="scenario")
    out.insert(1, "family", "model comparison")
    out["notes"] = [";  ".join(x for x in (mn, "; ".join(notes)) if x) for mn in out.pop("model_notes")]
    out.attrs["pointwise"] = pd.concat(pointwise, ignore_index=True)
    out.attrs["k_threshold"] = k_threshold
    return out


# ======================================================================================
# For the report
# ======================================================================================


class ReportSensitivity(NamedTuple):
    """What the report shows: the compact scenario table and the power-scaling table."""

    table: pd.DataFrame
    psense: pd.DataFrame


_QUANTITY_LABELS = {"msc_effect": "pooled MSC effect (MSC minus control)", "mu": "pooled mean (MSC arms)",
                    "route_contrast[IT vs IV]": "IT vs IV contrast"}


def report_table(frames: Sequence[pd.DataFrame], *, quantities: Sequence[str], base: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
    """The compact table: one row per (family, scenario, quantity) for the headline quantities.

    Columns: family, scenario, quantity, label, median, eti95_lower, eti95_upper, prob_below_0,
    shift (median minus the base median), method, notes. ``base`` (rows of the base fit)
    defaults to the first frame's rows with scenario "base"; other "base" rows are dropped.
    """
    frames = [f for f in frames if f is not None and len(f)]
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["scenario", "quantity"])
    if base is None:
        base = allrows[allrows["scenario"] == "base"].drop_duplicates("quantity")
    base = base.assign(family="base", scenario="base")
    rest = allrows[allrows["scenario"] != "base"]
    df = pd.concat([base, rest], ignore_index=True)
    df = df[df["quantity"].isin(list(quantities))].copy()
    bmed = base.drop_duplicates("quantity").set_index("quantity")["median"]
    df["shift"] = df["median"] - df["quantity"].map(bmed)
    df["label"] = df["quantity"].map(lambda q: _QUANTITY_LABELS.get(q, q))
    cols = ["family", "scenario", "quantity", "label", "median", LOWER, UPPER, "prob_below_0", "shift", "method", "notes"]
    df = df.reindex(columns=cols).reset_index(drop=True)
    df["notes"] = df["notes"].fillna("")
    df.attrs["interval"] = INTERVAL_LABEL
    return df


def _base_extract(fit, sc: Scenario) -> dict[str, pd.DataFrame]:
    return {"summary": summarise(fit, sc), "psense": power_scaling(fit, scenario=sc.name)}


#: Families run by :func:`sensitivity_for_report` by default.
REPORT_FAMILIES = ("prior", "rho", "threshold", "evidence", "leave-one-out")


def sensitivity_for_report(spec, evidence, *, families: Sequence[str] = REPORT_FAMILIES, prior_method: str = "auto",
                           refit_unreliable: bool | str = True, loo_method: str = "auto",
                           thresholds: Sequence[float] = (0.5, 1.0), rho_values: Sequence[float] = (0.2, 0.5, 0.8),
                           evidence_names: Sequence[str] | None = None, draws: int | None = None,
                           tune: int | None = None, chains: int | None = None, seed: int | None = None,
                           target_accept: float | None = None, scheduler=None, progress: bool = False
                           ) -> ReportSensitivity:
    """The sensitivity results the report shows, for one spec on the evidence.

    ``table`` (:func:`report_table`): per scenario of each family in ``families`` ("prior",
    "rho" (when the model has rho), "threshold" (EDSS only), "evidence", "leave-one-out"), the
    pooled MSC effect (``msc_effect``, or ``mu`` when no control arm is modelled) and the
    IT-vs-IV route contrast (when route is a covariate): median, 95% ETI, P(< 0) and shift
    from the base. ``psense`` (:func:`power_scaling`) of the base fit. Families that change
    the model's structure (other prior families, thresholds, most evidence scenarios)
    compile a model each; the rest reuse the base model. ``prior_method`` and
    ``refit_unreliable`` are passed to :func:`prior_sensitivity` (with ``prior_method="reweight"``
    and ``refit_unreliable="same-family"`` the prior family compiles nothing). ``loo_method`` is
    passed to :func:`leave_one_out` ("reweight": PSIS reweighting of the base fit, exact refits
    only of studies with Pareto k > 0.7).
    """
    pooled, contrast = headline_quantities(spec, evidence)
    quantities = [pooled] + ([contrast] if contrast else [])
    kw = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept,
          "scheduler": scheduler, "progress": progress}
    fkw = _fit_kwargs(draws, tune, chains, seed, target_accept)
    base_sc = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_base_extract, method="mcmc")
    base = run_scenarios([base_sc], scheduler=scheduler, on_error="raise", progress=progress)[0]
    frames = []
    has_rho = False
    if "rho" in families and spec.outcome == "edss_change":
        has_rho = "baseline_followup" in {f for fs in _prepare(spec, evidence).units["formats"] for f in fs}
    for fam in families:
        if fam == "prior":
            frames.append(prior_sensitivity(spec, evidence, quantities=quantities, method=prior_method,
                                            refit_unreliable=refit_unreliable, include_base=False, **kw))
        elif fam == "rho" and has_rho:
            frames.append(rho_sensitivity(spec, evidence, values=rho_values, quantities=quantities,
                                          include_base=False, **kw))
        elif fam == "threshold" and spec.outcome == "edss_change":
            frames.append(threshold_sensitivity(spec, evidence, thresholds=[t for t in thresholds
                                                if t != spec.options["default_threshold"]] or thresholds,
                                                quantities=quantities, **kw))
        elif fam == "evidence":
            frames.append(evidence_scenarios(spec, evidence, scenarios=evidence_names, quantities=quantities,
                                             include_base=False, **kw))
        elif fam == "leave-one-out":
            frames.append(leave_one_out(spec, evidence, quantities=quantities, method=loo_method, **kw))
        elif fam not in ("rho", "threshold"):
            raise ValueError(f"unknown family {fam!r}; choose from {REPORT_FAMILIES}")
    base_rows = base["summary"].assign(method="mcmc")
    table = report_table(frames, quantities=quantities, base=base_rows)
    return ReportSensitivity(table, base["psense"])


# ======================================================================================
# Figures
# ======================================================================================

_BASE_COLOUR = "#b2182b"
_POINT = "#1f5fa8"
_REWEIGHT = "#e08214"


def _plain(text: object) -> str:
    return str(text).replace("$", r"\$")


def plot_scenarios(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, base: str | None = "base",
                   label: str = "scenario", group: str | None = None, sort_by_shift: bool = False,
                   title: str | None = None, reference: float | None = 0.0) -> Figure:
    """Median and 95% ETI of each scenario (rows), one panel per quantity; the base scenario's
    interval is shaded and its median dashed. Reweighted rows are open circles."""
    df = df[df["quantity"].notna()]
    qs = list(dict.fromkeys(df["quantity"])) if quantities is None else [q for q in quantities if q in set(df["quantity"])]
    if not qs:
        raise ValueError("nothing to plot: no rows for the requested quantities")
    keys = ([group] if group else []) + [label]
    rows = list(dict.fromkeys(tuple(r) for r in df[keys].itertuples(index=False)))
    if sort_by_shift and "shift" in df:
        first = df[df["quantity"] == qs[0]]
        mag = {tuple(r[:-1]): abs(float(r[-1])) if pd.notna(r[-1]) else 0.0
               for r in first[keys + ["shift"]].itertuples(index=False)}
        groups = list(dict.fromkeys(r[0] for r in rows)) if group else [None]
        rows = [r for g in groups for r in sorted((r for r in rows if group is None or r[0] == g),
                                                   key=lambda r: (r[-1] != base, -mag.get(r, 0.0)))]
    n = len(rows)
    fig = Figure(figsize=(2.2 + 3.0 * len(qs), 1.2 + 0.28 * n), layout="constrained")
    axes = fig.subplots(1, len(qs), sharey=True, squeeze=False)[0]
    ypos = {r: n - 1 - i for i, r in enumerate(rows)}
    for ax, q in zip(axes, qs):
        sub = df[df["quantity"] == q]
        if base is not None and (sub[label] == base).any():
            b = sub[sub[label] == base].iloc[0]
            ax.axvspan(b[LOWER], b[UPPER], color=_BASE_COLOUR, alpha=0.08, lw=0)
            ax.axvline(b["median"], color=_BASE_COLOUR, ls="--", lw=1)
        if reference is not None:
            ax.axvline(reference, color="#888888", lw=0.8, ls=":")
        for r in sub.itertuples(index=False):
            key = tuple(getattr(r, k) for k in keys)
            y = ypos[key]
            if not np.isfinite(r.median):
                continue
            rw = getattr(r, "method", "") == "reweight"
            colour = _REWEIGHT if rw else (_BASE_COLOUR if getattr(r, label) == base else _POINT)
            ax.plot([getattr(r, LOWER), getattr(r, UPPER)], [y, y], color=colour, lw=1.6)
            ax.plot([r.median], [y], "o", color=colour, mfc="white" if rw else colour, ms=5)
        ax.set_title(_plain(_QUANTITY_LABELS.get(q, q)), fontsize=9)
        ax.set_xlabel(f"median and {INTERVAL_LABEL}", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks([ypos[r] for r in rows])
    axes[0].set_yticklabels([_plain(r[-1]) for r in rows], fontsize=8)
    if group:
        prev = None
        for r in rows:
            if r[0] != prev and prev is not None:
                for ax in axes:
                    ax.axhline(ypos[r] + 0.5, color="#cccccc", lw=0.8)
            prev = r[0]
        for g in dict.fromkeys(r[0] for r in rows):
            ys = [ypos[r] for r in rows if r[0] == g]
            axes[-1].annotate(_plain(g), xy=(1.02, (max(ys) + 0.5) / n if n else 0), xycoords=("axes fraction", "axes fraction"),
                              fontsize=8, fontweight="bold", va="top", ha="left", annotation_clip=False)
    axes[0].set_ylim(-0.7, n - 0.3)
    if "method" in df and (df["method"] == "reweight").any():
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=_BASE_COLOUR, ls="--", lw=1, label=f"base median (band: base {INTERVAL_LABEL})"),
                   Line2D([], [], color=_POINT, marker="o", label="refit (MCMC or exact)"),
                   Line2D([], [], color=_REWEIGHT, marker="o", mfc="white", label="importance reweighting")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(_plain(title), fontsize=10)
    return fig


def plot_prior_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, title: str | None = None
                           ) -> Figure:
    """:func:`plot_scenarios` of a :func:`prior_sensitivity` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Prior sensitivity (one prior changed at a time)")


def plot_rho_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, title: str | None = None
                         ) -> Figure:
    """:func:`plot_scenarios` of a :func:`rho_sensitivity` table."""
    base = next((s for s in df["scenario"] if str(s).endswith("(prior)")), None)
    return plot_scenarios(df, quantities=quantities, base=base,
                          title=title or "Pre-post correlation rho fixed vs its prior")


def plot_threshold_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None,
                               title: str | None = None) -> Figure:
    """:func:`plot_scenarios` of a :func:`threshold_sensitivity` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Default EDSS threshold of category counts")


def plot_evidence_scenarios(df: pd.DataFrame, *, quantities: Sequence[str] | None = None,
                            title: str | None = None) -> Figure:
    """:func:`plot_scenarios` of an :func:`evidence_scenarios` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Evidence scenarios")


def plot_leave_one_out(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, sort_by_shift: bool = False,
                       title: str | None = None) -> Figure:
    """Each leave-one-study-out posterior against the base (shaded): a study's influence is how
    far its row moves from the base."""
    how = (f"reweighted; exact refits where Pareto k > {K_THRESHOLD:g}"
           if "method" in df and (df["method"] == "reweight").any() else "exact refits")
    return plot_scenarios(df, quantities=quantities, sort_by_shift=sort_by_shift,
                          title=title or f"Leave one study out ({how})")


def plot_power_scaling(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Prior and likelihood power-scaling sensitivity per quantity, with the diagnosis threshold."""
    df = df.reset_index(drop=True)
    n = len(df)
    fig = Figure(figsize=(6.5, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    ax.barh(y + 0.18, df["prior_sensitivity"], height=0.34, color="#1f5fa8", label="prior")
    ax.barh(y - 0.18, df["likelihood_sensitivity"], height=0.34, color="#999999", label="likelihood")
    thr = float(df["threshold"].iloc[0]) if n else 0.05
    ax.axvline(thr, color=_BASE_COLOUR, ls="--", lw=1, label=f"threshold {thr:g}")
    ax.set_yticks(y)
    ax.set_yticklabels([_plain(f"{q}  [{d}]") for q, d in zip(df["quantity"], df["diagnosis"])], fontsize=8)
    ax.set_xlabel("power-scaling sensitivity (CJS distance gradient)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_plain(title or "Power-scaling sensitivity of the hyperpriors"), fontsize=10)
    return fig


def plot_model_comparison(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """ELPD (leave one study out) of each model with its SE, and the difference to the best with its SE."""
    df = df.sort_values("elpd", ascending=False).reset_index(drop=True)
    n = len(df)
    fig = Figure(figsize=(7.5, 1.4 + 0.45 * n), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)[::-1]
    ax1.errorbar(df["elpd"], y, xerr=df["se"], fmt="o", color=_POINT)
    ax2.errorbar(df["elpd_diff"], y, xerr=df["dse"], fmt="o", color=_BASE_COLOUR)
    ax2.axvline(0, color="#888888", lw=0.8, ls=":")
    ax1.set_yticks(y)
    ax1.set_ylim(-0.6, n - 0.4)
    ax1.set_yticklabels([_plain(f"{s} (w={w:.2f})") for s, w in zip(df["scenario"], df["weight"])], fontsize=8)
    ax1.set_xlabel("ELPD, leave one study out (± SE)")
    ax2.set_xlabel("ELPD difference to the best (± SE)")
    fig.suptitle(_plain(title or "Model comparison (PSIS-LOO, exact refits where Pareto k is high)"), fontsize=10)
    return fig


def plot_sensitivity_grid(table: pd.DataFrame, *, quantities: Sequence[str] | None = None, sort_by_shift: bool = True,
                          title: str | None = None) -> Figure:
    """Tornado-style grid of :func:`sensitivity_for_report`'s table: scenarios grouped by family
    (sorted by how far they move the first quantity's median), one panel per headline quantity,
    the base interval shaded."""
    return plot_scenarios(table, quantities=quantities, group="family", sort_by_shift=sort_by_shift,
                          title=title or "Sensitivity of the headline estimates")
