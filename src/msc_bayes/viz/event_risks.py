"""New-study risks of an event-risk model: by event type (or all events) and by route."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import draws, has, interval_text, variable
from msc_bayes.viz.common import interval_rows
from msc_bayes.viz.palette import SHRUNK


def event_risks(fit) -> Figure:
    """New-study risks by event type (``risk_new_event``, else ``risk_new``) and by route (``risk_by_route``)."""
    panels = []
    if has(fit, "risk_new_event"):
        panels.append(("by event type", [str(e) for e in variable(fit, "risk_new_event")["event"].values],
                       draws(fit, "risk_new_event")))
    else:
        panels.append(("new study", ["all events"], draws(fit, "risk_new")[:, None]))
    if has(fit, "risk_by_route"):
        panels.append(("by route", [str(r) for r in variable(fit, "risk_by_route")["route"].values],
                       draws(fit, "risk_by_route")))
    height = 1.4 + 0.35 * max(len(p[1]) for p in panels)
    fig = Figure(figsize=(5 * len(panels), height))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, labels, x) in zip(axes, panels):
        interval_rows(ax, labels, x, color=SHRUNK)
        ax.set_xscale("log")
        ax.set_xlabel("per-patient risk (log scale)")
        ax.set_title(f"New-study risk {title}; {interval_text()}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
