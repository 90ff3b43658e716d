"""Format ``patient``: each patient's change d (a multiple of 0.5): P(d - 0.25 <= Delta < d + 0.25)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msc_bayes.evidence import EDSS_STEP, Evidence
from msc_bayes.outcomes.edss.formats.base import (
    HALF_STEP,
    BuildContext,
    CheckContext,
    Estimate,
    Format,
    Replicate,
)


def patient_changes(patients: pd.DataFrame) -> pd.DataFrame:
    """study, arm, patient, timepoint_months, change: reported changes plus follow-up EDSS minus baseline."""
    direct = patients[patients["change"].notna()][["study", "arm", "patient", "timepoint_months", "change"]]
    values = patients[patients["edss"].notna()]
    base = values[values["timepoint_months"] == 0][["study", "arm", "patient", "edss"]]
    later = values[values["timepoint_months"] > 0]
    paired = later.merge(base, on=["study", "arm", "patient"], suffixes=("", "_baseline"))
    paired = paired.assign(change=paired["edss"] - paired["edss_baseline"])
    return pd.concat([direct, paired[direct.columns]], ignore_index=True)


def patient_logp(rows: pd.DataFrame, evidence: Evidence, theta, sigma, spec):
    """The patients' changes: (row of each term, term), terms summing to log P(d - 1/4 <= Delta < d + 1/4)
    over a row's patients.

    Changes lie on the 0.5-step grid, so patients share values and neighbouring values share
    an interval end: each distinct change enters once with its count, and the normal CDF is
    evaluated once per distinct interval end (exactly the per-patient sum, far fewer terms).
    """
    import pymc as pm

    ev = evidence.without_secondary() if spec.options["exclude_secondary"] else evidence
    changes = patient_changes(ev.patients)
    by_unit = {k: g["change"].to_numpy(dtype=float) for k, g in changes.groupby(["study", "arm", "timepoint_months"])}
    ends, lower, upper, unit_of, count = [], [], [], [], []  # ends: (unit, x); intervals index into ends
    for u, r in enumerate(rows.itertuples(index=False)):
        values, counts = np.unique(by_unit.get((r.study, r.arm, r.timepoint_months), np.empty(0)), return_counts=True)
        at = {}
        for x in np.unique(np.concatenate([values - HALF_STEP, values + HALF_STEP])):
            at[x] = len(ends)
            ends.append((u, x))
        for d, m in zip(values, counts):
            lower.append(at[d - HALF_STEP])
            upper.append(at[d + HALF_STEP])
            unit_of.append(u)
            count.append(m)
    end_unit, end_x = (np.array(c) for c in zip(*ends))
    log_cdf = pm.logcdf(pm.Normal.dist(theta[end_unit], sigma[end_unit]), end_x)
    lp = np.array(count, dtype=float) * pm.math.logdiffexp(log_cdf[np.array(upper)], log_cdf[np.array(lower)])
    return np.array(unit_of), lp


def unit_changes(patients: pd.DataFrame, r) -> np.ndarray:
    """The patients' changes of unit `r` (study, arm, timepoint)."""
    sel = ((patients["study"] == r.study) & (patients["arm"] == r.arm)
           & (patients["timepoint_months"] == r.timepoint_months))
    return patients.loc[sel, "change"].to_numpy(dtype=float)


class Patient(Format):
    name = "patient"
    text = "individual patients' changes (each the rounding of a latent normal change to 0.5 points)"
    needs_sigma = True

    def available(self, row, patients_at: set) -> bool:
        return (row.study, row.arm, row.timepoint_months) in patients_at

    def after_theta(self, ctx: BuildContext, idx: np.ndarray, theta) -> None:
        unit_of, lp = patient_logp(ctx.units.iloc[idx], ctx.evidence, theta[idx], ctx.sigma[idx], ctx.spec)
        ctx.terms.append((idx[unit_of], lp))

    def observed(self, r, ctx: CheckContext) -> Estimate | None:
        if ctx.patients is None:
            return None
        d = unit_changes(ctx.patients, r)
        if not len(d):
            return None
        z = ctx.z
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        return float(d.mean()), float(d.mean() - z * se), float(d.mean() + z * se), \
            f"mean of {len(d)} patient changes ± {z:.2f} SE"

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        """The mean of the rounded patient changes, replicated."""
        if sigma is None or ctx.patients is None:
            return []
        d = unit_changes(ctx.patients, r)
        if not len(d):
            return []
        delta = ctx.rng.normal(theta[:, None], sigma[:, None], size=(len(theta), len(d)))
        rounded = np.floor((delta + HALF_STEP) / EDSS_STEP) * EDSS_STEP
        return [("mean change", f"mean of {len(d)} rounded patient changes", float(d.mean()), rounded.mean(axis=1))]


FORMAT = Patient()
