"""New-study risks of an event-risk model: by event type (MRI measure, for MRI activity) or all events, and by
route, on a logit axis in percent."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import draws, has, interval_text, median_interval, variable
from msc_bayes.viz.common import axis_label, interval_rows, outcome, risk_axis, words
from msc_bayes.viz.palette import SHRUNK


def kind_words(fit) -> str:
    """What an event model's event types are: "MRI measure" for MRI activity, else "event type"."""
    return "MRI measure" if outcome(fit) == "mri_activity" else "event type"


def event_risks(fit) -> Figure:
    """New-study risks by event type (``risk_new_event``, else ``risk_new``) and by route (``risk_by_route``)."""
    panels = []
    if has(fit, "risk_new_event"):
        panels.append((f"by {kind_words(fit)}", [words(e)
                                                 for e in variable(fit, "risk_new_event")["event"].values],
                       draws(fit, "risk_new_event")))
    else:
        panels.append(("new study", ["all events"], draws(fit, "risk_new")[:, None]))
    if has(fit, "risk_by_route"):
        panels.append(("by route", [str(r) for r in variable(fit, "risk_by_route")["route"].values],
                       draws(fit, "risk_by_route")))
    height = 1.6 + 0.35 * max(len(p[1]) for p in panels)
    fig = Figure(figsize=(5.2 * len(panels), height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    label = axis_label(fit)
    for ax, (title, labels, x) in zip(axes, panels):
        interval_rows(ax, labels, x, color=SHRUNK)
        risk_axis(ax, np.concatenate(median_interval(x)), label=label)
        ax.set_title(f"New study's MSC arm, {title}; {interval_text()}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return fig
