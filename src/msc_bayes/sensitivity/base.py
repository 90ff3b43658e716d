"""What every sensitivity analysis shares: the table layout, sampler settings, the headline
quantities, importance-weighted summaries (PSIS) and the protocol an analysis of the report keeps.

Each analysis module (:mod:`.prior`, :mod:`.power_scaling`, :mod:`.rho`, :mod:`.threshold`,
:mod:`.leave_one_out`, :mod:`.evidence_scenarios`, :mod:`.compare`) builds on these; the report's
use of them (which families, which settings) is :mod:`.report_policy`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import INTERVAL_PROB, inference, outcomes, results
from msc_bayes.sweep import LOWER, SUMMARY_COLUMNS, UPPER

INTERVAL_LABEL = results.interval_text()
#: Pareto k above which an importance-sampling or PSIS-LOO estimate is not trusted
#: (Vehtari et al. 2024); such scenarios / studies are refitted exactly.
K_THRESHOLD = 0.7
#: How the headline quantities are labelled in the report's table and the figures.
QUANTITY_LABELS = {"msc_effect": "pooled MSC effect (MSC minus control)", "mu": "pooled mean (MSC arms)",
                   "route_contrast[IT vs IV]": "IT vs IV contrast"}


def fit_kwargs(draws=None, tune=None, chains=None, seed=None, target_accept=None) -> dict:
    """The sampler settings that were given (the others default to the spec's)."""
    kw = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    return {k: v for k, v in kw.items() if v is not None}


_TRAILING = ("pareto_k", "shift", "shift_sd", "method", "notes", "seconds", "divergences")


def finish(df: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
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


def add_note(notes: str, note: str) -> str:
    """A row's notes with one more note (separated by ``";  "``)."""
    return ";  ".join(x for x in (notes, note) if x)


def prepare(spec, evidence):
    """The outcome's `prepare(spec, evidence)` (pure: selection of units, design)."""
    return outcomes.get(spec.outcome).prepare(spec, evidence)


_WEIGHTED: dict[str, bool] = {}


def supports_exclusion(spec, evidence) -> bool:
    """Does the outcome's model take unit weights (exact leave-out without recompiling)?"""
    key = inference.structure_key(spec, evidence)
    if key not in _WEIGHTED:
        model, _ = inference.build(spec, evidence)
        _WEIGHTED[key] = "unit_weight" in {d.name for d in model.data_vars}
    return _WEIGHTED[key]


def headline_quantities(spec, evidence) -> tuple[str, str | None]:
    """(pooled effect, route contrast) of the spec's fit on the evidence (:meth:`msc_bayes.outcomes.Outcome.headline_for`)."""
    return outcomes.get(spec.outcome).headline_for(spec, prepare(spec, evidence).units)


def study_loglik(fit, studies: Sequence[str] | None = None) -> xr.DataArray:
    """Per-study log likelihood (chain, draw, study): the sum of the per-arm log likelihood over a study's arms."""
    ll = results.group(fit, "log_likelihood")
    da = ll[fit.spec.outcome] if fit.spec.outcome in ll else ll[next(iter(ll.data_vars))]
    study = fit.prepared.units["study"].to_numpy()
    da = da.assign_coords(study_of_arm=("arm", study)).groupby("study_of_arm").sum("arm")
    da = da.rename({"study_of_arm": "study"}).transpose("chain", "draw", "study")
    order = list(dict.fromkeys(study))
    da = da.sel(study=order if studies is None else list(studies))
    return da


def without_studies_rows(fit, draws: dict[str, np.ndarray], r_effs: dict[str, float],
                         left_out: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Rows of the base fit's draws reweighted by PSIS to leave out studies: per scenario name, the
    studies it leaves out; log weights = minus their summed log likelihood per draw (the exact
    importance ratio of the zero-weight fit to the base fit). Columns: scenario, quantity, the
    weighted summary, ``pareto_k`` and ``method`` "reweight"."""
    ll = study_loglik(fit)
    rows = []
    for name, studies in left_out.items():
        log_lik = ll.sel(study=list(studies)).sum("study").values
        w, k = psis_weights(-log_lik)
        rows += [{"scenario": name, "quantity": q, **weighted_summary(x, w, r_eff=r_effs[q]), "pareto_k": k,
                  "method": "reweight"} for q, x in draws.items()]
    return pd.DataFrame(rows)


def sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits (readable prior parameters)."""
    return float(f"{x:.{digits}g}")


# --------------------------------------------------------------------------------------
# Weighted summaries (importance reweighting)
# --------------------------------------------------------------------------------------


def r_eff(x: np.ndarray) -> float:
    """Relative efficiency of the (chain, draw) draws of a quantity for its mean: ESS / draws, at most 1."""
    import arviz_stats as azs

    x = np.asarray(x, dtype=float)
    if np.ptp(x) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(min(1.0, azs.ess(x, method="mean") / x.size))


def weighted_summary(x: np.ndarray, w: np.ndarray, prob: float = INTERVAL_PROB, r_eff: float = 1.0
                     ) -> dict[str, float]:
    """Summary of draws ``x`` with normalised importance weights ``w``. The ESS and the MCSE of
    the weighted mean (sum of w^2 (x - mean)^2) are those of independent draws divided by
    ``r_eff`` (:func:`r_eff` of the unweighted draws: their autocorrelation)."""
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


def psis_weights(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
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


# --------------------------------------------------------------------------------------
# The protocol of an analysis in the report's table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRequest:
    """What the report asks of every family: its headline quantities, each family's options, and
    ``kw`` (sampler settings, scheduler, progress) passed to every analysis."""

    quantities: list[str]
    prior_method: str = "auto"
    refit_unreliable: bool | str = True
    loo_method: str = "auto"
    evidence_method: str = "auto"
    thresholds: Sequence[float] = (0.5, 1.0)
    rho_values: Sequence[float] = (0.2, 0.5, 0.8)
    evidence_names: Sequence[str] | None = None
    kw: dict = field(default_factory=dict)


class Analysis(Protocol):
    """One family of the report's sensitivity table (as CausalPy's checks: validate, then run).

    ``applies`` says whether the analysis means anything for this model (else the family is
    skipped); ``run`` returns its rows (without a "base" scenario) in the layout of
    :mod:`msc_bayes.sensitivity`.
    """

    family: str

    def applies(self, spec, evidence) -> bool: ...

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame: ...
