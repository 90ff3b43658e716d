"""Covariate sets compared by leave-one-study-out PSIS-LOO, with exact refits for studies whose
Pareto k is too high (:func:`compare_models`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import results
from msc_bayes.sensitivity.base import (
    K_THRESHOLD,
    add_note,
    fit_kwargs,
    prepare,
    study_loglik,
    supports_exclusion,
)
from msc_bayes.sweep import Scenario, concat, run_scenarios


def _logmeanexp(x: np.ndarray) -> float:
    from scipy.special import logsumexp

    x = np.asarray(x, dtype=float).ravel()
    return float(logsumexp(x) - math.log(x.size))


def _loo_extract(fit, sc: Scenario) -> pd.DataFrame:
    """PSIS-LOO with a study as the unit left out: per-study elpd, Pareto k and lppd."""
    import arviz_stats as azs

    da = study_loglik(fit, sc.extract_args.get("studies"))
    tree = xr.DataTree.from_dict({"posterior": results.group(fit, "posterior"),
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
    ll = study_loglik(fit, [s]).values[..., 0]  # (chain, draw)
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
        units = {m: prepare(s, evidence).units for m, s in specs.items()}
        labels = {m: set(u["label"]) for m, u in units.items()}
        common = set.intersection(*labels.values())
        if all(lab == common for lab in labels.values()):
            studies = list(dict.fromkeys(next(iter(units.values()))["study"]))
            return evidence, {m: () for m in specs}, studies, notes
        excl: dict[str, tuple[str, ...]] = {}
        for m, u in units.items():
            removed = set(u.loc[~u["label"].isin(common), "study"])
            if set(u.loc[u["label"].isin(common), "study"]) & removed or not supports_exclusion(specs[m], evidence):
                break
            excl[m] = tuple(sorted(removed))
        else:
            u0 = next(iter(units.values()))
            studies = list(dict.fromkeys(u0.loc[u0["label"].isin(common), "study"]))
            notes.append("scored on the studies every model can use; left out at zero weight: "
                         + "; ".join(f"{m}: {', '.join(e)}" for m, e in excl.items() if e))
            return evidence, excl, studies, notes
        pairs = {tuple(lab.split("@")[0].split(":", 1)) for lab in common}
        evidence = evidence.subset(arms_where=lambda a, pairs=pairs: pd.Series(list(zip(a["study"], a["arm"])),
                                                                              index=a.index).isin(pairs))
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
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
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
    out["notes"] = [add_note(mn, "; ".join(notes)) for mn in out.pop("model_notes")]
    out.attrs["pointwise"] = pd.concat(pointwise, ignore_index=True)
    out.attrs["k_threshold"] = k_threshold
    return out
