"""Figures: each plot takes a result or table first, keyword-only options after, and returns a
matplotlib ``Figure`` (never shown). Colours come from :mod:`msc_bayes.viz.palette`.

- :mod:`msc_bayes.viz.sensitivity`: the figures of the sensitivity tables.
"""

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
    "plot_evidence_scenarios",
    "plot_leave_one_out",
    "plot_model_comparison",
    "plot_power_scaling",
    "plot_prior_sensitivity",
    "plot_rho_sensitivity",
    "plot_scenarios",
    "plot_sensitivity_grid",
    "plot_threshold_sensitivity",
]
