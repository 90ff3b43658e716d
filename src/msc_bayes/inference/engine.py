"""The inference engine: spec + evidence -> a fitted, self-describing posterior (`Fit`).

An :class:`Engine` owns everything a process keeps between fits: the compiled models (one per
model structure, so a refit under other prior values, unit weights or seed only samples), the
models built ahead by :meth:`Engine.precompile`, the lock that serialises sampling, the helper
process that compiles ahead (:mod:`msc_bayes.inference.helper`), and the recent fits that
:meth:`Engine.fit_cached` returns again. ``msc_bayes.inference.fit`` (and `compiled`,
`precompile`, `fit_cached`, `remember_fit`) are the methods of the one default engine,
:data:`ENGINE`, looked up at each access, so a test that replaces a method of ``ENGINE`` reaches
every caller.

Models come from the outcome registry: ``msc_bayes.outcomes.get(spec.outcome).build(spec,
evidence) -> (pm.Model, prepared)`` (pure, never samples) and ``.derive(posterior, prepared,
spec) -> xarray.Dataset`` (contrasts, predictions, probability statements).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from msc_bayes.inference import sampling
from msc_bayes.inference.helper import EXPAND, MODEL, Helper, HelperJob
from msc_bayes.inference.result import Fit


def build(spec, evidence):
    """The PyMC model for a spec (no sampling): (model, prepared)."""
    from msc_bayes import outcomes

    return outcomes.get(spec.outcome).build(spec, evidence)


def structure_key(spec, evidence) -> str:
    """What fixes a model's compiled form: everything but prior values and sampler settings."""
    from msc_bayes import outcomes

    d = spec.to_dict()
    d.pop("sampler", None)
    # a prior's family and parameter names fix the graph (Exponential lam or scale, TruncatedNormal's bounds)
    d["priors"] = {k: [v["dist"], *sorted(set(v) - {"dist"})] for k, v in d.get("priors", {}).items()}
    outcome = outcomes.get(spec.outcome)
    for option in (*outcome.data_options, *outcome.report_options):  # they set pm.Data only, or change a report only
        d.get("options", {}).pop(option, None)
    return json.dumps(d, sort_keys=True, default=str) + "|" + evidence.data_hash


#: A helper job's key for the expand wrapper of a structure: its structure key plus this.
EXPAND_JOB = "|expand"


def core_idle() -> bool:
    """Is a core free for a helper process? This process may use more than one core, and the
    1-minute load average leaves at least half a core of them unused (Unix; elsewhere no). A
    helper costs some 5-8 s of imports and building, so it pays only beside an idle core: in a
    test suite with one worker per core it would only compete."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        return False
    return cores >= 2 and load < cores - 0.5


def _fit_key(spec, evidence, fit_kwargs: Mapping) -> str:
    """Everything that determines a fit: spec, data and settings (None: the spec's)."""
    s = spec.sampler
    kw = {"draws": fit_kwargs.get("draws") or s.draws, "tune": fit_kwargs.get("tune") or s.tune,
          "chains": fit_kwargs.get("chains") or s.chains,
          "seed": s.seed if fit_kwargs.get("seed") is None else int(fit_kwargs["seed"]),
          "target_accept": fit_kwargs.get("target_accept") or s.target_accept,
          "exclude_studies": sorted(fit_kwargs.get("exclude_studies", ()))}
    return json.dumps([spec.to_dict(), evidence.data_hash, kw], sort_keys=True, default=str)


class Engine:
    """Compiled models, models built ahead, the helper process and recent fits of one process.

    ``compiled_models``: structure key -> (nutpie compiled model, pm.Model, prepared), the last
    :attr:`COMPILED_MAX` used. ``built``: structure key -> (pm.Model, prepared, on-disk cache
    key), built by :meth:`precompile` for :meth:`compiled`. ``helper``: the compiles handed to a
    helper process. ``fits``: :meth:`fit_cached`'s key -> `Fit`, the last :attr:`FITS_MAX`.
    """

    COMPILED_MAX = 16
    FITS_MAX = 24

    def __init__(self) -> None:
        self.compiled_models: OrderedDict = OrderedDict()
        self.built: dict[str, tuple] = {}
        self.helper = Helper()
        self.fits: OrderedDict = OrderedDict()
        #: One fit at a time (nutpie already uses every core): the cached models' data are set
        #: for the fit in hand.
        self._fit_lock = threading.RLock()
        #: One :meth:`fit_cached` at a time: a request made twice at once samples once.
        self._fits_lock = threading.RLock()

    # ----------------------------------------------------------------------------------
    # Compiling
    # ----------------------------------------------------------------------------------

    def _built(self, spec, evidence, key: str) -> tuple:
        """(model, prepared, on-disk cache key) for this structure: from precompile(), or built now."""
        from msc_bayes.inference.compile_cache import cache_key

        if key in self.built:
            return self.built.pop(key)
        model, prepared = build(spec, evidence)
        return model, prepared, cache_key(model)

    def compiled(self, spec, evidence):
        """(nutpie compiled model, pm.Model, prepared) for this spec's structure, compiled once per
        engine (and loaded from :mod:`~msc_bayes.inference.compile_cache` when another process
        compiled the same graph, e.g. the helper process of :meth:`precompile`)."""
        from msc_bayes.inference.compile_cache import compile_model

        key = structure_key(spec, evidence)
        if key in self.compiled_models:
            self.compiled_models.move_to_end(key)
            return self.compiled_models[key]
        self.helper.take(key, self.compiled)
        model, prepared, cache_key = self._built(spec, evidence, key)
        waiting = self._expand_elsewhere(spec, evidence, key, cache_key)
        entry = (compile_model(model, cache_key, expand_elsewhere=waiting), model, prepared)
        self.compiled_models[key] = entry
        while len(self.compiled_models) > self.COMPILED_MAX:
            self.compiled_models.popitem(last=False)
        return entry

    def _expand_elsewhere(self, spec, evidence, key: str, cache_key: str | None):
        """For a model about to compile here on empty caches: its expand wrapper handed to a helper
        (by :meth:`precompile`, or now if no helper is busy and a core is idle, :func:`core_idle`),
        and what waits for it (:func:`~msc_bayes.inference.compile_cache.compile_model`'s
        `expand_elsewhere`); None when the model is stored or no helper takes it."""
        from msc_bayes.inference.compile_cache import is_stored

        if cache_key is None or is_stored(cache_key):
            return None
        job_key = key + EXPAND_JOB
        if job_key not in self.helper.jobs:
            if self.helper.busy() or not core_idle():
                return None
            self.helper.start({job_key: HelperJob(spec, evidence, EXPAND)})
        return lambda: self.helper.wait(job_key)

    def precompile(self, models) -> list[str]:
        """Compile ahead, in one helper process, the models of `models` ((spec, evidence) pairs, in
        the order they will be fitted) that are neither compiled here nor stored in the on-disk
        compile cache, all but the first (which this process, about to fit it, compiles itself;
        when a core is idle, the helper first compiles that model's expand wrapper meanwhile).
        Compiling is single-threaded and takes tens of seconds per model on empty caches, so on 2
        cores the helper halves a cold multi-model run; with warm caches this only builds the
        models (which :meth:`compiled` then reuses).

        :meth:`compiled` of a handed-over model waits for the helper, or compiles it here if the
        helper has not started it yet; a helper that fails only costs that wait (the model is then
        compiled here). Without the on-disk cache there is nothing to hand over. Returns the names
        of the specs handed over.
        """
        from msc_bayes.inference.compile_cache import is_stored

        missing: dict = {}  # structure key -> (spec, evidence), in the order given
        for spec, evidence in models:
            key = structure_key(spec, evidence)
            if key in self.compiled_models or key in self.built or key in self.helper.jobs or key in missing:
                continue
            try:
                self.built[key] = self._built(spec, evidence, key)
            except Exception:  # noqa: BLE001, S112 - not handed over; fitting it builds it again and raises there
                continue
            cache_key = self.built[key][2]
            if cache_key is not None and not is_stored(cache_key):
                missing[key] = (spec, evidence)
        order = list(missing.items())
        jobs = {}
        if order and core_idle():  # the first model compiles here: its expand wrapper in the helper meanwhile
            key, (spec, evidence) = order[0]
            jobs[key + EXPAND_JOB] = HelperJob(spec, evidence, EXPAND)
        jobs.update({key: HelperJob(*model) for key, model in order[1:]})
        if jobs:
            self.helper.start(jobs)
        return [job.spec.name for job in jobs.values() if job.part == MODEL]

    # ----------------------------------------------------------------------------------
    # Fitting
    # ----------------------------------------------------------------------------------

    def fit(self, spec, evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
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
        settings = sampling.sampler_settings(spec, draws=draws, tune=tune, chains=chains, seed=seed,
                                             target_accept=target_accept)
        model_c, model, prepared = self.compiled(spec, evidence)
        updates = sampling.data_updates(spec, model, prepared, exclude_studies)
        with self._fit_lock:
            sampler = sampling.with_data(model_c, model, updates)
            start = time.perf_counter()
            tree = sampling.sample(sampler, spec, settings, exclude_studies, progress)
            elapsed = time.perf_counter() - start
        return sampling.fitted(tree, spec, evidence, prepared, settings, exclude_studies, elapsed)

    def fit_cached(self, spec, evidence, **fit_kwargs) -> Fit:
        """:meth:`fit`, remembered: the same request in this engine returns the same ``Fit`` object
        (the last :attr:`FITS_MAX` are kept; treat them as read-only).

        The draws depend only on (spec, evidence, settings) (:meth:`fit` sets the cached model's
        data before sampling), so a remembered fit is the fit a new request would make.
        """
        key = _fit_key(spec, evidence, fit_kwargs)
        with self._fits_lock:
            if key in self.fits:
                self.fits.move_to_end(key)
                return self.fits[key]
            result = self.fit(spec, evidence, **fit_kwargs)
            self._remember(key, result)
            return result

    def remember_fit(self, fit: Fit, evidence, **fit_kwargs) -> None:
        """Put an existing ``Fit`` of ``fit.spec`` on ``evidence`` with these settings into the cache of
        :meth:`fit_cached`, so that requests for that fit reuse it instead of sampling it again.

        Only for a fit made by :meth:`fit` with exactly these settings (its draws depend only on
        spec, evidence and settings, as for a fit made by :meth:`fit_cached`).
        """
        with self._fits_lock:
            self._remember(_fit_key(fit.spec, evidence, fit_kwargs), fit)

    def _remember(self, key: str, fit: Fit) -> None:
        self.fits[key] = fit
        self.fits.move_to_end(key)
        while len(self.fits) > self.FITS_MAX:
            self.fits.popitem(last=False)


#: The engine of this process: ``msc_bayes.inference.fit`` and the other module-level functions are its methods.
ENGINE = Engine()

