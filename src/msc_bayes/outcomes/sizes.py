"""A model's sizes are run-time data, not constants of its graph.

The number of studies, arms or events of a dataset must not enter a model's compiled form
(:mod:`msc_bayes.inference.compile_cache` compiles once per model structure): a vector sized by
a dimension takes its length from the model's dims (PyMC keeps each dim length as a shared
scalar), never from a Python ``len(...)``, which the graph would hold as a constant.
"""

from __future__ import annotations


def zeros(dim: str):
    """A zero vector as long as the model's dimension `dim` (inside a ``pm.Model`` context)."""
    import pymc as pm
    import pytensor.tensor as pt

    return pt.zeros(pm.modelcontext(None).dim_lengths[dim])
