"""Fitting: spec + evidence -> a self-describing posterior `xarray.DataTree`.

Each outcome module provides `build(spec, evidence) -> (pm.Model, prepared)` (pure,
never samples) and `derive(posterior, prepared, spec) -> xarray.Dataset` (quantities
computed from the draws: contrasts, predictions, probability statements).
"""

from __future__ import annotations

import atexit
import importlib
import json
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB
from msc_bayes.evidence import Evidence

#: The one seed used where none is given (specs carry their own).
DEFAULT_SEED = 20261121
_PACKAGES = ("msc_bayes", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats", "numpy", "xarray", "pandas")


#: Which module models each outcome (spec `outcome` -> module with build/derive).
OUTCOME_MODULES = {"edss_change": "edss", "adverse_events": "adverse_events", "mri_activity": "adverse_events"}


def _module(outcome: str):
    return importlib.import_module(f"msc_bayes.{OUTCOME_MODULES[outcome]}")


def versions() -> dict[str, str]:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:  # pragma: no cover - an optional package
            out[p] = "not installed"
    return out


@dataclass(frozen=True)
class Fit:
    """A fitted model: the posterior DataTree plus what produced it."""

    tree: xr.DataTree
    spec: object
    prepared: object

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def derived(self) -> xr.Dataset:
        return self.tree["derived"].to_dataset()

    @property
    def notes(self) -> list[str]:
        return json.loads(self.tree.attrs["notes"])

    def summary(self, prob: float = INTERVAL_PROB):
        from msc_bayes.results import summary

        return summary(self, prob=prob)

    def to_netcdf(self, path) -> None:
        self.tree.to_netcdf(path)


def build(spec, evidence: Evidence):
    """The PyMC model for a spec (no sampling): (model, prepared)."""
    return _module(spec.outcome).build(spec, evidence)


#: Compiled models kept in this process: a refit with other prior values (same families),
#: other unit weights or another seed reuses the compiled model instead of recompiling.
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_MAX = 16
#: One fit at a time per process (nutpie already uses every core): the cached models' data
#: are set for the fit in hand.
_FIT_LOCK = threading.RLock()
#: Models built ahead of compiled() by precompile(): structure key -> (model, prepared, cache key).
_BUILT: dict[str, tuple] = {}
#: Compiles precompile() handed to a helper process: structure key -> _HelperJob.
_HELPER: dict[str, _HelperJob] = {}
_HELPER_LOCK = threading.Lock()
_HELPER_PROCESSES: list = []


def structure_key(spec, evidence: Evidence) -> str:
    """What fixes a model's compiled form: everything but prior values and sampler settings."""
    d = spec.to_dict()
    d.pop("sampler", None)
    d["priors"] = {k: v["dist"] for k, v in d.get("priors", {}).items()}
    return json.dumps(d, sort_keys=True, default=str) + "|" + evidence.data_hash


def _built(spec, evidence: Evidence, key: str) -> tuple:
    """(model, prepared, on-disk cache key) for this structure: from precompile(), or built now."""
    from msc_bayes.compile_cache import cache_key

    if key in _BUILT:
        return _BUILT.pop(key)
    model, prepared = build(spec, evidence)
    return model, prepared, cache_key(model)


def compiled(spec, evidence: Evidence):
    """(nutpie compiled model, pm.Model, prepared) for this spec's structure, compiled once per process
    (and loaded from :mod:`msc_bayes.compile_cache` when another process compiled the same graph,
    e.g. the helper process of :func:`precompile`)."""
    from msc_bayes.compile_cache import compile_model

    key = structure_key(spec, evidence)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    _take_from_helper(key)
    model, prepared, cache_key = _built(spec, evidence, key)
    entry = (compile_model(model, cache_key), model, prepared)
    _COMPILED[key] = entry
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return entry


# --------------------------------------------------------------------------------------
# Compiling ahead, in a helper process
# --------------------------------------------------------------------------------------


@dataclass
class _HelperJob:
    spec: object
    evidence: Evidence
    state: str = "queued"  # queued -> running -> done, or queued -> taken (compiled by this process)
    done: threading.Event = field(default_factory=threading.Event)


def precompile(models) -> list[str]:
    """Compile ahead, in one helper process, the models of `models` ((spec, evidence) pairs, in
    the order they will be fitted) that are neither compiled in this process nor stored in the
    on-disk compile cache, all but the first (which this process, about to fit it, compiles
    itself). Compiling is single-threaded and takes tens of seconds per model on empty caches,
    so on 2 cores the helper halves a cold multi-model run; with warm caches this only builds
    the models (which :func:`compiled` then reuses).

    :func:`compiled` of a handed-over model waits for the helper, or compiles it here if the
    helper has not started it yet; a helper that fails only costs that wait (the model is then
    compiled here). Without the on-disk cache there is nothing to hand over. Returns the names
    of the specs handed over.
    """
    from msc_bayes.compile_cache import is_stored

    missing: dict = {}  # structure key -> (spec, evidence), in the order given
    for spec, evidence in models:
        key = structure_key(spec, evidence)
        if key in _COMPILED or key in _BUILT or key in _HELPER or key in missing:
            continue
        try:
            _BUILT[key] = _built(spec, evidence, key)
        except Exception:  # noqa: BLE001 - not handed over; fitting it builds it again and raises there
            continue
        cache_key = _BUILT[key][2]
        if cache_key is not None and not is_stored(cache_key):
            missing[key] = (spec, evidence)
    jobs = {key: _HelperJob(*model) for key, model in list(missing.items())[1:]}
    if jobs:
        _HELPER.update(jobs)
        threading.Thread(target=_run_helper, args=(list(jobs.values()),), daemon=True, name="msc_bayes-precompile").start()
    return [job.spec.name for job in jobs.values()]


def _run_helper(jobs: list[_HelperJob]) -> None:
    """Compile the jobs one after another, each in a new Python process (skipping any taken back)."""
    for job in jobs:
        with _HELPER_LOCK:
            if job.state == "taken":
                continue
            job.state = "running"
        try:
            with tempfile.TemporaryDirectory(prefix="msc_bayes-precompile-") as tmp:
                path = Path(tmp) / "job.pkl"
                path.write_bytes(pickle.dumps((job.spec, job.evidence)))
                process = subprocess.Popen(
                    [sys.executable, "-c", "import sys; from msc_bayes.fitting import _helper_main; _helper_main(sys.argv[1])",
                     str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _HELPER_PROCESSES.append(process)
                process.wait()
        finally:
            job.state = "done"
            job.done.set()


def _helper_main(path: str) -> None:
    """In the helper process: build one model and compile it into the on-disk cache."""
    from msc_bayes.compile_cache import compile_model

    spec, evidence = pickle.loads(Path(path).read_bytes())
    compile_model(build(spec, evidence)[0])


def _take_from_helper(key: str) -> None:
    """A model handed to the helper: take it back if not started, else wait until it is stored,
    compiling here meanwhile the helper's models it has not started (rather than idling)."""
    job = _HELPER.pop(key, None)
    if job is None:
        return
    with _HELPER_LOCK:
        if job.state == "queued":
            job.state = "taken"
            return
    while not job.done.is_set():
        with _HELPER_LOCK:
            queued = [(k, j) for k, j in _HELPER.items() if j.state == "queued"]
        if not queued:
            break
        other = queued[0][1]
        compiled(other.spec, other.evidence)  # takes it back from the helper, compiles it here
    job.done.wait()


@atexit.register
def _stop_helper() -> None:
    """A helper still compiling when this process ends is stopped, not left behind."""
    for process in _HELPER_PROCESSES:
        if process.poll() is None:
            process.kill()


def fit(spec, evidence: Evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, target_accept: float | None = None, exclude_studies=(),
        progress: bool = False) -> Fit:
    """Sample the posterior of `spec` on `evidence` with nutpie; settings default to the spec's.

    `exclude_studies` gives those studies' arms zero likelihood weight: an exact
    leave-out refit of the same compiled model (their arms stay in `loglik`, so the
    left-out study's predictive density can be read off the draws).
    """
    import nutpie

    from msc_bayes.spec import prior_data_name

    s = spec.sampler
    draws, tune, chains = draws or s.draws, tune or s.tune, chains or s.chains
    seed = s.seed if seed is None else seed
    target_accept = target_accept or s.target_accept
    model_c, model, prepared = compiled(spec, evidence)
    data_names = {d.name for d in model.data_vars}
    updates = {prior_data_name(k, p): v for k, prior in spec.priors.items() for p, v in prior.params.items()
               if prior_data_name(k, p) in data_names}
    unknown = set(exclude_studies) - set(prepared.units["study"])
    if unknown:
        raise ValueError(f"exclude_studies: {sorted(unknown)} not among the modelled studies")
    updates["unit_weight"] = (~prepared.units["study"].isin(list(exclude_studies))).to_numpy(dtype=float)
    # nutpie's initial point (support point + jitter) is computed from the PyMC model's own
    # pm.Data, while with_data only reaches the sampler's logp: set both, so the draws depend
    # only on (spec, evidence, settings), never on which spec compiled the cached model.
    with _FIT_LOCK:
        for name, value in updates.items():
            model[name].set_value(np.asarray(value, dtype=model[name].dtype))
        sampler = model_c.with_data(**updates)
        start = time.perf_counter()
        tree = nutpie.sample(sampler, draws=draws, tune=tune, chains=chains, seed=int(seed),
                             target_accept=target_accept, progress_bar=progress, save_warmup=False)
        elapsed = time.perf_counter() - start
    posterior = tree["posterior"].to_dataset()
    if "loglik" in posterior:  # the per-arm log likelihood belongs in its own group (for LOO)
        tree["log_likelihood"] = xr.DataTree(posterior[["loglik"]].rename({"loglik": spec.outcome}))
        posterior = posterior.drop_vars("loglik")
        tree["posterior"] = xr.DataTree(posterior)
    seeded = spec if spec.sampler.seed == seed else spec.replace(sampler={"seed": int(seed)})
    tree["derived"] = xr.DataTree(_module(spec.outcome).derive(posterior, prepared, seeded))
    tree.attrs.update({
        "spec": json.dumps(spec.to_dict()),
        "priors": json.dumps({k: str(v) for k, v in spec.priors.items()}),
        "seed": int(seed), "draws": int(draws), "tune": int(tune), "chains": int(chains),
        "target_accept": float(target_accept), "data_hash": evidence.data_hash, "data_path": str(evidence.path),
        "excluded_studies": json.dumps(sorted(exclude_studies)),
        "versions": json.dumps(versions()), "sampling_seconds": float(elapsed),
        "interval": f"{INTERVAL_PROB:.0%} {INTERVAL_KIND}", "notes": json.dumps(list(prepared.notes)),
        "design": json.dumps(prepared.design.to_dict()),
        "units": json.dumps(list(prepared.units["label"])),
    })
    return Fit(tree, spec, prepared)


def draws_of(ds: xr.Dataset, name: str) -> np.ndarray:
    """(chain, draw, ...) array of a variable, or zeros of (chain, draw) if the model has none."""
    if name in ds:
        return ds[name].values
    return np.zeros((ds.sizes["chain"], ds.sizes["draw"]))
