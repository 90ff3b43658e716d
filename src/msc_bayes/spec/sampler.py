"""nutpie's sampler settings: their limits, `check_sampler_settings` (a spec's ``[sampler]``
table and the command line's flags) and `SamplerSettings`."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from msc_bayes.errors import Problem, SpecError
from msc_bayes.spec.priors import _finite_float

#: Largest draws, tune, chains or seed: nutpie takes them as unsigned 64-bit integers (a
#: negative or larger value is an OverflowError inside nutpie).
SAMPLER_INT_MAX = 2**64 - 1
#: Smallest value of each integer sampler setting. tune = 0 makes nutpie's adaptation panic
#: (Rust "assertion failed: early_end < num_tune"), so at least one tuning step.
_SAMPLER_MINIMUM = {"draws": 1, "tune": 1, "chains": 1, "seed": 0}
_SAMPLER_KEYS = ("draws", "tune", "chains", "target_accept", "seed")


#: Largest draws/tune per chain and number of chains: every draw of every chain is kept in memory,
#: and nutpie aborts the process (no exception) when an allocation fails (--chains 100000 or
#: --draws 10**12 did). A million draws per chain is far beyond any use on this evidence.
SAMPLER_MAXIMUM = {"draws": 1_000_000, "tune": 1_000_000, "chains": 64, "seed": SAMPLER_INT_MAX}
#: Largest draws x chains kept (memory: a few GB for the EDSS model's quantities).
SAMPLER_MAX_KEPT_DRAWS = 4_000_000


def _sampler_int_issue(value: object, key: str) -> str | None:
    minimum, maximum = _SAMPLER_MINIMUM[key], SAMPLER_MAXIMUM[key]
    integral = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if integral and minimum <= value <= maximum:  # type: ignore[operator]
        return None
    if maximum == SAMPLER_INT_MAX:
        return f"an integer >= {minimum} and < 2**64 (nutpie takes unsigned 64-bit integers)"
    return f"an integer >= {minimum} and <= {maximum:,}"


def _target_accept_issue(value: object) -> str | None:
    f = _finite_float(value)
    return None if f is not None and 0 < f < 1 else "a number strictly between 0 and 1"


def _sampler_issues(settings: Mapping[str, object]) -> list[tuple[str, object, str]]:
    """(key, value, expected) for each invalid setting among `settings` (keys of _SAMPLER_KEYS)."""
    issues = []
    for key, value in settings.items():
        if key == "target_accept":
            expected = _target_accept_issue(value)
        else:
            expected = _sampler_int_issue(value, key)
        if expected is not None:
            issues.append((key, value, expected))
    draws, chains = settings.get("draws"), settings.get("chains")
    if not issues and draws is not None and chains is not None and draws * chains > SAMPLER_MAX_KEPT_DRAWS:
        expected = (f"at most {SAMPLER_MAX_KEPT_DRAWS:,} draws in all chains together "
                    f"(here {chains} chains: at most {SAMPLER_MAX_KEPT_DRAWS // chains:,} each)")
        issues.append(("draws", draws, expected))
    return issues


def check_sampler_settings(*, draws: object = None, tune: object = None, chains: object = None,
                           seed: object = None, target_accept: object = None, source: str = "<sampler>",
                           prefix: str = "") -> list[Problem]:
    """The problems with sampler settings, by the rules of a spec's ``[sampler]`` table (empty if none).

    None means "not given" and is not checked. Each Problem names ``source`` as its file and
    ``prefix + setting`` as its column, e.g. for command-line flags::

        problems = check_sampler_settings(draws=args.draws, tune=args.tune, chains=args.chains,
                                          seed=args.seed, source="command line", prefix="--")
        if problems:
            raise SpecError(problems)

    Rules: draws, tune and chains are integers >= 1, seed an integer >= 0 and at most
    :data:`SAMPLER_INT_MAX`; draws and tune at most 1,000,000, chains at most 64 and draws x chains
    at most :data:`SAMPLER_MAX_KEPT_DRAWS` (when both are given); target_accept a number strictly
    between 0 and 1.
    """
    given = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    given = {k: v for k, v in given.items() if v is not None}
    return [Problem(source, None, prefix + k, v, e) for k, v, e in _sampler_issues(given)]


@dataclass(frozen=True)
class SamplerSettings:
    """nutpie's settings; validated on construction (raises SpecError, see :func:`check_sampler_settings`).

    A spec's settings: its ``[sampler]`` table, the defaults below for what it leaves out, except
    ``target_accept`` and ``tune``, which default to the outcome's (:attr:`msc_bayes.outcomes.Outcome.target_accept`,
    :attr:`~msc_bayes.outcomes.Outcome.tune`).
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    seed: int = 20261121

    def __post_init__(self) -> None:
        problems = check_sampler_settings(**self.to_dict(), source="<SamplerSettings>")
        if problems:
            raise SpecError(problems)

    def to_dict(self) -> dict:
        return {
            "draws": self.draws, "tune": self.tune, "chains": self.chains,
            "target_accept": self.target_accept, "seed": self.seed,
        }  # fmt: skip
