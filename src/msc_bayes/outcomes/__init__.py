"""What each modelled outcome is, in one registry.

``OUTCOMES`` maps a spec's ``outcome`` to its `Outcome` (:mod:`msc_bayes.outcomes.base`):
allowed prior keys (with defaults), allowed ``[options]`` keys (with defaults), tables,
formats, ``prepare`` / ``build`` / ``derive`` and what a report shows of it. `get` looks
one up; `order` is their order on a page (EDSS first); `register` adds one (a new outcome is one module plus one `register` call).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from msc_bayes.outcomes import edss, effect_size, events, rates
from msc_bayes.outcomes.base import Outcome, Quantity, Statement

__all__ = ["OUTCOMES", "Outcome", "Quantity", "Statement", "get", "order", "register", "unregister"]

_REGISTRY: dict[str, Outcome] = {}
#: Outcome name -> its `Outcome` (read-only view of the registry; `register` adds to it).
OUTCOMES: Mapping[str, Outcome] = MappingProxyType(_REGISTRY)


def register(outcome: Outcome) -> Outcome:
    """Add `outcome` to the registry under its name (a name already registered is a ValueError)."""
    if outcome.name in _REGISTRY:
        raise ValueError(f"an outcome called {outcome.name!r} is already registered")
    _REGISTRY[outcome.name] = outcome
    return outcome


def unregister(name: str) -> None:
    """Remove the outcome `name` from the registry (tests that register a toy outcome)."""
    del _REGISTRY[name]


def order(name: str) -> tuple[int, str]:
    """Sort key of an outcome on a page and in a summary: the registry's order (the primary outcome, EDSS, first;
    then adverse events, MRI activity, outcomes registered later), an unknown name last by name."""
    names = list(_REGISTRY)
    return (names.index(name), "") if name in names else (len(names), name)


def get(name: str) -> Outcome:
    """The registered `Outcome` called `name` (KeyError naming the known outcomes otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown outcome {name!r}: one of {', '.join(map(repr, _REGISTRY))}") from None


register(edss.OUTCOME)
register(events.ADVERSE_EVENTS)
register(events.MRI_ACTIVITY)
register(effect_size.OUTCOME)
register(rates.OUTCOME)
