"""What a rate unit reports, for the diagnostics: its observed log rate and its predictive check.

The observed log rate of k events over exposure E is log(k / E), with the Jeffreys interval of the rate
(Gamma(k + 1/2, E) quantiles) on the log scale; zero events have no log rate (only the interval). The
predictive check replicates each unit's count from the derived ``predicted_count``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from msc_bayes.numbers import plural
from msc_bayes.results import group, stack_draws


def observed(fit, *, evidence, probs: tuple[float, float], interval: str) -> list[tuple]:
    """Per unit: (observed log rate, lower, upper, what it is), on the scale of theta (per unit of exposure)."""
    words = fit.prepared.exposure_words
    out = []
    for r in fit.prepared.units.itertuples(index=False):
        k, e = float(r.event_count), float(r.model_exposure)
        lo, hi = np.log(stats.gamma.ppf(probs, k + 0.5, scale=1.0 / e))
        value = float(np.log(k / e)) if k > 0 else np.nan
        what = f"{plural(int(k), 'event')} in {e:.4g} {words} (Jeffreys {interval} interval, log rate)"
        out.append((value, float(lo), float(hi), what))
    return out


def replicates(fit, *, evidence, rng: np.random.Generator, probs: tuple[float, float]) -> list[tuple]:
    """(check, label, statistic, observed, replicate draws) per unit from ``predicted_count``."""
    derived = group(fit, "derived")
    if derived is None or "predicted_count" not in derived.data_vars:
        return []
    rep = stack_draws(derived["predicted_count"])
    return [("events", r.label, "events", float(r.event_count), rep[:, j])
            for j, r in enumerate(fit.prepared.units.itertuples(index=False))]
