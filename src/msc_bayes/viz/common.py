"""What the figures of a fit share: safe text, PNG bytes, the interval, rows of intervals, the hyperparameters.

Figures are drawn with matplotlib's object API (Agg canvas; no pyplot state, never shown); the
interval is the package's one interval (``INTERVAL_PROB`` equal-tailed), named on every figure.
A fit is read only through :mod:`msc_bayes.results`.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import (
    attr_json,
    cells,
    group,
    has,
    is_plumbing,
    median_interval,
)


def plain(text: object) -> str:
    """Text safe for matplotlib: no mathtext ($ is literal)."""
    return str(text).replace("$", r"\$")


def to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def outcome(fit) -> str:
    """The fit's outcome (from its spec, else from the spec stored in its attrs)."""
    return fit.spec.outcome if fit.spec is not None else attr_json(fit, "spec")["outcome"]


def is_risk(fit) -> bool:
    """Whether the fit is an event-risk model (its derived group holds per-arm risks)."""
    return has(fit, "risk_arm")


def interval_rows(ax, labels: list[str], x: np.ndarray, *, color: str) -> None:
    """One row per label, top to bottom: the interval of each column of `x` (samples, labels) and its median."""
    med, lo, hi = median_interval(x)
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, lo, hi, color=color, lw=2)
    ax.plot(med, y, "o", color=color)
    ax.set_yticks(y, [plain(s) for s in labels], fontsize=8)


def hyperparameters(fit) -> list[tuple[str, np.ndarray, object]]:
    """(label, (chain, draw) draws, prior) of every posterior quantity that has a prior of its own name."""
    posterior = group(fit, "posterior")
    out = []
    for name in fit.spec.priors:  # in the spec's order
        if is_plumbing(name) or name not in posterior.data_vars:
            continue
        extra = [d for d in posterior[name].dims if d not in ("chain", "draw")]
        if len(extra) > 1:
            raise ValueError(f"{name} has dims {extra}: only scalar or vector hyperparameters are plotted")
        out.extend((label, x, fit.spec.priors[name]) for label, x in cells(fit, name).items())
    return out
