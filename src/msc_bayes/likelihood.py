"""The per-unit log likelihood every model registers the same way.

`loglik` (a Deterministic, dims "arm") is kept pointwise for LOO and exact leave-one-out
predictive checks; the posterior sees `sum(unit_weight * loglik)`. `unit_weight` is a
`pm.Data` vector of ones, so a sweep can drop units (weight 0: exact leave-one-study-out)
in an already compiled model.
"""

from __future__ import annotations

import numpy as np


def observe(ll, dims: str = "arm"):
    import pymc as pm

    model = pm.modelcontext(None)
    weight = pm.Data("unit_weight", np.ones(len(model.coords[dims])), dims=dims)
    pm.Deterministic("loglik", ll, dims=dims)
    pm.Potential("likelihood", (weight * ll).sum())
