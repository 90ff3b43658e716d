"""Prior sensitivity: refits (or PSIS importance reweighting of the base fit) under alternative
hyperpriors, one grid entry at a time (:func:`prior_sensitivity`, :func:`default_prior_grid`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from msc_bayes import outcomes
from msc_bayes.outcomes.base import has_control
from msc_bayes.sensitivity.base import (
    K_THRESHOLD,
    ReportRequest,
    add_note,
    finish,
    fit_kwargs,
    prepare,
    psis_weights,
    r_eff,
    sig,
    weighted_summary,
)
from msc_bayes.spec import Prior
from msc_bayes.sweep import (
    Scenario,
    concat,
    quantity_draws,
    run_scenarios,
    sampler_notes,
    summarise,
    tag,
)


def _prior_median(prior: Prior) -> float:
    """Median of a prior on (0, inf), from its density on a log grid."""
    t = np.exp(np.linspace(-14, 8, 4001))
    dens = np.exp(prior.logpdf(t)) * t
    cdf = np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(np.log(t)))
    return float(np.interp(0.5 * cdf[-1], cdf, t[1:]))


def default_prior_grid(spec, evidence=None) -> dict[str, list[Prior]]:
    """The alternative priors tried one at a time by :func:`prior_sensitivity`.

    With ``m`` the median of the spec's ``tau`` prior and ``s = m / 0.6745`` (the half-normal
    scale with that median; s = 0.5 for the EDSS default):

    - ``tau``: HalfNormal(s/2), HalfNormal(2s) (less / more heterogeneity), and three other
      shapes with the same median m: HalfCauchy(m) (heavy tail), HalfStudentT(3, m/0.765)
      and LogNormal(log m, 1) (no mass piled up at tau = 0);
    - ``mu``: the spec's Normal with half and twice its SD;
    - ``beta`` (when there are covariates): half and twice its SD (the coefficients it is the prior of: those
      without a ``beta_<covariate>[_<level>]`` prior of their own); each coefficient prior the spec gives:
      half and twice its SD too;
    - ``msc_effect`` (when a control arm is modelled; needs ``evidence``): half and twice its SD.

    Priors that are not Normal for mu/beta/msc_effect get Normal(0, 0.5) and Normal(0, 2)
    instead. The tau alternatives of another family each compile a new model.
    """
    grid: dict[str, list[Prior]] = {}
    m = _prior_median(spec.priors["tau"])
    s = m / 0.6745
    grid["tau"] = [
        Prior("HalfNormal", {"sigma": sig(s / 2)}),
        Prior("HalfNormal", {"sigma": sig(2 * s)}),
        Prior("HalfCauchy", {"beta": sig(m)}),
        Prior("HalfStudentT", {"nu": 3, "sigma": sig(m / 0.7649)}),
        Prior("LogNormal", {"mu": sig(math.log(m), 4), "sigma": 1}),
    ]
    grid["tau"] = [p for p in grid["tau"] if p != spec.priors["tau"]]

    def scaled(key: str) -> list[Prior]:
        p = spec.priors[key]
        if p.dist == "Normal":
            return [Prior("Normal", {"mu": p.params["mu"], "sigma": sig(p.params["sigma"] / 2)}),
                    Prior("Normal", {"mu": p.params["mu"], "sigma": sig(p.params["sigma"] * 2)})]
        return [Prior("Normal", {"mu": 0, "sigma": 0.5}), Prior("Normal", {"mu": 0, "sigma": 2})]

    grid["mu"] = scaled("mu")
    if spec.covariates and "beta" in spec.priors:
        grid["beta"] = scaled("beta")
        for key in spec.priors:
            if key.startswith("beta_") and key not in spec.outcome_info.priors:
                grid[key] = scaled(key)
    if evidence is not None and "msc_effect" in spec.priors and has_control(prepare(spec, evidence).units):
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


def _prior_text(changes: Mapping[str, Prior]) -> str:
    return "; ".join(f"{k} ~ {p}" for k, p in changes.items())


def log_prior(spec, key: str, da) -> np.ndarray:
    """The log prior density of the draws `da` (an xarray DataArray) of a variable the prior `key` sets, per
    element: ``beta`` (dim covariate) each coefficient under its own prior (``Spec.coefficient_prior``), any
    other variable under ``spec.priors[key]``."""
    if key == "beta" and "covariate" in da.dims:
        out = np.empty(da.shape)
        axis = da.dims.index("covariate")
        for i, column in enumerate(da["covariate"].values):
            index = (slice(None),) * axis + (i,)
            out[index] = spec.coefficient_prior(str(column)).logpdf(da.values[index])
        return out
    return spec.priors[key].logpdf(da.values)


def _log_ratio(fit, changes: Mapping[str, Prior]) -> np.ndarray:
    """log p_new(draws) - log p_old(draws) over the variables the changed prior keys set, per (chain, draw):
    the spec with the changes against the fit's (a ``beta`` change moves the coefficients without a prior of
    their own; a ``beta_<covariate>`` change those it sets)."""
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    out = np.zeros(shape)
    old, new = fit.spec, fit.spec.replace(priors=changes)
    outcome = outcomes.get(fit.spec.outcome)
    keys = {k if k in outcome.priors else "beta" for k in changes}  # a coefficient's own key sets beta
    variables = {v: k for k in keys for v in outcome.variables_of(k)}
    for var, key in variables.items():
        if var in post:
            da = post[var].transpose("chain", "draw", ...)
            d = log_prior(new, key, da) - log_prior(old, key, da)
            out += d.reshape(shape + (-1,)).sum(axis=-1)
    return out


def _reweight_extract(fit, sc: Scenario) -> pd.DataFrame:
    """Base summary plus each alternative prior by PSIS importance reweighting of the base draws."""
    draws = quantity_draws(fit, sc.quantities)
    r_effs = {q: r_eff(x) for q, x in draws.items()}
    frames = []
    base = summarise(fit, sc)
    base.insert(0, "scenario", sc.name)
    base.insert(1, "target", sc.meta.get("target", ""))
    base.insert(2, "prior", sc.meta.get("prior", ""))
    base["method"], base["notes"] = "mcmc", sampler_notes(fit)
    frames.append(base)
    for label, target, changes in sc.extract_args["alternatives"]:
        w, k = psis_weights(_log_ratio(fit, changes))
        rows = [{"scenario": label, "target": target, "prior": _prior_text(changes), "quantity": q,
                 **weighted_summary(x, w, r_eff=r_effs[q]), "pareto_k": k, "method": "reweight",
                 "notes": f"Pareto k = {float(k):.2f} > {K_THRESHOLD}: unreliable" if k > K_THRESHOLD else ""}
                for q, x in draws.items()]
        frames.append(pd.DataFrame(rows))
    return concat(frames)


def _refit_unreliable(df, entries, refit, spec, *, k_threshold, refit_unreliable, run) -> pd.DataFrame:
    """Replace the reweighted entries with Pareto k > ``k_threshold`` by MCMC refits (all of them, or
    with ``refit_unreliable="same-family"`` only those keeping the base prior families)."""
    bad = df.loc[df["pareto_k"] > k_threshold, "scenario"].unique()
    if refit_unreliable == "same-family":
        same = {e[0] for e in entries if all(p.dist == spec.priors[k].dist for k, p in e[2].items())}
        bad = [b for b in bad if b in same]
    if not len(bad):
        return df
    todo = [refit(*e) for e in entries if e[0] in set(bad)]
    fresh = concat(run(todo))
    fresh["pareto_k"] = fresh["scenario"].map(df.groupby("scenario")["pareto_k"].first())
    fresh["notes"] = [add_note(n, f"refitted: Pareto k = {k:.2f} > {k_threshold}")
                      for n, k in zip(fresh["notes"], fresh["pareto_k"])]
    order = {s: i for i, s in enumerate(df["scenario"].unique())}
    df = pd.concat([df[~df["scenario"].isin(bad)], fresh], ignore_index=True)
    return df.sort_values("scenario", key=lambda s: s.map(order), kind="stable")


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
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    base_prior = "; ".join(f"{k} ~ {spec.priors[k]}" for k in dict.fromkeys(t for _, t, c in entries for t in c))

    def refit(label, target, changes) -> Scenario:
        return Scenario(label, spec.replace(priors=changes), evidence, fkw, quantities=quantities,
                        method="mcmc" if method == "reweight" else method,
                        meta={"family": "prior", "target": target, "prior": _prior_text(changes)})

    def run(scenarios):
        return run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress)

    base = Scenario("base", spec, evidence, fkw, quantities=quantities,
                    method="mcmc" if method == "reweight" else method,
                    meta={"family": "prior", "target": "", "prior": base_prior})
    if method != "reweight":
        return finish(concat(run(([base] if include_base else []) + [refit(*e) for e in entries])))

    rw = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_reweight_extract,
                  extract_args={"alternatives": entries}, method="mcmc",
                  meta={"family": "prior", "target": "", "prior": base_prior})
    if base_fit is not None:
        df = tag(_reweight_extract(base_fit, rw), rw, "mcmc", "", np.nan)
    else:
        df = run_scenarios([rw], scheduler=scheduler, on_error="raise", progress=progress)[0]
    if not include_base:
        df = df[df["scenario"] != "base"]
    if refit_unreliable not in (True, False, "same-family"):
        raise ValueError("refit_unreliable must be True, False or 'same-family'")
    if refit_unreliable:
        df = _refit_unreliable(df, entries, refit, spec, k_threshold=k_threshold,
                               refit_unreliable=refit_unreliable, run=run)
    return finish(df, "prior")


class PriorFamily:
    """The report's "prior" family: alternative hyperpriors."""

    family = "prior"

    def applies(self, spec, evidence) -> bool:
        return True

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        return prior_sensitivity(spec, evidence, quantities=request.quantities, method=request.prior_method,
                                 refit_unreliable=request.refit_unreliable, include_base=False, **request.kw)
