"""PROTOTYPE (benchmark option, not used by msc_bayes): an on-disk cache of nutpie's numba-compiled model.

Why: with warm PyTensor/numba caches, ``nutpie.compile_pymc_model`` still spends ~4-6 s
rewriting the PyTensor graphs and ~10-15 s (on this 2-core machine) compiling nutpie's two
``numba.cfunc`` wrappers, because numba links the whole (cached) logp/grad function into
each wrapper and re-optimises and re-emits it. nutpie cannot disk-cache those wrappers:
their closures carry ``uuid4`` keys, so ``compile_pymc_model(model, cache=True)`` misses in
every new process (measured: a new cache entry per run, never a hit).

What this does: the two wrappers are compiled once with deterministic shared-data keys and
stored through numba's own cache machinery under a key that is a fingerprint of the PyMC
model's graph (every op, constant, shared-variable name and type) plus the library
versions, Python, the CPU and numba's optimisation settings. A later process with the
same fingerprint loads the machine code (~0.1 s) and skips both the PyTensor rewriting and
the wrapper compilation. The initial-point function, dims and coords are always rebuilt
from the live model, and shared data (prior values, unit weights) are runtime inputs as
in nutpie, so ``with_data`` works as before.

It relies on nutpie 0.16 internals (``_make_c_logp_func``, ``_make_c_expand_func``,
``CompiledPyMCModel``), hence a prototype to measure the gain, not production code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

VERSION = 1  # of this cache's layout


def _cache_dir() -> Path:
    import pytensor

    d = Path(pytensor.config.base_compiledir) / "nutpie_models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _env() -> list:
    from importlib import metadata

    import llvmlite.binding as ll
    import numba
    import pytensor

    vers = [metadata.version(p) for p in ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")]
    return [VERSION, vers, sys.version, ll.get_host_cpu_name(), str(numba.config.OPT),
            bool(pytensor.config.numba__fastmath), pytensor.config.floatX]


def _op_token(op) -> str:
    try:
        return hashlib.sha256(pickle.dumps(op, protocol=4)).hexdigest()
    except Exception:  # noqa: BLE001 - an unpicklable op: its type and text (and no cache hit across versions)
        return f"{type(op).__module__}.{type(op).__qualname__}:{op}"


def fingerprint(model) -> str:
    """sha256 of everything nutpie compiles from `model`: the logp graph, the traced variables,
    the free variables' order, names and transforms, and the environment."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import io_toposort

    outputs = [model.logp(), *model.unobserved_value_vars]
    h = hashlib.sha256(json.dumps(_env()).encode())
    h.update(json.dumps([[v.name, str(model.rvs_to_values[v].type), type(model.rvs_to_transforms.get(v)).__name__]
                         for v in model.free_RVs]).encode())
    ids: dict = {}

    def tok(v) -> str:
        if v in ids:
            return ids[v]
        if isinstance(v, Constant):
            data = np.asarray(v.data)
            t = f"C{v.type}:{data.dtype.str}:{data.shape}:{hashlib.sha256(data.tobytes()).hexdigest()}"
        elif isinstance(v, SharedVariable):
            t = f"S{v.name}:{v.type}"
        elif v.owner is None:
            t = f"I{v.name}:{v.type}"
        else:
            t = f"V{len(ids)}:{v.type}"
        ids[v] = t
        return t

    for node in io_toposort([], outputs):
        h.update(_op_token(node.op).encode())
        h.update("|".join(tok(i) for i in node.inputs).encode())
        h.update("|".join(tok(o) for o in node.outputs).encode())
    h.update("|".join(tok(o) for o in outputs).encode())
    return h.hexdigest()[:32]


class _KeyedCache:
    """numba's FunctionCache with the index key replaced by ours (numba's own key hashes the
    closure, which for nutpie's wrappers differs in every process)."""

    def __new__(cls, py_func, key: str):
        from numba.core.caching import FunctionCache
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

        CACHED_SRC_FUNCTIONS[py_func] = f"nutpie_{key}"  # PyTensor's locator: file name from our key

        class Keyed(FunctionCache):
            def _index_key(self, sig, codegen):
                return (sig, codegen.magic_tuple(), ("msc_bayes-keyed", key))

        return Keyed(py_func)


def _cfunc(py_func, sig, key: str, *, load_only: bool):
    from numba.core.ccallback import CFunc
    from numba.core.compiler_lock import global_compiler_lock

    from numba.core import sigutils

    cf = CFunc(py_func, sigutils.normalize_signature(sig), locals={}, options={})
    cf._cache = _KeyedCache(py_func, key)
    if load_only:
        with global_compiler_lock:
            cres = cf._cache.load_overload(cf._sig, cf._targetdescr.target_context)
            if cres is None:
                return None
            cf._library = cres.library
            cf._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
            cf._wrapper_address = cf._library.get_pointer_to_function(cf._wrapper_name)
        return cf
    cf.compile()  # compiles and saves under our key
    return cf


class _Keys:
    """Deterministic stand-in for uuid4 inside nutpie (shared-data keys k000, k001, ...)."""

    def __init__(self):
        self._n = itertools.count()

    def __call__(self):
        class K:
            hex = f"k{next(self._n):03d}"
        return K()


def compile_cached(model, stats: dict | None = None):
    """Like ``nutpie.compile_pymc_model(model)`` (numba backend), with an on-disk cache of the
    compiled wrappers. `stats` (optional dict) receives ``hit`` and timings."""
    from nutpie import compile_pymc as cp
    from pymc.initial_point import make_initial_point_fn

    stats = {} if stats is None else stats
    t0 = time.perf_counter()
    key = fingerprint(model)
    stats["fingerprint_s"] = time.perf_counter() - t0
    meta_file = _cache_dir() / f"{key}.pkl"
    ipf = cp._wrap_with_lock(make_initial_point_fn(model=model, return_transformed=True,
                                                   jitter_rvs=set(model.free_RVs)))
    shared_by_name = {v.name: v for v in model.data_vars}

    if meta_file.exists():
        t = time.perf_counter()
        meta = pickle.loads(meta_file.read_bytes())
        shared_vars = [shared_by_name.get(n) for n in meta["shared_names"]]
        if all(v is not None for v in shared_vars):
            shared_var_keys = {v: k for v, k in zip(shared_vars, meta["shared_keys"])}
            shared_data = {k: np.array(v.get_value(), order="C", copy=True) for v, k in shared_var_keys.items()}
            for a in shared_data.values():
                a.flags.writeable = False
            user_data = cp.make_user_data(shared_var_keys, shared_data)
            raw_l, sig_l = cp._make_c_logp_func(meta["n_dim"], None, user_data, meta["logp_keys"], shared_data)
            raw_e, sig_e = cp._make_c_expand_func(meta["n_dim"], meta["n_expanded"], None, user_data,
                                                  meta["expand_keys"], shared_data)
            logp_cf = _cfunc(raw_l, sig_l, key + "_logp", load_only=True)
            expand_cf = _cfunc(raw_e, sig_e, key + "_expand", load_only=True) if logp_cf else None
            if logp_cf is not None and expand_cf is not None:
                names, slices, shapes = meta["shape_info"]
                init = cp._rv_dict_to_flat_array_wrapper(ipf, names=names[: meta["n_free"]],
                                                         shapes=shapes[: meta["n_free"]])
                dims, coords = cp._prepare_dims_and_coords(model, meta["shape_info"], meta["reparameterized_names"])
                stats.update(hit=True, load_s=time.perf_counter() - t)
                return cp.CompiledPyMCModel(
                    _n_dim=meta["n_dim"], dims=dims, _coords=coords,
                    _shapes={n: tuple(s) for n, _, s in zip(*meta["shape_info"])},
                    compiled_logp_func=logp_cf, compiled_expand_func=expand_cf, initial_point_func=init,
                    shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data,
                    n_expanded=meta["n_expanded"], shape_info=meta["shape_info"], logp_func=None, expand_func=None,
                    reparameterized_names=meta["reparameterized_names"])

    # miss: nutpie's own compile, with deterministic keys and our keyed, saving cfunc
    import numba

    t = time.perf_counter()
    orig_uuid, orig_cfunc = cp.uuid4, numba.cfunc
    which = iter(["_logp", "_expand"])

    def keyed_cfunc(sig, **kwargs):
        return lambda f: _cfunc(f, sig, key + next(which), load_only=False)

    cp.uuid4, numba.cfunc = _Keys(), keyed_cfunc
    try:
        compiled = cp._compile_pymc_model_numba(model=model, pymc_initial_point_fn=ipf)
    finally:
        cp.uuid4, numba.cfunc = orig_uuid, orig_cfunc
    inv = {k: v for v, k in compiled.shared_var_keys.items()}
    logp_keys = [compiled.shared_var_keys[v] for v in compiled.logp_func.get_shared()]
    expand_keys = [compiled.shared_var_keys[v] for v in compiled.expand_func.get_shared()]
    meta = {"n_dim": compiled.n_dim, "n_expanded": compiled.n_expanded, "shape_info": compiled.shape_info,
            "n_free": len([n for n in compiled.shape_info[0] if n in {v.name for v in model.value_vars}]),
            "reparameterized_names": list(compiled.reparameterized_names or []),
            "shared_keys": list(inv), "shared_names": [inv[k].name for k in inv],
            "logp_keys": logp_keys, "expand_keys": expand_keys}
    meta_file.write_bytes(pickle.dumps(meta))
    stats.update(hit=False, compile_s=time.perf_counter() - t)
    return compiled


def install() -> None:
    """Make ``nutpie.compile_pymc_model(model)`` (numba backend, no other arguments) use this cache."""
    import nutpie

    original = nutpie.compile_pymc_model

    def compile_pymc_model(model, **kwargs):
        if kwargs or getattr(compile_pymc_model, "disabled", False):
            return original(model, **kwargs)
        return compile_cached(model)

    nutpie.compile_pymc_model = compile_pymc_model


if __name__ == "__main__":  # python benchmarks/persistent_cache.py <msc_bayes CLI arguments>
    install()
    from msc_bayes.cli import main

    raise SystemExit(main(sys.argv[1:]))
