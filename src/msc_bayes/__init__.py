"""msc_bayes: Bayesian evidence synthesis of MSC therapy in MS and NMO."""

import pytensor

from msc_bayes.errors import ConvergenceError, EvidenceError, SpecError

# Floating point of every compiled model: PyTensor's numba backend compiles with fast-math flags
# by default (contraction, reassociation, approximate functions), whose effect depends on what
# LLVM inlines, i.e. on which ops a process compiled fresh and which it loaded from the on-disk
# cache: the same seed gave other draws (and once another convergence verdict) on a machine's
# first run than on later ones. Without them the code is IEEE-exact in any cache state. Cost:
# none measurable on the bundled evidence; 12-37% more per gradient on synthetic 1,000-arm
# tables (reductions over long vectors are not vectorised without reassociation). Set before
# anything compiles, in every process (helpers and Dask workers import the package too).
pytensor.config.numba__fastmath = False

__version__ = "0.1.0"

#: The one interval used everywhere (tables, figures, text): 95% equal-tailed.
INTERVAL_PROB = 0.95
INTERVAL_KIND = "ETI"

__all__ = ["ConvergenceError", "EvidenceError", "SpecError", "INTERVAL_PROB", "INTERVAL_KIND"]
