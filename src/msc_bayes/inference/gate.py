"""Fitting with the convergence gate: fit; if the gate (:func:`msc_bayes.diagnostics.convergence`)
fails, refit once with tuning doubled (at most the spec's limit) and the target acceptance raised.
``report`` and ``fit`` both fit this way. Every sampling run is an
`Attempt`, so a report can say what was tried."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from msc_bayes import results
from msc_bayes.diagnostics import Convergence, convergence
from msc_bayes.inference.engine import ENGINE
from msc_bayes.spec.sampler import SAMPLER_MAXIMUM

#: Target acceptance of the one refit after a failed gate: at least this.
REFIT_TARGET_ACCEPT = 0.99


@dataclass(frozen=True)
class Attempt:
    """One sampling run of a model."""

    draws: int
    tune: int
    chains: int
    target_accept: float
    seconds: float
    passed: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains, "target_accept": self.target_accept,
                "seconds": round(self.seconds, 3), "passed": self.passed, "reasons": list(self.reasons)}


def raised_target_accept(target_accept: float) -> float:
    """Target acceptance of the refit: 0.99, or halfway to 1 if already at or above 0.99."""
    return REFIT_TARGET_ACCEPT if target_accept < REFIT_TARGET_ACCEPT else round((1 + target_accept) / 2, 6)


def _attempt(spec, evidence, *, draws, tune, chains, seed, target_accept, progress):
    start = time.perf_counter()
    result = ENGINE.fit(spec, evidence, draws=draws, tune=tune, chains=chains, seed=seed,
                        target_accept=target_accept, progress=progress)
    seconds = time.perf_counter() - start
    verdict = convergence(result)
    a = results.attrs(result)
    attempt = Attempt(int(a["draws"]), int(a["tune"]), int(a["chains"]), float(a["target_accept"]), seconds,
                      verdict.passed, verdict.reasons)
    return result, verdict, attempt


def fit_gated(spec, evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
              seed: int | None = None, target_accept: float | None = None, progress: bool = False,
              log: Callable[[str], None] = print, key: str = "") -> tuple[object, Convergence, tuple[Attempt, ...]]:
    """Fit; if the gate fails, refit once with tune doubled and target acceptance raised.

    Settings left None are the spec's (``target_accept``: its ``[sampler]`` table's, else the outcome's)."""
    kw = {"draws": draws, "chains": chains, "seed": seed, "progress": progress}
    first_target = spec.sampler.target_accept if target_accept is None else target_accept
    result, verdict, first = _attempt(spec, evidence, tune=tune, target_accept=first_target, **kw)
    if verdict.passed:
        return result, verdict, (first,)
    new_tune = min(2 * first.tune, SAMPLER_MAXIMUM["tune"])  # a spec's limit holds for the refit too
    new_target = raised_target_accept(first.target_accept)
    log(f"    {key} failed the convergence gate ({'; '.join(verdict.reasons)}); "
        f"refitting with tune {new_tune}, target_accept {new_target:g}")
    result, verdict, second = _attempt(spec, evidence, tune=new_tune, target_accept=new_target, **kw)
    return result, verdict, (first, second)
