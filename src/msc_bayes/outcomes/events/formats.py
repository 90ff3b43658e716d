"""The event outcomes' reporting formats: per unit, a binomial or a Poisson likelihood.

- ``binomial``: ``patients_with_event`` of ``n_at_risk``: y ~ Binomial(n, sigmoid(theta));
- ``poisson``: only an event count ``events``: each patient's events a Poisson process over
  the follow-up with P(>= 1 event) = sigmoid(theta), so events ~ Poisson(n softplus(theta)).

Each knows its log likelihood, the number its predictive check replicates, its observed
risk (with a Jeffreys interval) and the sentence that describes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy import stats

from msc_bayes.results import group, stack_draws

_LOG_SOFTPLUS_CUT = -30.0  # below this, log(softplus(x)) = x to double precision (error < 1e-13)


def _log_softplus(x):
    """log(softplus(x)), finite for every x (softplus(x) = exp(x) to double precision far left)."""
    import pytensor.tensor as pt

    safe = pt.maximum(x, _LOG_SOFTPLUS_CUT)
    return pt.switch(x < _LOG_SOFTPLUS_CUT, x, pt.log(pt.softplus(safe)))


def binomial_logit_logp(y, n, eta):
    """log Binomial(y | n, sigmoid(eta)), written with softplus so it is stable for any eta."""
    import pytensor.tensor as pt

    coef = pt.gammaln(n + 1) - pt.gammaln(y + 1) - pt.gammaln(n - y + 1)
    return coef - y * pt.softplus(-eta) - (n - y) * pt.softplus(eta)


def poisson_softplus_logp(k, n, eta):
    """log Poisson(k | n * softplus(eta)): n patients with P(>= 1 event) = sigmoid(eta) each."""
    import pytensor.tensor as pt

    log_rate = pt.log(n) + _log_softplus(eta)
    return k * log_rate - pt.exp(log_rate) - pt.gammaln(k + 1)


def _observed_binomial(r, probs: tuple[float, float], interval: str) -> tuple[float, float, float, str]:
    lo, hi = probs
    n = float(r.n)
    y = float(r.patients_with_event)
    a, b = y + 0.5, n - y + 0.5
    return y / n, float(stats.beta.ppf(lo, a, b)), float(stats.beta.ppf(hi, a, b)), \
        f"{y:g}/{n:g} patients (Jeffreys {interval} interval)"


def _observed_poisson(r, probs: tuple[float, float], interval: str) -> tuple[float, float, float, str]:
    lo, hi = probs
    n = float(r.n)
    k = float(r.events)
    rate_lo, rate_hi = stats.gamma.ppf([lo, hi], k + 0.5, scale=1 / n)
    risk = lambda rate: float(-np.expm1(-rate))
    return risk(k / n), risk(rate_lo), risk(rate_hi), f"{k:g} events in {n:g} patients (risk 1 - exp(-events/n))"


@dataclass(frozen=True)
class EventFormat:
    """One way a row reports its events."""

    name: str
    text: str
    #: the column the unit's count is in, and what a predictive check calls it
    count_column: str
    statistic: str
    #: log likelihood (count, n at risk, logit risk) -> tensor
    logp: Callable
    #: (row, interval probabilities, interval name) -> (observed risk, lower, upper, what it is)
    observed: Callable


BINOMIAL = EventFormat("binomial", "patients with at least one event of n at risk (binomial)",
                       "patients_with_event", "patients with event", binomial_logit_logp, _observed_binomial)
POISSON = EventFormat("poisson", "only an event count (Poisson with mean n·softplus(theta): each patient's events a "
                      "Poisson process with P(≥1 event) = logit⁻¹(theta))",
                      "events", "events", poisson_softplus_logp, _observed_poisson)
#: Format name (a unit's ``likelihood``) -> `EventFormat`.
FORMATS: Mapping[str, EventFormat] = MappingProxyType({f.name: f for f in (BINOMIAL, POISSON)})


def observed(fit, *, evidence, probs: tuple[float, float], interval: str) -> list[tuple]:
    """Per unit: (observed risk, lower, upper, what it is) as its format reads the row."""
    return [FORMATS[r.likelihood].observed(r, probs, interval) for r in fit.prepared.units.itertuples(index=False)]


def replicates(fit, *, evidence, rng: np.random.Generator, probs: tuple[float, float]) -> list[tuple]:
    """(check, label, statistic, observed, replicate draws) per unit, from the derived group's
    ``predicted_count`` (none when the fit has no such variable)."""
    derived = group(fit, "derived")
    if derived is None or "predicted_count" not in derived.data_vars:
        return []
    rep = stack_draws(derived["predicted_count"])
    rows = []
    for j, r in enumerate(fit.prepared.units.itertuples(index=False)):
        f = FORMATS[getattr(r, "likelihood", "binomial")]
        rows.append((f.statistic, r.label, f.statistic, float(getattr(r, f.count_column)), rep[:, j]))
    return rows
