"""The per-unit log likelihood every model registers the same way.

`loglik` (a Deterministic, dims "arm") is kept pointwise for LOO and exact leave-one-out
predictive checks; the posterior sees `sum(unit_weight * loglik)`. `unit_weight` is a
`pm.Data` vector of ones, so a sweep can drop units (weight 0: exact leave-one-study-out)
in an already compiled model.
"""

from __future__ import annotations

import numpy as np


def unit_weight(dims: str = "arm"):
    """The model's `unit_weight` data (created on first use, so a model can read it before `observe`)."""
    import pymc as pm

    model = pm.modelcontext(None)
    if "unit_weight" in model.named_vars:
        return model["unit_weight"]
    return pm.Data("unit_weight", np.ones(len(model.coords[dims])), dims=dims)


def observe(ll, dims: str = "arm"):
    import pymc as pm

    weight = unit_weight(dims)
    pm.Deterministic("loglik", ll, dims=dims)
    pm.Potential("likelihood", (weight * ll).sum())
