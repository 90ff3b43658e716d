"""The summary of findings as one table (``summary_of_findings.csv`` in a report's run folder)."""

from __future__ import annotations

import pandas as pd

from msc_bayes.findings.base import Interval, SummaryOfFindings
from msc_bayes.results import interval_columns


def _ends(prefix: str, x: Interval | None) -> dict:
    lo, hi = interval_columns(f"{prefix}_" if prefix else "")
    if x is None:
        return {f"{prefix}_median" if prefix else "median": None, lo: None, hi: None}
    return {f"{prefix}_median" if prefix else "median": x.median, lo: x.lower, hi: x.upper}


def findings_table(summary: SummaryOfFindings) -> pd.DataFrame:
    """One row per finding: estimate, probabilities, Bayes factor, heterogeneity, support and certainty."""
    rows = []
    for f in summary.findings:
        c = f.certainty
        rows.append({
            "outcome": f.outcome, "quantity": f.quantity, "label": f.label, "unit": f.unit, "scale": f.scale,
            **_ends("", f.estimate), "direction": f.direction,
            "p_benefit": f.p_benefit, "benefit": f.benefit_text, "p_important": f.p_important,
            "important": f.important_text, "bayes_factor_10": f.bayes_factor,
            **_ends("tau", f.tau), **_ends("i2", f.i2), **_ends("prediction", f.prediction),
            "studies": "; ".join(f.studies), "arms": f.arms, "patients": f.patients, "rests_on": f.rests_on,
            "dominance": f.dominance, "contraction": f.contraction, "mostly_prior": f.mostly_prior,
            "certainty": c.grade if c else None,
            "downgrades": "; ".join(f"{d.domain} −{d.levels}: {d.reason}" for d in c.downgrades if d.levels)
            if c else None,
        })
    return pd.DataFrame(rows)
