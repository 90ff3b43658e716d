"""Each hyperparameter's prior (exact density, as written in the spec) against its posterior (histogram).

Not arviz-plots' ``plot_prior_posterior``: it needs a prior group of draws and shows both as KDEs on one
shared axis, which blurs a bounded support (HalfNormal at 0) and, for a wide prior, flattens the posterior.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from msc_bayes.results import interval_text, median_interval
from msc_bayes.viz.common import hyperparameters, plain
from msc_bayes.viz.palette import POOLED, SHRUNK


def _prior_grid(prior, x: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(x, [0.001, 0.999])
    width = hi - lo
    a, b = prior.support
    grid = np.linspace(max(lo - 0.5 * width, a), min(hi + 0.5 * width, b), 400)
    return grid[np.isfinite(grid)]


def prior_posterior_panel(ax, x: np.ndarray, prior, title: str) -> None:
    """One panel: the posterior draws `x` (histogram), the prior's density (line), the interval ends (dashed)."""
    ax.hist(x, bins=60, density=True, histtype="stepfilled", color=SHRUNK, alpha=0.55, label="posterior")
    grid = _prior_grid(prior, x)
    ax.plot(grid, np.exp(prior.logpdf(grid)), color=POOLED, lw=1.5, label="prior")
    med, lo, hi = median_interval(x)
    ax.axvline(lo, color=SHRUNK, ls="--", lw=0.8)
    ax.axvline(hi, color=SHRUNK, ls="--", lw=0.8)
    ax.set_title(plain(f"{title}: {med:.3g} ({interval_text()} {lo:.3g} to {hi:.3g})"), fontsize=9)
    ax.set_xlabel(plain(f"prior {prior}"), fontsize=7)
    ax.set_yticks([])


def prior_posterior(fit) -> Figure:
    """Prior density (line) against posterior (histogram) for every hyperparameter with a prior."""
    items = hyperparameters(fit)
    cols = 3
    rows = max(1, -(-len(items) // cols))
    fig = Figure(figsize=(11, 2.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (label, x, prior) in zip(axes, items):
        prior_posterior_panel(ax, x.ravel(), prior, label)
    axes[0].legend(fontsize=7)
    for ax in axes[len(items):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
