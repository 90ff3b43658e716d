"""Posterior predictive checks: each reported number against the interval of its replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from msc_bayes.diagnostics import predictive_checks
from msc_bayes.results import interval_columns, interval_text
from msc_bayes.viz.common import outcome, plain
from msc_bayes.viz.palette import POOLED, SHRUNK

#: The x axis of each check family (its quantity and units); another family is labelled by its name.
CHECK_AXES = {
    "mean change": "mean EDSS change of the arm (points)",
    "counts": "patients in the category (number)",
    "patients with event": "patients with the event (number)",
}


#: Check families whose numbers are counts of patients (integer ticks).
COUNT_CHECKS = frozenset({"counts", "patients with event"})


def check_axis(fit, family: str) -> str:
    """The x axis label of a check family (MRI activity: patients with MRI activity)."""
    if family == "patients with event" and outcome(fit) == "mri_activity":
        return "patients with MRI activity (number)"
    return CHECK_AXES.get(family, family)


def ppc(fit, *, checks: pd.DataFrame | None = None, evidence=None) -> Figure:
    """Observed numbers (red x) against their posterior predictive intervals (blue), one panel per check."""
    checks = predictive_checks(fit, evidence=evidence) if checks is None else checks
    if checks.empty:
        raise ValueError("no posterior predictive check applies to this fit")
    lo_name, hi_name = interval_columns("replicate_")
    families = list(dict.fromkeys(checks["check"]))
    heights = [len(checks[checks["check"] == f]) for f in families]
    fig = Figure(figsize=(8.5, 1.2 * len(families) + 0.3 * sum(heights) + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(families), 1, height_ratios=[h + 2 for h in heights]))
    for ax, family in zip(axes, families):
        rows = checks[checks["check"] == family]
        y = np.arange(len(rows))[::-1]
        ax.hlines(y, rows[lo_name], rows[hi_name], color=SHRUNK, lw=2, label=f"replicate {interval_text()}")
        ax.plot(rows["replicate_median"], y, "|", color=SHRUNK, ms=8)
        ax.plot(rows["observed"], y, "x", color=POOLED, ms=6, label="observed")
        labels = [plain(f"{r.label}" + ("" if r.statistic == family else f": {r.statistic}"))
                  for r in rows.itertuples(index=False)]
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.set_title(plain(f"Posterior predictive check: {family}"), fontsize=9)
        ax.set_xlabel(plain(check_axis(fit, family)), fontsize=8)
        if family in COUNT_CHECKS:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=2, frameon=False)
    return fig
