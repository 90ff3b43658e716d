"""The between-study SD tau: its posterior (histogram) over its prior density."""

from __future__ import annotations

from matplotlib.figure import Figure

from msc_bayes.results import draws
from msc_bayes.viz.prior_posterior import prior_posterior_panel


def tau_posterior(fit) -> Figure:
    """Posterior of the between-study SD tau (histogram) over its prior density."""
    x = draws(fit, "tau")
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    prior_posterior_panel(ax, x, fit.spec.priors["tau"], "tau (between-study SD)")
    ax.legend(fontsize=8)
    return fig
