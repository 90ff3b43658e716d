# Uses nutpie 0.16's private helpers (make_user_data, CompiledPyMCModel, ...): its public compile_pymc_model has no
# hook for a cache, and fixes every length when it compiles (see size_free).
"""An on-disk cache of compiled models: a new process loads machine code instead of compiling,
for any dataset of a structure compiled before.

``nutpie.compile_pymc_model`` costs ~20 s per model in every new process even when PyTensor's
and numba's caches are warm (numba compiles nutpie's two ``cfunc`` wrappers, which link and
re-optimise the whole logp+gradient function; their closures hold ``uuid4`` keys, so numba's
own cache never hits), and it compiles again for every new number of studies or arms.

:func:`compile_model` compiles a model's size-free form (:mod:`.size_free`: every data array
and length is a run-time input) with deterministic shared-data keys (``k000``, ``k001``, ...)
and stores the wrappers through numba's own cache under a key that is a **fingerprint of the
model structure** (every op by type and props, scalar constants by value, data by name and
type, never by value or length, the free variables and transforms) plus the library versions,
the source of this module and of size_free, Python, the CPU and the compiler settings. A later process with the same
fingerprint, on any dataset of that structure, loads the machine code (about a second). What is
built from the live model every time: the lengths and layout, the initial-point function, dims
and coords, and the shared data (data, prior values, study weights), so ``with_data`` works as
before.

Safety: anything the fingerprint cannot capture exactly (an op property that cannot be pickled), a
nutpie other than the 0.16 series this mirrors, or any failure while loading falls back to
nutpie's own compile; a failure while saving only costs the cache entry. A layout check
compares the stored free variables (names, ranks) with the live model before a hit is used.
One process at a time compiles a fingerprint (a file lock, :func:`_compiling`): another that
needs it meanwhile waits, then loads it. ``MSC_BAYES_COMPILE_CACHE=0`` turns the cache off.
Files live in PyTensor's compile directory (``<base_compiledir>/msc_bayes``, or
``$MSC_BAYES_COMPILE_CACHE_DIR``, and numba's files in ``<base_compiledir>/numba``), so clearing
PyTensor's cache clears this one too.

Floating point: every compile here runs with PyTensor's ``numba__fastmath`` off
(:data:`NUMBA_FASTMATH`, set with ``pytensor.config.change_flags`` around the compile only, so
the caller's session keeps its own setting). PyTensor's default fast-math flags (contraction,
reassociation, approximate functions) act on what LLVM inlines, i.e. on which ops a process
compiled fresh and which it loaded from numba's cache: the same seed gave other draws (and once
another convergence verdict) on a machine's first run than on later ones. Without them the code
is IEEE-exact in any cache state. Cost: none measurable on the bundled evidence; 12-37% more per
gradient on synthetic 1,000-arm tables (reductions over long vectors are not vectorised without
reassociation). PyTensor reads the flag when it turns ops into numba functions, which happens
inside the compile, so functions compiled there keep it when numba compiles them later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from msc_bayes.inference import size_free

#: Layout version of the cache entries (bump when the stored metadata changes).
VERSION = 2
#: The nutpie series whose internals this mirrors; any other version compiles the stock way.
NUTPIE_SERIES = "0.16."
ENV_SWITCH = "MSC_BAYES_COMPILE_CACHE"
#: Another folder for the entries (a test's own, say); processes started from this one inherit it.
DIR_VARIABLE = "MSC_BAYES_COMPILE_CACHE_DIR"
#: PyTensor's ``numba__fastmath`` while a model compiles (see the module docs).
NUMBA_FASTMATH = False

#: Counts since the process started: "hit" (loaded from disk), "miss" (compiled and stored),
#: "reused" (wrappers already loaded in this process), "stock" (nutpie's own compile),
#: "unsaved" (a wrapper compiled but not stored: the disk refused it), "expand_elsewhere" (on a miss,
#: the expand wrapper loaded as another process stored it: see :func:`compile_model`).
STATS = {"hit": 0, "miss": 0, "reused": 0, "stock": 0, "unsaved": 0, "expand_elsewhere": 0}

#: One compile at a time: the flags of :func:`compile_model` are process-wide while they are set.
_LOCK = threading.RLock()
#: fingerprint -> (logp cfunc, expand cfunc): each stored library is loaded once per process.
_LOADED: dict[str, tuple] = {}


class Uncacheable(Exception):
    """The model cannot be fingerprinted exactly; it is compiled without the cache."""


def enabled() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        return metadata.version("nutpie").startswith(NUTPIE_SERIES)
    except metadata.PackageNotFoundError:  # pragma: no cover - nutpie is a dependency
        return False


def cache_dir() -> Path:
    """Where the entries' metadata live: ``$MSC_BAYES_COMPILE_CACHE_DIR``, else PyTensor's
    ``<base_compiledir>/msc_bayes`` (numba's files of the wrappers are always in PyTensor's)."""
    import pytensor

    return Path(os.environ.get(DIR_VARIABLE) or Path(pytensor.config.base_compiledir) / "msc_bayes")


def cache_key(model) -> str | None:
    """The model's fingerprint when the on-disk cache is on and can identify the model, else None."""
    if not enabled():
        return None
    try:
        return fingerprint(model)
    except Uncacheable:
        return None


def is_stored(key: str) -> bool:
    """Has some process stored the compiled model of this fingerprint (it may still fail to load)?"""
    return (cache_dir() / f"{key}.pkl").exists()


def compile_model(model, key: str | None = None, *, expand_elsewhere: Callable[[], None] | None = None):
    """``nutpie.compile_pymc_model(model)``, loaded from the on-disk cache when this graph was compiled before.

    `key`: ``cache_key(model)`` when the caller has it already (it walks the whole graph).
    `expand_elsewhere`: another process (a helper running :func:`compile_expand` on the same
    model) compiles the expand wrapper meanwhile. On a miss this process compiles the logp
    wrapper, calls `expand_elsewhere` (it returns once that process has stored its wrapper or
    ended), loads what it stored and compiles the expand wrapper itself only if nothing is there.
    Compiles with fast-math off (:data:`NUMBA_FASTMATH`), restoring the caller's setting after.
    """
    import nutpie
    import pytensor

    key = key or cache_key(model)
    with _LOCK, pytensor.config.change_flags(numba__fastmath=NUMBA_FASTMATH):
        if key is not None:
            return _cached(model, key, expand_elsewhere)
        STATS["stock"] += 1
        return nutpie.compile_pymc_model(model)


def compile_expand(model) -> None:
    """Compile and store only the expand wrapper of `model` (in a helper, while the process that
    will sample compiles the logp wrapper: :func:`compile_model`'s `expand_elsewhere`). Nothing
    when the model cannot use the cache or its entry is stored already. The expand wrapper is about
    a sixth of a model's compile on empty caches (6 of 31 s for a plain model, 26 of 154 s for
    the bundled EDSS model, 2026-12-04); numba compiles on one thread, so only another process
    can take it off the critical path."""
    import pytensor

    key = cache_key(model)
    with _LOCK, pytensor.config.change_flags(numba__fastmath=NUMBA_FASTMATH):
        if key is None or is_stored(key):
            return
        _, expand, _ = _wrappers(model)
        _cfunc(*expand, key + "_expand", load=False)  # numba's cache loads it when already stored


# --------------------------------------------------------------------------------------
# The fingerprint
# --------------------------------------------------------------------------------------


def _environment() -> list:
    import llvmlite.binding as ll
    import numba
    import pytensor

    versions = [metadata.version(p) for p in ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")]
    cfg = pytensor.config
    # these modules write the compiled code: any change to them is another entry, never a stale load
    own = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (sys.modules[__name__], size_free)))
    own = own.hexdigest()
    return [VERSION, own, versions, sys.version, ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten(),
            str(numba.config.OPT), NUMBA_FASTMATH, cfg.floatX,
            *[str(getattr(cfg, k, "")) for k in ("optimizer_excluding", "optimizer_including", "optimizer_requiring")]]


_PLAIN = (str, int, float, bool, complex, bytes, type(None))


def _identity(obj):
    """A deterministic, complete description of an op: its type and ``__props__`` (PyTensor's
    own definition of op equality, used for its numba cache keys), recursively (an Elemwise's
    scalar op by its props). Not the op's pickle: ops with inner graphs (LogSumExp) pickle
    auto-numbered variables, and pickle's memo depends on which equal strings happen to be the
    same object — both differ between builds of the same model."""
    props = getattr(obj, "__props__", None)
    if props is not None:
        return (type(obj).__module__, type(obj).__qualname__, tuple((p, _identity(getattr(obj, p))) for p in props))
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_identity(x) for x in obj))
    if isinstance(obj, (frozenset, set)):
        return ("set", tuple(sorted((_identity(x) for x in obj), key=repr)))
    if isinstance(obj, Mapping):
        return ("dict", tuple(sorted(((_identity(k), _identity(v)) for k, v in obj.items()), key=repr)))
    if isinstance(obj, type):
        return ("type", obj.__module__, obj.__qualname__)
    if isinstance(obj, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(obj)
        return ("array", a.dtype.str, a.shape, _digest(a))
    if isinstance(obj, np.dtype):
        return ("dtype", obj.str)
    try:  # anything else by its pickle (complete; at worst not reproducible: a cache miss)
        return ("pickle", type(obj).__qualname__, hashlib.sha256(pickle.dumps(obj, protocol=4)).hexdigest())
    except Exception as exc:  # an op we cannot identify exactly: no cache
        raise Uncacheable(f"{type(obj).__name__}: {exc}") from exc


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def _op_token(op) -> str:
    return repr(_identity(op))


def fingerprint(model) -> str:
    """sha256 of everything compiled from `model`: its size-free graphs (:func:`.size_free.generic`: ops,
    scalar constants by value, data by name and type, never by value or length), the free
    variables' order, types and transforms, and the environment. Raises :class:`Uncacheable`."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import io_toposort

    g = size_free.generic(model)
    outputs = [g.logp, *g.remaining]
    runtime = {id(v) for v in [*model.data_vars, *model.dim_lengths.values(), *g.runtime_inputs().values()]}
    h = hashlib.sha256(json.dumps(_environment()).encode())
    for rv in model.free_RVs:  # (what a transform computes is in the logp graph; its class names it here)
        transform = type(model.rvs_to_transforms.get(rv))
        h.update(f"{rv.name}|{model.rvs_to_values[rv].type}|{transform.__module__}.{transform.__qualname__}".encode())
    names: dict = {}

    def token(v) -> str:
        if v not in names:
            if isinstance(v, Constant):
                data = np.ascontiguousarray(v.data)
                names[v] = f"C{v.type}:{data.dtype.str}:{data.shape}:{_digest(data)}"
            elif isinstance(v, SharedVariable):
                value = np.ascontiguousarray(v.get_value())
                if id(v) in runtime:  # data, a dim length or a lifted constant: a run-time input
                    names[v] = f"S{v.name}:{v.type}:{value.dtype.str}:{value.ndim}"
                else:  # anything else: by value, to be safe
                    names[v] = f"S{v.name}:{v.type}:{value.dtype.str}:{value.shape}:{_digest(value)}"
            elif v.owner is None:
                names[v] = f"I{v.name}:{v.type}"
            else:
                names[v] = f"V{len(names)}:{v.type}"
        return names[v]

    for node in io_toposort([], outputs):
        h.update(_op_token(node.op).encode())
        h.update(("|".join(map(token, node.inputs)) + ">" + "|".join(map(token, node.outputs))).encode())
    h.update("|".join(map(token, outputs)).encode())
    h.update(json.dumps([g.names, g.n_free]).encode())
    return h.hexdigest()[:40]


# --------------------------------------------------------------------------------------
# numba wrappers stored under our key
# --------------------------------------------------------------------------------------


def _keyed_cache(py_func, key: str):
    """numba's FunctionCache with its index key replaced by `key` (numba's own key hashes the
    closure, which for nutpie's wrappers differs in every process); files go to PyTensor's
    numba cache folder through PyTensor's locator."""
    from numba.core.caching import FunctionCache
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    CACHED_SRC_FUNCTIONS[py_func] = f"msc_bayes_{key}"

    class Keyed(FunctionCache):
        def _index_key(self, sig, codegen):
            return (sig, codegen.magic_tuple(), ("msc_bayes", key))

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except Exception:  # noqa: BLE001 - e.g. a read-only or full disk: the code still runs
                STATS["unsaved"] += 1

    return Keyed(py_func)


def _cfunc(py_func, sig, key: str, *, load: bool):
    """A numba CFunc of `py_func` under `key`: loaded from disk (None when absent) or compiled and stored."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc
    from numba.core.compiler_lock import global_compiler_lock

    cf = CFunc(py_func, sigutils.normalize_signature(sig), locals={}, options={})
    cf._cache = _keyed_cache(py_func, key)
    if not load:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Cannot cache compiled function")
            cf.compile()  # compiles, then stores through cf._cache
        return cf
    with global_compiler_lock:
        cres = cf._cache.load_overload(cf._sig, cf._targetdescr.target_context)
        if cres is None:
            return None
        cf._library = cres.library
        cf._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
        cf._wrapper_address = cf._library.get_pointer_to_function(cf._wrapper_name)
    return cf


# --------------------------------------------------------------------------------------
# Hit or miss
# --------------------------------------------------------------------------------------


def _initial_point_fn(model):
    from nutpie import compile_pymc as cp
    from pymc.initial_point import make_initial_point_fn

    return cp._wrap_with_lock(make_initial_point_fn(model=model, return_transformed=True,
                                                    jitter_rvs=set(model.free_RVs)))


def _shared_data(shared_vars: dict) -> dict:
    data = {k: np.array(v.get_value(), order="C", copy=True) for v, k in shared_vars.items()}
    for a in data.values():
        a.flags.writeable = False
    return data


def _runtime_inputs(model, g) -> dict:
    """name -> shared variable of everything the compiled code reads at run time: pm.Data, dim
    lengths, the lifted constants and this dataset's ``_layout``."""
    return {**{v.name: v for v in [*model.data_vars, *model.dim_lengths.values()]}, **g.runtime_inputs()}


def _cached(model, key: str, expand_elsewhere: Callable[[], None] | None = None):
    meta_file = cache_dir() / f"{key}.pkl"
    found = _stored(model, key, meta_file)
    if found is None:
        with _compiling(meta_file.with_suffix(".lock")):
            found = _stored(model, key, meta_file)  # another process may have stored it meanwhile
            if found is None:
                return _compile_and_store(model, key, meta_file, expand_elsewhere)
    return _assemble(model, *found)


def _stored(model, key: str, meta_file: Path) -> tuple | None:
    """(metadata, wrappers, shared-data keys) of the stored entry for `key`, or None."""
    try:
        meta = pickle.loads(meta_file.read_bytes())
        shared_var_keys = _shared_var_keys(model, meta)
        cfuncs = _load(model, key, meta, shared_var_keys)
    except Exception:  # noqa: BLE001 - no entry, or a damaged or foreign one: compile afresh
        return None
    return None if cfuncs is None else (meta, cfuncs, shared_var_keys)


@contextlib.contextmanager
def _compiling(lock_file: Path):
    """One process at a time compiles a structure: the others wait here, then load what it stored.
    Two processes can need the same fingerprint at once (two pytest workers; a report's helper and
    the report itself, when two specs differ only in data such as the EDSS threshold): on empty
    caches both compiled it (79 and 86 s, side by side, in the suite's cold run of 2026-12-03).
    An exclusive ``flock`` on ``<key>.lock`` (this cache's own file, left in place); the kernel
    releases it when its process ends, however it ends. Without ``fcntl`` (not POSIX) or where
    the folder is not writable, no lock: each process compiles, as before."""
    try:
        import fcntl

        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_file, "a+b")  # noqa: SIM115 - held until the compile is done
    except (ImportError, OSError):
        fh = None
    if fh is None:  # (not yielded inside the except: a compile's own error would carry this one as its context)
        yield
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            pass
        yield  # closing the file releases the lock


def _load(model, key: str, meta: dict, shared_var_keys: dict):
    """The stored (logp, expand) wrappers for `key` (loaded once per process), or None if the
    entry does not fit the live model or numba has no code for it."""
    from nutpie import compile_pymc as cp

    if meta.get("version") != VERSION or meta["free"] != _free(model):
        return None
    if key in _LOADED:
        STATS["reused"] += 1
        return _LOADED[key]
    shared_data = _shared_data(shared_var_keys)
    user_data = cp.make_user_data(shared_var_keys, shared_data)
    raw_l, sig_l = size_free.c_logp(None, user_data, meta["logp_keys"], shared_data)
    raw_e, sig_e = size_free.c_expand(None, user_data, meta["expand_keys"], shared_data)
    logp_cf = _cfunc(raw_l, sig_l, key + "_logp", load=True)
    expand_cf = _cfunc(raw_e, sig_e, key + "_expand", load=True) if logp_cf is not None else None
    if expand_cf is None:
        return None
    _LOADED[key] = (logp_cf, expand_cf)
    STATS["hit"] += 1
    return _LOADED[key]


def _wrappers(model) -> tuple:
    """The size-free functions (:func:`.size_free.functions`) with deterministic shared-data keys, as
    ((logp wrapper, signature), (expand wrapper, signature), the metadata a later process needs)."""
    from nutpie import compile_pymc as cp

    g = size_free.generic(model)
    logp_fn, expand_fn = size_free.functions(model, g)
    shared_var_keys: dict = {}
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        shared_var_keys.setdefault(var, f"k{len(shared_var_keys):03d}")
    shared_data = _shared_data(shared_var_keys)
    user_data = cp.make_user_data(shared_var_keys, shared_data)
    logp_keys = [shared_var_keys[v] for v in logp_fn.get_shared()]
    expand_keys = [shared_var_keys[v] for v in expand_fn.get_shared()]
    meta = {"version": VERSION, "free": _free(model),
            "shared_names": [v.name for v in shared_var_keys], "shared_keys": list(shared_var_keys.values()),
            "logp_keys": logp_keys, "expand_keys": expand_keys}
    return (size_free.c_logp(logp_fn.vm.jit_fn, user_data, logp_keys, shared_data),
            size_free.c_expand(expand_fn.vm.jit_fn, user_data, expand_keys, shared_data), meta)


def _compile_and_store(model, key: str, meta_file: Path, expand_elsewhere: Callable[[], None] | None = None):
    """Compile the wrappers (the expand one perhaps by another process: :func:`compile_model`) and
    store them under `key`; then the metadata a later process needs."""
    logp, expand, meta = _wrappers(model)
    logp_cf = _cfunc(*logp, key + "_logp", load=False)
    expand_cf = None
    if expand_elsewhere is not None:
        expand_elsewhere()
        expand_cf = _cfunc(*expand, key + "_expand", load=True)
        STATS["expand_elsewhere"] += expand_cf is not None
    _LOADED[key] = (logp_cf, expand_cf or _cfunc(*expand, key + "_expand", load=False))
    STATS["miss"] += 1
    try:
        meta_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = meta_file.with_name(f"{meta_file.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(meta))
        os.replace(tmp, meta_file)
    except OSError:  # a read-only or full disk: this process still has the compiled model
        pass
    return _assemble(model, meta, _LOADED[key], _shared_var_keys(model, meta))


def _free(model) -> list:
    return [(v.name, model.rvs_to_values[v].type.ndim) for v in model.free_RVs]


def _shared_var_keys(model, meta: dict) -> dict:
    """The live model's run-time inputs (:func:`_runtime_inputs`) -> the stored keys."""
    by_name = _runtime_inputs(model, size_free.generic(model))
    return {by_name[n]: k for n, k in zip(meta["shared_names"], meta["shared_keys"])}


def _assemble(model, meta: dict, cfuncs: tuple, shared_var_keys: dict):
    """nutpie's compiled model from the wrappers and the live model: its lengths, shared data,
    initial point and dims."""
    from nutpie import compile_pymc as cp

    g = size_free.generic(model)
    logp_cf, expand_cf = cfuncs
    shared_data = _shared_data(shared_var_keys)
    shape_info = g.shape_info()
    names, _, shapes = shape_info
    free_values = [model.rvs_to_values[rv].name for rv in model.free_RVs if model.rvs_to_transforms.get(rv)]
    init = cp._rv_dict_to_flat_array_wrapper(_initial_point_fn(model), names=names[: g.n_free],
                                            shapes=shapes[: g.n_free])
    dims, coords = cp._prepare_dims_and_coords(model, shape_info, free_values)
    return cp.CompiledPyMCModel(
        _n_dim=g.n_dim, dims=dims, _coords=coords, _shapes=dict(zip(names, shapes)),
        compiled_logp_func=logp_cf, compiled_expand_func=expand_cf, initial_point_func=init,
        shared_data=shared_data, shared_var_keys=shared_var_keys,
        user_data=cp.make_user_data(shared_var_keys, shared_data), n_expanded=g.n_expanded,
        shape_info=shape_info, logp_func=None, expand_func=None, reparameterized_names=free_values)
