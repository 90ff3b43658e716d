"""msc_bayes: Bayesian evidence synthesis of MSC therapy in MS and NMO."""

from msc_bayes.errors import ConvergenceError, EvidenceError, SpecError

__version__ = "0.1.0"

#: The one interval used everywhere (tables, figures, text): 95% equal-tailed.
INTERVAL_PROB = 0.95
INTERVAL_KIND = "ETI"

__all__ = ["INTERVAL_KIND", "INTERVAL_PROB", "ConvergenceError", "EvidenceError", "SpecError"]
