"""Fitting: spec + evidence -> a self-describing posterior `xarray.DataTree`.

Each outcome module provides `build(spec, evidence) -> (pm.Model, prepared)` (pure,
never samples) and `derive(posterior, prepared, spec) -> xarray.Dataset` (quantities
computed from the draws: contrasts, predictions, probability statements).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import xarray as xr

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB
from msc_bayes.errors import SamplingError, SpecError
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
        """Write the DataTree; Ctrl-C or SIGTERM meanwhile waits until the file is written."""
        from msc_bayes.output import signals_deferred

        with signals_deferred():
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
#: Helper processes running now (under _HELPER_LOCK); _HELPER_STOPPED: this process is exiting.
_HELPER_PROCESSES: list[subprocess.Popen] = []
_HELPER_STOPPED = False


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
            _compile_in_helper(job)
        finally:
            job.state = "done"
            job.done.set()


#: The helper's command line (argv[1]: this process's pid); its job arrives on stdin.
_HELPER_COMMAND = "import sys; from msc_bayes.fitting import _helper_main; _helper_main(int(sys.argv[1]))"
#: The helper's exit status when its parent ended first (its stdin closed, or it started orphaned).
HELPER_ORPHANED = 3


def _compile_in_helper(job: _HelperJob) -> None:
    """One helper process for one job: the job goes over the helper's stdin, which stays open
    until the helper ends; the helper exits as soon as it closes, so when this process ends,
    however it ends (an exception, Ctrl-C, SIGTERM, SIGKILL), its helper ends with it and
    nothing is left on disk."""
    payload = pickle.dumps((job.spec, job.evidence))
    with _HELPER_LOCK:  # the atexit handler sees every helper started, and none starts after it
        if _HELPER_STOPPED:
            return
        process = subprocess.Popen([sys.executable, "-c", _HELPER_COMMAND, str(os.getpid())],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _HELPER_PROCESSES.append(process)
    try:
        try:
            process.stdin.write(payload)
            process.stdin.flush()
        except BrokenPipeError:  # it ended before reading its job: compiled() compiles the model here
            pass
        process.wait()  # reaps it: no zombie
    finally:
        try:
            process.stdin.close()
        except BrokenPipeError:  # unwritten bytes of a job it never read
            pass
        with _HELPER_LOCK:
            _HELPER_PROCESSES.remove(process)


def _helper_main(parent_pid: int) -> None:
    """In the helper process: read one (spec, evidence) from stdin, build the model and compile it
    into the on-disk cache; exit at once when the parent ends (stdin reaches end of file)."""
    _exit_with_parent(parent_pid)
    from msc_bayes.compile_cache import compile_model

    try:
        spec, evidence = pickle.load(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError):  # the parent ended before handing over the whole job
        os._exit(HELPER_ORPHANED)
    watch = threading.Thread(target=_exit_at_end_of, args=(sys.stdin.buffer,), daemon=True, name="msc_bayes-parent")
    watch.start()
    compile_model(build(spec, evidence)[0])


def _exit_at_end_of(stream) -> None:
    """The parent writes nothing after the job, so reading returns when the pipe closes: the parent ended."""
    stream.read()
    os._exit(HELPER_ORPHANED)


def _exit_with_parent(parent_pid: int) -> None:
    """The helper ends with its parent: Ctrl-C ends it without a traceback (a terminal sends SIGINT
    to the whole process group) and, on Linux, the kernel kills it when the parent's thread that
    started it ends (PR_SET_PDEATHSIG: that thread waits for the helper, so only the parent's death
    ends it early). The stdin watcher of :func:`_helper_main` is what works everywhere."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the stdin watcher alone
            pass
    if os.getppid() != parent_pid:  # the parent ended before the line above took effect
        os._exit(HELPER_ORPHANED)


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
    """A helper still compiling when this process exits is stopped (and reaped), and no other
    starts. (A process killed without running this still ends its helper: its stdin closes.)"""
    global _HELPER_STOPPED
    with _HELPER_LOCK:
        _HELPER_STOPPED = True
        processes = list(_HELPER_PROCESSES)
    for process in processes:
        process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not yet delivered
            pass


def fit(spec, evidence: Evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, target_accept: float | None = None, exclude_studies=(),
        progress: bool = False) -> Fit:
    """Sample the posterior of `spec` on `evidence` with nutpie; settings default to the spec's.

    `exclude_studies` gives those studies' arms zero likelihood weight: an exact
    leave-out refit of the same compiled model (their arms stay in `loglik`, so the
    left-out study's predictive density can be read off the draws).

    Raises :class:`~msc_bayes.errors.SpecError` before compiling when a setting given is out of
    range (the rules of a spec's ``[sampler]`` table: ``draws=0`` is an error, not the spec's
    default), and :class:`~msc_bayes.errors.SamplingError` when nutpie fails.
    """
    from msc_bayes.spec import check_sampler_settings, prior_data_name

    given = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    problems = check_sampler_settings(**given, source=f"fit() of spec '{spec.name}'")  # None: not given
    settings = {k: getattr(spec.sampler, k) if v is None else v for k, v in given.items()}
    if not problems:  # each given value is fine: now the settings together (draws x chains)
        problems = check_sampler_settings(**settings, source=f"fit() of spec '{spec.name}'")
    if problems:
        raise SpecError(problems)
    draws, tune, chains, seed = settings["draws"], settings["tune"], settings["chains"], settings["seed"]
    target_accept = settings["target_accept"]
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
        tree = _sample(sampler, spec, settings, exclude_studies, progress)
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


def _sample(sampler, spec, settings: dict, exclude_studies, progress: bool) -> xr.DataTree:
    """nutpie's draws; any failure of the sampler is one :class:`SamplingError`.

    nutpie's blocking ``sample`` answers Ctrl-C with the draws made so far, as if sampling had
    finished; waiting here instead lets KeyboardInterrupt through (the sampler is cancelled).
    """
    import nutpie

    running = None
    try:
        running = nutpie.sample(sampler, draws=int(settings["draws"]), tune=int(settings["tune"]),
                                chains=int(settings["chains"]), seed=int(settings["seed"]),
                                target_accept=float(settings["target_accept"]), progress_bar=progress,
                                save_warmup=False, blocking=False)
        return running.wait()
    except BaseException as exc:
        if running is not None:
            _cancel(running)
        if not _is_sampler_failure(exc):
            raise
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        if exclude_studies:
            shown += f", exclude_studies={sorted(exclude_studies)}"
        raise SamplingError(f"sampling spec '{spec.name}' ({shown}) failed: {_one_line(exc)}") from exc


def _is_sampler_failure(exc: BaseException) -> bool:
    """Anything nutpie raises, including a Rust panic (pyo3's PanicException is a BaseException),
    but not KeyboardInterrupt or SystemExit."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _cancel(running) -> None:
    """Stop the sampler's threads. A sampler that panicked panics again when cancelled ("Poisoned
    sampler state mutex"): the first failure is the one to report, so that one is not raised."""
    try:
        running.cancel()
    except BaseException as exc:
        if not _is_sampler_failure(exc):
            raise


def _one_line(exc: BaseException) -> str:
    """'Type: message' on one line, without the Rust stack backtrace nutpie's errors carry."""
    text = str(exc).split("Stack backtrace:")[0]
    joined = ""
    for line in filter(None, (line.strip() for line in text.splitlines())):
        joined += (" " if joined.endswith(":") else "; ") + line if joined else line
    return f"{type(exc).__name__}: {joined}" if joined else type(exc).__name__


def draws_of(ds: xr.Dataset, name: str) -> np.ndarray:
    """(chain, draw, ...) array of a variable, or zeros of (chain, draw) if the model has none."""
    if name in ds:
        return ds[name].values
    return np.zeros((ds.sizes["chain"], ds.sizes["draw"]))
