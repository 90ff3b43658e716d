"""Leave-one-study-out: exact zero-weight refits, or PSIS importance reweighting of the base fit
with exact refits where Pareto k is high, and each study's influence (:func:`leave_one_out`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from msc_bayes.sensitivity.base import (
    K_THRESHOLD,
    ReportRequest,
    add_note,
    finish,
    fit_kwargs,
    prepare,
    r_eff,
    without_studies_rows,
)
from msc_bayes.sweep import (
    Scenario,
    concat,
    quantity_draws,
    run_scenarios,
    sampler_notes,
    summarise,
    tag,
)


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
    r_effs = {q: r_eff(x) for q, x in draws.items()}
    base = summarise(fit, sc)
    base.insert(0, "scenario", sc.name)
    base.insert(1, "left_out", "")
    base["method"] = "mcmc"
    studies = list(sc.extract_args["studies"])
    rows = without_studies_rows(fit, draws, r_effs, {f"without {s}": (s,) for s in studies})
    rows.insert(1, "left_out", np.repeat(studies, len(draws)))
    return concat([base, rows])


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
    units = prepare(spec, evidence).units
    modelled = list(dict.fromkeys(units["study"]))
    studies = modelled if studies is None else list(studies)
    unknown = set(studies) - set(modelled)
    if unknown:
        raise ValueError(f"studies {sorted(unknown)} are not among the modelled studies: {modelled}")
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
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
            df = tag(_loo_reweight_extract(base_fit, rw), rw, "mcmc", sampler_notes(base_fit), np.nan)
        else:
            df = run_scenarios([rw], scheduler=scheduler, on_error="raise", progress=progress)[0]
        k = df.groupby("left_out")["pareto_k"].first()
        bad = [s for s in studies if not k[s] <= k_threshold]  # NaN k: refitted too
        if bad:
            fresh = concat(run_scenarios([refit(s) for s in bad], scheduler=scheduler, on_error=on_error,
                                         progress=progress))
            fresh["pareto_k"] = fresh["left_out"].map(k)
            fresh["notes"] = [add_note(n, f"refitted: Pareto k = {kk:.2f} > {k_threshold:g}")
                              for n, kk in zip(fresh["notes"], fresh["pareto_k"])]
            df = pd.concat([df[~df["left_out"].isin(bad)], fresh], ignore_index=True)
            order = {s: i for i, s in enumerate([""] + studies)}
            df = df.sort_values("left_out", key=lambda c: c.map(order), kind="stable")
    if control_studies:
        lonely = [s for s in studies if control_studies <= {s}]
        for s in lonely:
            m = (df["left_out"] == s) & (df["quantity"] == "msc_effect")
            df.loc[m, "notes"] = [add_note(n, "no control arm left: msc_effect is its prior")
                                  for n in df.loc[m, "notes"]]
    return finish(_add_shift(df))


class LeaveOneOutFamily:
    """The report's "leave-one-out" family: each study left out in turn."""

    family = "leave-one-out"

    def applies(self, spec, evidence) -> bool:
        return True

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        return leave_one_out(spec, evidence, quantities=request.quantities, method=request.loo_method, **request.kw)
