"""Figures: each plot takes a result or table first, keyword-only options after, and returns a
matplotlib ``Figure`` (never shown). Colours come from :mod:`msc_bayes.viz.palette`.

- :mod:`msc_bayes.viz.figures`: which figures a fit gets (:func:`figures_for`), one plot per module:
  :mod:`~msc_bayes.viz.forest` (the meta-analysis forest plot, our own), :mod:`~msc_bayes.viz.tau`,
  :mod:`~msc_bayes.viz.prior_posterior`, :mod:`~msc_bayes.viz.contrasts`, :mod:`~msc_bayes.viz.courses`,
  :mod:`~msc_bayes.viz.event_risks`, :mod:`~msc_bayes.viz.ppc`, :mod:`~msc_bayes.viz.ranks` (arviz-plots'
  rank plot); :mod:`~msc_bayes.viz.common` what they share (:func:`to_png`, :func:`plain`, the interval).
- :mod:`msc_bayes.viz.sensitivity`: the figures of the sensitivity tables.
"""

from msc_bayes.viz.common import plain, to_png
from msc_bayes.viz.figures import FIGURES, FigureSpec, figures_for
from msc_bayes.viz.sensitivity import (
    plot_evidence_scenarios,
    plot_leave_one_out,
    plot_model_comparison,
    plot_power_scaling,
    plot_prior_sensitivity,
    plot_rho_sensitivity,
    plot_scenarios,
    plot_sensitivity_grid,
    plot_threshold_sensitivity,
)

__all__ = [
    "FIGURES",
    "FigureSpec",
    "figures_for",
    "plain",
    "plot_evidence_scenarios",
    "plot_leave_one_out",
    "plot_model_comparison",
    "plot_power_scaling",
    "plot_prior_sensitivity",
    "plot_rho_sensitivity",
    "plot_scenarios",
    "plot_sensitivity_grid",
    "plot_threshold_sensitivity",
    "to_png",
]
