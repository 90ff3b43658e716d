"""Route contrasts of a new study's MSC arm (derived ``route_contrast``): median and interval per contrast,
a difference in EDSS points, or an odds ratio (log axis) for event models."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import draws, has, interval_text, median_interval, variable
from msc_bayes.viz.common import interval_rows, is_risk, odds_axis, outcome, scale_units
from msc_bayes.viz.palette import SHRUNK


def route_contrasts(fit) -> Figure:
    """Route contrasts (derived ``route_contrast``), median and interval: for event models as odds ratios."""
    labels = [str(c) for c in variable(fit, "route_contrast")["contrast"].values]
    fig = Figure(figsize=(7, 1.3 + 0.4 * len(labels)), layout="constrained")
    ax = fig.subplots()
    x = draws(fit, "route_contrast")
    if is_risk(fit):
        interval_rows(ax, labels, np.exp(x), color=SHRUNK)
        odds_axis(ax, np.concatenate(median_interval(np.exp(x))))
        ax.set_xlabel("odds ratio of the event between routes (log scale; < 1: lower odds on the first route)")
    elif has(fit, "rate_arm"):  # event rates: rate ratios
        interval_rows(ax, labels, np.exp(x), color=SHRUNK)
        odds_axis(ax, np.concatenate(median_interval(np.exp(x))))
        ax.set_xlabel("rate ratio of events between routes (log scale; < 1: fewer events on the first route)")
    else:
        interval_rows(ax, labels, x, color=SHRUNK)
        ax.axvline(0, color="black", lw=0.6, ls=":")
        if outcome(fit) == "edss_change":
            ax.set_xlabel("difference in EDSS change between routes (points; < 0: the first route improves more)")
        else:
            ax.set_xlabel(f"difference between routes ({scale_units(fit)}; first route minus second)")
    ax.set_title(f"Route contrasts, a new study's MSC arm; medians and {interval_text()}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
