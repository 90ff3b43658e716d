"""The one colour palette of the package's figures.

Four hues, each with one meaning per kind of figure: the meta-analysis figures
(:mod:`msc_bayes.viz.forest` and its neighbours) show observed, shrunken, pooled and predicted
estimates; the sensitivity figures (:mod:`msc_bayes.viz.sensitivity`) show the base fit in the pooled
colour, refits in the shrunken one and importance-reweighted scenarios in the predicted one; the rank
plot gives each chain a colour of its own.
"""

from __future__ import annotations

GREY = "#555555"
BLUE = "#1f5fa8"
RED = "#b2182b"
ORANGE = "#e08214"

# Meta-analysis figures
#: Observed (as reported) study estimates.
OBSERVED = GREY
#: Shrunken (posterior) study estimates, posterior densities and replicate intervals.
SHRUNK = BLUE
#: The pooled estimate, priors and observed values over replicates.
POOLED = RED
#: The prediction for a new study.
PREDICTED = ORANGE

# Sampler figures
#: One colour per chain, in chain order, repeated past ten (matplotlib's default colour cycle).
CHAINS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")

# Sensitivity figures
#: The base fit (its median and interval band), and thresholds drawn against it.
BASE = RED
#: A scenario refitted (MCMC or exact).
REFIT = BLUE
#: A scenario by importance reweighting of the base fit (open circles).
REWEIGHTED = ORANGE
#: Bars of prior power-scaling sensitivity, and of likelihood power-scaling sensitivity.
PRIOR_BAR = BLUE
LIKELIHOOD_BAR = "#999999"
#: A reference value (0) drawn as a dotted line.
REFERENCE = "#888888"
#: Lines between groups of rows.
SEPARATOR = "#cccccc"
