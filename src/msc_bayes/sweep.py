"""Sweeps: many fits of one analysis, run in this process or on a Dask cluster.

A sweep is a list of :class:`Scenario` (spec, evidence, fit settings, and what to keep of
the fit). :func:`run_sweep` runs it through one runner and returns one tidy
``pandas.DataFrame`` (one block of rows per scenario, in scenario order):

- ``scheduler=None`` (default): in this process, one scenario after the other. Compiled
  models are cached per process by structure (:func:`msc_bayes.inference.compiled`), so a
  sweep over prior *values*, seeds or left-out studies compiles once and then only
  samples; nutpie already runs the chains on the machine's cores.
- ``scheduler="tcp://host:8786"`` (or a ``distributed.Client`` / ``LocalCluster``): one
  Dask task per scenario on that cluster (the workers need ``msc_bayes`` installed). Each worker process keeps its own cache of
  compiled models; a task returns only its small result (the summary rows), never a
  DataTree. Results are identical to the local run for the same seeds: the sampler is
  seeded per scenario (``fit_kwargs["seed"]``, default the spec's seed) and nothing
  depends on which worker runs what.

Every MCMC fit goes through :func:`fit_cached`: it remembers recent fits in the process
(a sweep that asks for the same fit twice samples it once) and sets the cached PyMC model's
prior-parameter data before sampling, so that nutpie's initial points, and hence the draws,
depend only on the scenario and not on which spec first compiled the model.

Where the plain normal-normal model applies (an EDSS effect-size table: outcome
``edss_change``, no covariates, one ``change`` unit per study, no control arm, a Normal
prior on ``mu``; or outcome ``effect_size`` with a known SE per unit, likewise) and a
scenario asks for summaries only, ``method="auto"`` answers with the exact posterior of
:func:`msc_bayes.oracle.normal_normal` (~5 ms) instead of MCMC.

Summary rows (:func:`summarise`) have the columns ``quantity, mean, sd, median,
eti95_lower, eti95_upper, prob_below_0, mcse_mean, ess_bulk, r_hat``: the interval is the
package's one interval, ``INTERVAL_PROB`` equal-tailed (the column names come from
:func:`msc_bayes.results.interval_columns`). :func:`run_sweep` adds ``scenario``, the
scenario's ``meta`` entries, ``method`` ("mcmc" / "oracle" / "error"), ``notes`` and
``seconds`` (wall time of the task; the only column that differs between runs).
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from msc_bayes import progress as progress_report
from msc_bayes import results
from msc_bayes.diagnostics import divergences
from msc_bayes.inference import fit_cached
from msc_bayes.results import (
    interval_columns,
    quantile_probs,
    quantity_summary,
    reported_cells,
)

__all__ = [
    "DEFAULT_QUANTITIES",
    "SUMMARY_COLUMNS",
    "Scenario",
    "fit_cached",
    "oracle_posterior",
    "run_scenario",
    "run_scenarios",
    "run_sweep",
    "summarise",
]

LOWER, UPPER = interval_columns()
#: Columns of a summary row, in order.
SUMMARY_COLUMNS = ("quantity", "mean", "sd", "median", LOWER, UPPER, "prob_below_0", "mcse_mean", "ess_bulk", "r_hat")
#: Quantities summarised when a scenario names none (those the fit has): the pooled mean,
#: heterogeneity, MSC minus control, a new study's mean, and the IT-vs-IV route contrast.
DEFAULT_QUANTITIES = ("mu", "tau", "msc_effect", "theta_new", "route_contrast[IT vs IV]")
#: Fit settings a scenario may carry (passed to :func:`msc_bayes.inference.fit`).
FIT_KEYS = ("draws", "tune", "chains", "seed", "target_accept", "exclude_studies")


# --------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One fit of a sweep.

    name: the scenario label (the ``scenario`` column).
    spec, evidence: what to fit.
    fit_kwargs: settings for :func:`~msc_bayes.inference.fit` (draws, tune, chains, seed,
        target_accept, exclude_studies); missing ones default to the spec's.
    quantities: what :func:`summarise` reports (default :data:`DEFAULT_QUANTITIES`).
    extract: ``extract(fit, scenario) -> DataFrame | dict[str, DataFrame]`` computes the
        scenario's (small) result from the fit; default :func:`summarise`. It must be a
        module-level function (it is pickled to Dask workers).
    extract_args: parameters for ``extract`` (not shown as columns).
    method: "auto" (the exact oracle when it applies and ``extract`` is the default,
        else MCMC), "mcmc", or "oracle" (raise if it does not apply).
    meta: extra columns for the scenario's rows (e.g. ``{"family": "prior"}``); an
        extract may read them too (e.g. which study is held out).
    """

    name: str
    spec: Any
    evidence: Any
    fit_kwargs: Mapping[str, Any] = field(default_factory=dict)
    quantities: tuple[str, ...] | None = None
    extract: Callable | None = None
    extract_args: Mapping[str, Any] = field(default_factory=dict)
    method: str = "auto"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.fit_kwargs) - set(FIT_KEYS)
        if unknown:
            raise ValueError(f"Scenario {self.name!r}: unknown fit settings {sorted(unknown)}; allowed {FIT_KEYS}")
        if self.method not in ("auto", "mcmc", "oracle"):
            raise ValueError(f"Scenario {self.name!r}: method must be 'auto', 'mcmc' or 'oracle', not {self.method!r}")
        if self.quantities is not None:
            object.__setattr__(self, "quantities", tuple(self.quantities))
        kw = dict(self.fit_kwargs)
        if "exclude_studies" in kw:
            kw["exclude_studies"] = tuple(kw["exclude_studies"])
        object.__setattr__(self, "fit_kwargs", kw)
        object.__setattr__(self, "meta", dict(self.meta))
        object.__setattr__(self, "extract_args", dict(self.extract_args))

    def fit(self):
        """Fit this scenario with MCMC in this process (:func:`fit_cached`)."""
        return fit_cached(self.spec, self.evidence, **self.fit_kwargs)


def quantity_draws(fit, quantities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """(chain, draw) draws of each requested quantity the fit has (posterior, then derived group).

    A quantity is a variable name (every cell of it: ``route_contrast[IT vs IV]``, ...) or
    one cell label (``route_contrast[IT vs IV]``). Quantities the fit lacks are skipped.
    """
    cells = reported_cells(fit, DEFAULT_QUANTITIES if quantities is None else quantities)
    return {label: values for (_, label), values in cells.items()}


def summarise(fit, scenario: Scenario | None = None, *, quantities: Sequence[str] | None = None) -> pd.DataFrame:
    """Summary rows (:data:`SUMMARY_COLUMNS` of :func:`msc_bayes.results.quantity_summary`) of the
    requested quantities of a fit (:func:`quantity_draws`)."""
    if quantities is None and scenario is not None:
        quantities = scenario.quantities
    table = quantity_summary(fit, DEFAULT_QUANTITIES if quantities is None else quantities)
    return table[list(SUMMARY_COLUMNS)]


# --------------------------------------------------------------------------------------
# The exact fast path
# --------------------------------------------------------------------------------------


def _oracle_units(spec, evidence):
    """The modelled units when the model is the plain normal-normal one (:func:`oracle_posterior`), else None."""
    if spec.outcome not in ("edss_change", "effect_size") or spec.covariates or spec.priors["mu"].dist != "Normal":
        return None
    if spec.outcome == "effect_size":  # y with a known SE (reported, or from a CI) per unit
        from msc_bayes.outcomes import effect_size

        units = effect_size.prepare(spec, evidence).units
        plain = units["likelihood"].isin(["se", "ci"]).all() and units["study"].is_unique and not (
            units["group"] == "control").any()
        return units if plain else None
    from msc_bayes.outcomes import edss

    prepared = edss.prepare(spec, evidence)
    units = prepared.units
    plain = (all(list(f) == ["change"] for f in units["formats"]) and units["study"].is_unique
             and not (units["group"].fillna("msc") == "control").any() and not prepared.shared)
    return units if plain else None


def oracle_posterior(spec, evidence, *, exclude_studies=()):
    """The exact posterior (:func:`~msc_bayes.oracle.normal_normal`) when the model is the plain
    normal-normal one, else None.

    It applies when the outcome is ``edss_change``, there are no covariates, every modelled
    unit reports ``change`` (a mean with SD, SE or CI), each study has one unit, no unit is a
    control arm, and the prior on ``mu`` is Normal; or when the outcome is ``effect_size`` with
    the same conditions and every unit a known SE (formats ``se`` / ``ci``). Left-out studies
    are dropped exactly.
    """
    from msc_bayes.oracle import normal_normal
    from msc_bayes.outcomes.edss.formats.change import change_mean_se

    units = _oracle_units(spec, evidence)
    if units is None:
        return None
    units = units[~units["study"].isin(list(exclude_studies))]
    if units.empty:
        return None
    y, se = ((units["y"].to_numpy(dtype=float), units["se_known"].to_numpy(dtype=float))
             if spec.outcome == "effect_size" else change_mean_se(units))
    mu = spec.priors["mu"].params
    return normal_normal(y, se, prior_mean=mu["mu"], prior_sd=mu["sigma"], tau_logpdf=spec.priors["tau"].logpdf)


def _oracle_summary(post, quantities) -> pd.DataFrame:
    """Summary rows of mu, tau and theta_new from the exact posterior (MCSE 0: no sampling)."""
    q_lo, q_hi = quantile_probs()
    qs = [q_lo, 0.5, q_hi]
    x_new = np.array([1.0])
    exact = {
        "mu": (post.mu_mean, post.mu_sd, post.mu_quantile(qs), float(post.cdf(0, 0.0))),
        "tau": (post.tau_mean, post.tau_sd, post.tau_quantile(qs), 0.0),
        "theta_new": (post.predictive_mean(x_new), post.predictive_sd(x_new), post.predictive_quantile(x_new, qs),
                      post.predictive_cdf(x_new, 0.0)),
    }
    rows = []
    for q in DEFAULT_QUANTITIES if quantities is None else quantities:
        if q in exact:
            mean, sd, (lo, med, hi), below = exact[q]
            rows.append({"quantity": q, "mean": float(mean), "sd": float(sd), "median": float(med), LOWER: float(lo),
                         UPPER: float(hi), "prob_below_0": float(below), "mcse_mean": 0.0, "ess_bulk": np.inf,
                         "r_hat": np.nan})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def tag(result, scenario: Scenario, method: str, notes: str, seconds: float, divergences: int = 0):
    """Add scenario, meta, method, notes, seconds and divergences columns to a result (or each of a dict's).

    ``divergences``: the divergent transitions of the fit the rows come from, on its own rows (rows
    reweighted from it, method "reweight", get 0: they are not a refit).
    """
    if isinstance(result, Mapping):
        return {k: tag(v, scenario, method, notes, seconds, divergences) for k, v in result.items()}
    df = result.copy()
    if "scenario" not in df:
        df.insert(0, "scenario", scenario.name)
    pos = 1
    for k, v in scenario.meta.items():
        if k not in df:
            df.insert(pos, k, [v] * len(df))
            pos += 1
    if "method" not in df:
        df["method"] = method
    if "notes" not in df:
        df["notes"] = ""
    # rows computed from this fit's draws by reweighting carry its notes as the base fit's
    own = [f"base fit: {notes}" if notes and m == "reweight" else notes for m in df["method"]]
    df["notes"] = [";  ".join(x for x in (n, o) if isinstance(x, str) and x) for n, o in zip(df["notes"], own)]
    df["seconds"] = seconds
    if "divergences" not in df:
        df["divergences"] = [0 if m == "reweight" else int(divergences) for m in df["method"]]
    return df


def sampler_notes(fit) -> str:
    """'N divergences' when the sampler reported any (the rows are then less trustworthy)."""
    n = divergences(fit)
    return f"{n} divergent transitions" if n else ""


def run_scenario(scenario: Scenario, *, on_error: str = "record"):
    """Run one scenario here and return its small, tagged result (a DataFrame or dict of them).

    on_error: "record" (a row with the error in ``notes`` and NaN numbers) or "raise".
    """
    start = time.perf_counter()
    try:
        if _tries_oracle(scenario):
            post = oracle_posterior(scenario.spec, scenario.evidence,
                                    exclude_studies=scenario.fit_kwargs.get("exclude_studies", ()))
            if post is not None:
                out = _oracle_summary(post, scenario.quantities)
                return tag(out, scenario, "oracle", "", time.perf_counter() - start)
        if scenario.method == "oracle":
            raise ValueError("the exact normal-normal posterior does not apply to this spec and evidence")
        f = scenario.fit()
        out = (scenario.extract or summarise)(f, scenario)
        notes = sampler_notes(f)
        return tag(out, scenario, "mcmc", notes, time.perf_counter() - start, divergences(f))
    except Exception as exc:
        if on_error == "raise":
            raise
        row = pd.DataFrame([{"quantity": None}], columns=list(SUMMARY_COLUMNS))
        return tag(row, scenario, "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start)


def _tries_oracle(scenario: Scenario) -> bool:
    """Does :func:`run_scenario` answer this scenario with the exact oracle where it applies?"""
    return scenario.method != "mcmc" and scenario.extract in (None, summarise)


def _precompile(scenarios: Sequence[Scenario]) -> None:
    """Hand the models a local sweep will compile to a helper process (:func:`msc_bayes.inference.precompile`):
    one per model structure, leaving out those only the exact oracle answers."""
    from msc_bayes.inference import precompile, structure_key

    groups: dict[str, list[Scenario]] = {}
    for sc in scenarios:
        groups.setdefault(structure_key(sc.spec, sc.evidence), []).append(sc)

    def samples(group: list[Scenario]) -> bool:  # run_scenario's choice of MCMC over the oracle
        if not all(_tries_oracle(sc) for sc in group):
            return True
        try:
            return _oracle_units(group[0].spec, group[0].evidence) is None
        except Exception:  # noqa: BLE001 - not handed over; running the scenario reports the error
            return False

    precompile([(g[0].spec, g[0].evidence) for g in groups.values() if samples(g)])


def _client(scheduler):
    """(client, close_when_done) for a scheduler address, Client or cluster."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        return Client(scheduler), True
    if hasattr(scheduler, "scheduler_address"):  # a LocalCluster or other cluster object
        return Client(scheduler), True
    raise TypeError(f"scheduler must be an address like 'tcp://host:8786', a distributed.Client or a cluster, "
                    f"not {type(scheduler).__name__}")


def run_scenarios(scenarios: Sequence[Scenario], *, scheduler=None, on_error: str = "record",
                  progress: bool = False) -> list:
    """Run scenarios and return their results in order (each a DataFrame or a dict of them).

    scheduler: None (this process) or a Dask scheduler address / ``distributed.Client`` /
    cluster (one task per scenario; each worker caches its compiled models).
    """
    scenarios = list(scenarios)
    if on_error not in ("record", "raise"):
        raise ValueError("on_error must be 'record' or 'raise'")
    if scheduler is None:
        _precompile(scenarios)
        out = []
        for i, sc in enumerate(scenarios, 1):
            with progress_report.scenario(i, len(scenarios), sc.name):  # an active Progress names a refit
                out.append(run_scenario(sc, on_error=on_error))
            if progress:
                print(f"[{i}/{len(scenarios)}] {sc.name}", flush=True)
        return out
    client, close = _client(scheduler)
    try:
        token = uuid.uuid4().hex[:8]
        futures = [client.submit(run_scenario, sc, on_error=on_error, key=f"msc-sweep-{token}-{i}", pure=False)
                   for i, sc in enumerate(scenarios)]
        if progress:
            from distributed import as_completed

            for i, _ in enumerate(as_completed(futures), 1):
                print(f"[{i}/{len(futures)}] done", flush=True)
        return client.gather(futures)
    finally:
        if close:
            client.close()


def concat(results: Sequence, key: str | None = None) -> pd.DataFrame:
    """One DataFrame from scenario results (taking ``result[key]`` of dict results)."""
    frames = [r[key] if isinstance(r, Mapping) else r for r in results]
    frames = [f for f in frames if f is not None and len(f.columns)]
    if not frames:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # concat of all-NA error rows
        df = pd.concat(frames, ignore_index=True)
    return df


def run_sweep(scenarios: Sequence[Scenario], *, scheduler=None, on_error: str = "record",
              progress: bool = False) -> pd.DataFrame:
    """Run a sweep and return its rows as one tidy DataFrame (see the module docs for columns)."""
    df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
    df.attrs["interval"] = results.interval_text()
    return df


def default_scheduler():
    """The scheduler address in the environment variable ``MSC_BAYES_SCHEDULER``, or None (local)."""
    return os.environ.get("MSC_BAYES_SCHEDULER") or None
