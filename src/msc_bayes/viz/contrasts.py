"""Route contrasts of a new study's MSC arm (derived ``route_contrast``): median and interval per contrast."""

from __future__ import annotations

from matplotlib.figure import Figure

from msc_bayes.results import draws, interval_text, variable
from msc_bayes.viz.common import interval_rows, is_risk
from msc_bayes.viz.palette import SHRUNK


def route_contrasts(fit) -> Figure:
    """Route contrasts (derived ``route_contrast``), median and interval."""
    labels = [str(c) for c in variable(fit, "route_contrast")["contrast"].values]
    fig = Figure(figsize=(7, 1.2 + 0.4 * len(labels)))
    ax = fig.subplots()
    interval_rows(ax, labels, draws(fit, "route_contrast"), color=SHRUNK)
    ax.axvline(0, color="black", lw=0.6, ls=":")
    scale = "log odds ratio" if is_risk(fit) else "difference in EDSS change (points)"
    ax.set_xlabel(scale)
    ax.set_title(f"Route contrasts, new-study MSC arm; {interval_text()}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
