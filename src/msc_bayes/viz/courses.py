"""Response by number of courses (derived ``change_by_design``), one panel per route."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import draws, has, interval_text, median_interval, variable
from msc_bayes.viz.common import plain
from msc_bayes.viz.palette import PREDICTED, SHRUNK


def courses_curve(fit) -> Figure:
    """Response by number of courses (``change_by_design``), one panel per route: median and bands.

    Dark band: mean change of arms with that design; light band (``new_study_by_design``,
    when present): a new study's arm mean, including between-study variation.
    """
    da = variable(fit, "change_by_design")
    routes = [str(r) for r in da["route"].values] if "route" in da.dims else [""]
    courses = np.asarray(da["courses"].values, dtype=float)
    x = draws(fit, "change_by_design")
    new = draws(fit, "new_study_by_design") if has(fit, "new_study_by_design") else None
    if "route" not in da.dims:
        x, new = x[:, None, :], None if new is None else new[:, None, :]
    fig = Figure(figsize=(3.2 * len(routes), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(routes), sharey=True))
    for k, (ax, route) in enumerate(zip(axes, routes)):
        if new is not None:
            _, nl, nh = median_interval(new[:, k, :])
            ax.fill_between(courses, nl, nh, color=PREDICTED, alpha=0.18, label="new study")
        med, lo, hi = median_interval(x[:, k, :])
        ax.fill_between(courses, lo, hi, color=SHRUNK, alpha=0.35, label="mean")
        ax.plot(courses, med, color=SHRUNK)
        ax.axhline(0, color="black", lw=0.6, ls=":")
        ax.set_title(plain(f"route {route}") if route else "", fontsize=9)
        ax.set_xlabel("courses")
    axes[0].set_ylabel("EDSS change (points)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"EDSS change by number of courses; {interval_text()} bands", fontsize=10)
    fig.tight_layout()
    return fig
