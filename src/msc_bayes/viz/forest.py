"""The meta-analysis forest plot, drawn by hand: observed, shrunken, pooled and predicted estimates.

arviz-plots' forest plot shows posteriors only; this one puts each arm's reported estimate beside
the model's shrunken one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from msc_bayes.diagnostics import study_estimates
from msc_bayes.results import (
    draws,
    has,
    interval_columns,
    interval_text,
    median_interval,
)
from msc_bayes.viz.common import is_risk, outcome, plain
from msc_bayes.viz.palette import OBSERVED, POOLED, PREDICTED, SHRUNK

#: The x axis label per outcome.
SCALE = {
    "edss_change": "EDSS change from baseline (points; negative = improvement)",
    "adverse_events": "per-patient risk of the event over follow-up",
    "mri_activity": "per-patient risk of MRI activity over follow-up",
}


def forest(fit, *, estimates: pd.DataFrame | None = None, evidence=None) -> Figure:
    """Meta-analysis forest plot, drawn by hand.

    Per unit: the observed estimate with its interval where the format gives one (grey
    square), the shrunken estimate (blue dot, median and interval); then the pooled
    estimate (red diamond) and the prediction for a new study (orange).
    """
    est = study_estimates(fit, evidence=evidence) if estimates is None else estimates
    lo_name, hi_name = interval_columns()
    risk = is_risk(fit)
    pooled_name, new_name = ("risk_pooled", "risk_new") if risk else ("mu", "theta_new")
    U = len(est)
    fig = Figure(figsize=(8.5, 1.6 + 0.32 * (U + 3)))
    ax = fig.subplots()
    y = np.arange(U + 2)[::-1].astype(float)
    for i, r in enumerate(est.itertuples(index=False)):
        yi = y[i]
        if np.isfinite(r.observed):
            if np.isfinite(r.observed_lower):
                ax.hlines(yi + 0.15, r.observed_lower, r.observed_upper, color=OBSERVED, lw=1)
            ax.plot(r.observed, yi + 0.15, "s", color=OBSERVED, ms=5, mfc="white")
        ax.hlines(yi - 0.1, getattr(r, f"shrunken_{lo_name}"), getattr(r, f"shrunken_{hi_name}"), color=SHRUNK, lw=2)
        ax.plot(r.shrunken_median, yi - 0.1, "o", color=SHRUNK, ms=5)
    med, lo, hi = median_interval(draws(fit, pooled_name))
    ax.fill([lo, med, hi, med], [y[U] , y[U] + 0.25, y[U], y[U] - 0.25], color=POOLED)
    if has(fit, new_name):
        nm, nl, nh = median_interval(draws(fit, new_name))
        ax.hlines(y[U + 1], nl, nh, color=PREDICTED, lw=2)
        ax.plot(nm, y[U + 1], "D", color=PREDICTED, ms=5)
    labels = [plain(f"{r.label}" + (" (control)" if r.group == "control" else "")) for r in est.itertuples(index=False)]
    labels += ["pooled (reference covariates)", "new study (prediction)"]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.8, U + 1.8)
    if not risk:
        ax.axvline(0, color="black", lw=0.6, ls=":")
    ax.set_xlabel(SCALE.get(outcome(fit), "theta"))
    ax.set_title(f"Observed (grey, where reported) and shrunken (blue) estimates; {interval_text()}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
