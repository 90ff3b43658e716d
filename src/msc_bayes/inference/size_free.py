# Written after nutpie 0.16's private _make_functions, _make_c_logp_func, _make_c_expand_func and
# make_extraction_fn: its public compile_pymc_model fixes every length when it compiles.
"""A model's compiled form without its dataset's sizes: one compile per model structure.

nutpie 0.16 compiles a model for one dataset: the flat vector's length ``n_dim``, the slice of
each free variable and every constant of the graph (PyMC keeps the outcome models' numpy arrays
as constants) are written into the machine code, so each new number of studies, arms or
patients compiled the model again (20-170 s). Here:

- :func:`generic` lifts every constant array of the model's graphs into shared data of unknown
  length (``_data000``, ...: indices, observed values, standard errors), before any rewrite
  (rewriting with the data as constants writes their lengths in), and places the free values in
  the flat vector through a shared int64 vector ``_layout`` (start, stop, shape of each);
- :func:`functions` builds the logp+gradient and expand PyTensor functions from those graphs, as
  nutpie's ``_make_functions`` does, and :func:`c_logp` / :func:`c_expand` the C callbacks
  nutpie's sampler calls, which take the vectors' lengths at run time;
- :func:`extraction` unpacks the shared inputs for the compiled function, one line per input
  (nutpie's version copies a tuple once per input: its compile time grew with their square).

PyTensor's numba kernels are shape-generic already (``pm.Data`` and PyMC's dims have unknown
static lengths), so the only sizes left in the code are those the model itself fixes (a prior
over a fixed number of coefficients) and lengths of 1, which are kept because they may broadcast:
a dataset where a reporting format has one arm and another where it has several are two
structures. The cost, measured on the bundled models: about 35-45% more time per gradient than
nutpie's size-specific code (the data are read at run time, not folded into the code).
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

import numpy as np

#: The shared int64 vector that places each free value in the flat vector (:class:`Generic`).
LAYOUT = "_layout"


@dataclass
class Generic:
    """A model's graphs with nothing of its dataset's sizes in them.

    ``logp`` and ``remaining`` (the traced variables that are not free values: deterministics,
    constrained values) are the model's graphs with every constant array (indices, observed
    values, standard errors: what the outcome models build from the data) replaced by shared
    data of unknown length, ``lifted`` (``_data000``, ``_data001``, ... in graph order). The free
    variables are read from a flat vector of any length through ``_layout`` (start, stop and
    shape of each free value), also data. So the compiled code takes every size at run time: a
    dataset of another size with the same structure reuses it. ``shapes`` are this dataset's.
    """

    logp: object
    remaining: list
    lifted: dict  # name -> shared variable
    layout: object  # the shared int64 vector
    shapes: dict
    names: list  # the free values, then the remaining variables
    n_free: int

    def sizes(self) -> list[int]:
        return [int(np.prod(self.shapes[n], dtype=int)) for n in self.names]

    @property
    def n_dim(self) -> int:
        return sum(self.sizes()[: self.n_free])

    @property
    def n_expanded(self) -> int:
        return sum(self.sizes())

    def shape_info(self) -> tuple:
        """nutpie's (names, slices, shapes) of the flat and the expanded vector."""
        stops = np.cumsum([0, *self.sizes()])
        return (list(self.names), [slice(int(a), int(b)) for a, b in itertools.pairwise(stops)],
                [tuple(int(x) for x in self.shapes[n]) for n in self.names])

    def runtime_inputs(self) -> dict:
        return {**self.lifted, LAYOUT: self.layout}


#: pm.Model -> its Generic (built once: the fingerprint and the compile read the same graphs).
_GENERIC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def generic(model) -> Generic:
    """The size-free graphs of `model` (:class:`Generic`), built once per model object."""
    if model not in _GENERIC:
        import pytensor
        from nutpie import compile_pymc as cp

        free = [model.rvs_to_values[rv] for rv in model.free_RVs]
        free_names = [v.name for v in free]
        traced = [v for v in model.unobserved_value_vars if v.name not in free_names]
        shapes = cp._compute_shapes(model)
        free_layout, at = [], 0
        for name in free_names:
            size = int(np.prod(shapes[name], dtype=int))
            free_layout += [at, at + size, *map(int, shapes[name])]
            at += size
        # (lifted before any rewrite: rewriting with the data as constants writes their lengths in)
        (logp, *remaining), lifted = _lift([model.logp(), *traced])
        layout = pytensor.shared(np.array(free_layout, dtype=np.int64), name=LAYOUT, shape=(None,))
        _GENERIC[model] = Generic(logp=logp, remaining=remaining, lifted=lifted, layout=layout, shapes=shapes,
                                  names=free_names + [v.name for v in traced], n_free=len(free))
    return _GENERIC[model]


def _lift(outputs: list) -> tuple[list, dict]:
    """`outputs` with every constant array replaced by shared data of unknown length (in graph
    order, so the same structure gives the same names), and those shared variables by name.
    A length of 1 is kept, so broadcasting means what it meant: a dataset with one unit where
    another has several is another structure (compiled once too)."""
    import pytensor
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import io_toposort
    from pytensor.tensor.variable import TensorConstant

    replace: dict = {}
    for node in io_toposort([], outputs):
        for v in node.inputs:
            if isinstance(v, TensorConstant) and v.type.ndim >= 1 and v not in replace:
                shape = tuple(1 if n == 1 else None for n in v.type.shape)  # a 1 may broadcast (a prior's 0)
                replace[v] = pytensor.shared(np.array(v.data), name=f"_data{len(replace):03d}", shape=shape)
    if not replace:
        return list(outputs), {}
    # rebuild_strict=False: the nodes above a lifted constant are made anew, with unknown lengths
    return (list(clone_replace(list(outputs), replace, rebuild_strict=False)),
            {v.name: v for v in replace.values()})


def _piece(vector, layout, at: int, ndim: int):
    """The array at ``layout[at:]`` (start, stop, *shape) of a flat `vector`, with as few graph
    nodes as its rank allows (each costs time in every gradient)."""
    if ndim == 0:
        return vector[layout[at]]
    piece = vector[layout[at]:layout[at + 1]]
    return piece if ndim == 1 else piece.reshape([layout[at + 2 + i] for i in range(ndim)], ndim=ndim)


def functions(model, g: Generic):
    """The logp+gradient and expand PyTensor functions of `g` (numba mode), reading the free
    values from a flat vector of any length through ``_layout``: what nutpie 0.16's
    ``_make_functions`` builds, without its lengths fixed at compile time."""
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import rewrite_graph
    from pytensor.graph.replace import clone_replace

    layout = g.layout
    flat = pt.dvector("_unconstrained_point")
    free = [model.rvs_to_values[rv] for rv in model.free_RVs]
    values, at = [], 0
    for rv, var in zip(model.free_RVs, free):
        value = _piece(flat, layout, at, var.type.ndim).astype(rv.dtype)
        at += 2 + var.type.ndim
        if any(s is not None for s in var.type.shape):  # a length the model itself fixed
            value = pt.specify_shape(value, var.type.shape)
        values.append(value)
    rewrites = ["canonicalize", "stabilize"] + ([] if model.check_bounds else ["local_remove_check_parameter"])
    logp = rewrite_graph(g.logp, include=rewrites)  # as nutpie does, before the gradient
    grad = pt.concatenate([pt.as_tensor(d, allow_xtensor_conversion=True).ravel() for d in pt.grad(logp, free)])
    replacements = dict(zip(free, values))
    logp, grad = clone_replace([logp, grad], replacements)
    with model:
        logp_fn = compile_pymc((flat,), (logp, grad), mode="NUMBA")
        expanded = pt.concatenate([*[v.ravel() for v in values],
                                   *[pt.as_tensor(v, allow_xtensor_conversion=True).ravel() for v in g.remaining]])
        expand_fn = compile_pymc((flat,), [expanded], givens=list(replacements.items()), mode="NUMBA")
    return logp_fn, expand_fn


def extraction(inner, shared_keys: list, shared_data: dict, record_dtype):
    """A numba function ``(x, user_data) -> inner(x, *shared arrays)``: nutpie's
    ``make_extraction_fn``, written out one line per shared input. nutpie's builds the argument
    tuple by copying it once per input, so its compile time grew with the square of their number
    (ten minutes for a table whose 57 data arrays are inputs); this one grows linearly."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    env = {"numba": numba, "inner": inner, "pointer": address_as_void_pointer, "record": record_dtype}
    lines = ["def extract(x, user_data_):", "    shared = numba.carray(user_data_, (), record)['shared']"]
    for i, key in enumerate(shared_keys):
        a = shared_data[key]
        env[f"t{i}"] = a.dtype
        lines.append(f"    a{i} = numba.carray(pointer(shared['data']['{key}'][()]), "
                     f"int(shared['size']['{key}'][()]), t{i})")
        if a.ndim != 1:
            shape = "".join(f"int(shared['shape']['{key}'][{j}]), " for j in range(a.ndim))
            lines.append(f"    a{i} = a{i}.reshape(({shape}))")
    lines.append(f"    return inner(x{''.join(f', a{i}' for i in range(len(shared_keys)))})")
    exec("\n".join(lines), env)  # noqa: S102 - our own source, built from the keys above
    return numba.njit(inline="always")(env["extract"])


def c_logp(logp_fn, user_data, shared_keys, shared_data):
    """nutpie's logp+gradient C callback (its ``_make_c_logp_func``) for a flat vector of any length."""
    import numba

    extract = extraction(logp_fn, shared_keys, shared_data, user_data.dtype)
    c_sig = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                              numba.types.voidptr)

    def logp_numba(dim, x_, out_, logp_, user_data_):
        try:
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = extract(x, user_data_)
            if grad.shape[0] != dim:  # the layout is not this vector's
                return -1
            logp[()] = logp_val
            for i in range(dim):  # a loop, not out[...] = grad: see c_expand
                out[i] = grad[i]
            if not np.all(np.isfinite(out)):
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001
            return 1
        return 0

    return logp_numba, c_sig


def c_expand(expand_fn, user_data, shared_keys, shared_data):
    """nutpie's expand C callback (its ``_make_c_expand_func``) for vectors of any length."""
    import numba

    extract = extraction(expand_fn, shared_keys, shared_data, user_data.dtype)
    c_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.voidptr)

    def expand_numba(dim, expanded, x_, out_, user_data_):
        try:
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (expanded,))
            (values,) = extract(x, user_data_)
            if values.shape[0] != expanded:
                return -1
            # A loop, not out[...] = values: numba compiles a slice assignment with its
            # string-formatted shape-mismatch error, ~3.5 s the first time in a process.
            for i in range(expanded):
                out[i] = values[i]
        except Exception:  # noqa: BLE001
            return -2
        return 0

    return expand_numba, c_sig
