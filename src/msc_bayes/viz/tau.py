"""The between-study SD tau: its posterior (histogram) over its prior density."""

from __future__ import annotations

from matplotlib.figure import Figure

from msc_bayes.results import draws
from msc_bayes.viz.common import plain, scale_units
from msc_bayes.viz.prior_posterior import prior_posterior_panel


def tau_posterior(fit) -> Figure:
    """Posterior of the between-study SD tau (histogram) over its prior density; the x axis in the model's units."""
    x = draws(fit, "tau")
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    prior = fit.spec.priors["tau"]
    prior_posterior_panel(ax, x, prior, "tau (between-study SD)")
    ax.set_xlabel(plain(f"between-study SD tau ({scale_units(fit)}); prior {prior}"), fontsize=8)
    ax.legend(fontsize=8)
    return fig
