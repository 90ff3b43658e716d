"""A model's sizes are run-time data, not constants of its graph.

The number of studies, arms or events of a dataset must not enter a model's compiled form
(:mod:`msc_bayes.inference.compile_cache` compiles once per model structure): a vector sized by
a dimension takes its length from the model's dims (PyMC keeps each dim length as a shared
scalar), never from a Python ``len(...)``, which the graph would hold as a constant.
"""

from __future__ import annotations


def zeros(dim: str):
    """A zero vector as long as the model's dimension `dim` (inside a ``pm.Model`` context).

    Filled from a length-1 array, not the scalar 0 of ``pt.zeros``: PyTensor's numba Alloc fills
    from a 0-d value by a slice assignment, whose error message numba compiles in 3-5 s the first
    time in a process on empty caches; from a length-1 array it fills by the element.
    """
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    return pt.alloc(np.zeros(1), pm.modelcontext(None).dim_lengths[dim])
