"""What each modelled outcome is, in one registry.

``OUTCOMES`` maps a spec's ``outcome`` to its `Outcome` (:mod:`msc_bayes.outcomes.base`):
allowed prior keys (with defaults), allowed ``[options]`` keys (with defaults), tables,
formats, ``prepare`` / ``build`` / ``derive`` and what a report shows of it. `get` looks
one up; `register` adds one (a new outcome is one module plus one `register` call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from msc_bayes.outcomes.base import Outcome, Quantity
from msc_bayes.spec import OptionInfo, Prior, PriorSlot

__all__ = ["OUTCOMES", "Outcome", "Quantity", "get", "register", "unregister"]

_TIMEPOINTS = ("last", "first", "all")
_EDSS_FORMATS = ("patient", "change", "baseline_followup", "counts", "means_only")


def _edss(name: str):
    def call(*args):
        from msc_bayes import edss

        return getattr(edss, name)(*args)

    return call


def _events(name: str):
    def call(*args):
        from msc_bayes import adverse_events

        return getattr(adverse_events, name)(*args)

    return call




def _binary_outcome(name: str, table: str, description: str, what: str) -> Outcome:
    return Outcome(
        name=name,
        description=description,
        priors=MappingProxyType({
            "mu": PriorSlot(Prior("Normal", {"mu": -2, "sigma": 2}),
                            f"pooled logit probability of {what} in MSC arms at reference covariates"),
            "tau": PriorSlot(Prior("HalfNormal", {"sigma": 1}), "between-study SD (logit scale)", "positive"),
            "beta": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "covariate effects (logit scale)"),
            "msc_effect": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}),
                                    "MSC minus control difference (log odds ratio)"),
            "tau_event": PriorSlot(Prior("HalfNormal", {"sigma": 1}),
                                   "between-event-type SD (logit scale)", "positive"),
        }),
        options=MappingProxyType({
            "events": OptionInfo("strings", (), "event types to include; empty = all events in the data"),
            "attribution": OptionInfo("choice", "all", "which events count: any / treatment-related / all",
                                      ("any", "related", "all")),
            "serious_only": OptionInfo("bool", False, "count serious events only"),
            "timepoint": OptionInfo("choice", "last", "which follow-up visit(s) to use", _TIMEPOINTS),
            "exclude_overlapping": OptionInfo("bool", True, "drop reports whose patients overlap another report"),
            "exclude_secondary": OptionInfo("bool", False, "drop secondary (non-primary) reports"),
        }),
        tables=(table, "arms"),
        formats=("binomial", "poisson"),
        prepare=_events("prepare"),
        build=_events("build"),
        derive=_events("derive"),
        unit_estimate="risk_arm",
    )  # fmt: skip


_EDSS = Outcome(
    name="edss_change",
    description="change in EDSS from baseline",
    priors=MappingProxyType({
        "mu": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}),
                        "pooled mean EDSS change in MSC arms at reference covariates"),
        "tau": PriorSlot(Prior("HalfNormal", {"sigma": 0.5}), "between-study SD", "positive"),
        "beta": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 0.5}), "covariate effects"),
        "msc_effect": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}),
                                "MSC minus control difference in mean change"),
        "rho": PriorSlot(Prior("Beta", {"alpha": 4, "beta": 2}), "pre-post correlation of EDSS",
                         "correlation"),
        "sigma_mu": PriorSlot(Prior("Normal", {"mu": math.log(0.7), "sigma": 0.5}),
                              "log of the typical within-arm SD of change"),
        "sigma_tau": PriorSlot(Prior("HalfNormal", {"sigma": 0.5}), "between-arm SD of log sigma",
                               "positive"),
        "sigma_edss": PriorSlot(Prior("HalfNormal", {"sigma": 1.5}), "SD of EDSS at one visit", "positive"),
    }),
    options=MappingProxyType({
        "timepoint": OptionInfo("choice", "last", "which follow-up visit(s) to use", _TIMEPOINTS),
        "formats": OptionInfo("subset", _EDSS_FORMATS,
                              "data formats in priority order: per arm x timepoint the first available is used",
                              _EDSS_FORMATS),
        "combine": OptionInfo("choice", "priority",
                              "'priority': one format per arm x timepoint; 'all': every available format",
                              ("priority", "all")),
        "default_threshold": OptionInfo("positive_float", 0.5,
                                        "EDSS points defining improved/worsened where a study gives none"),
        "exclude_overlapping": OptionInfo("bool", True, "drop reports whose patients overlap another report"),
        "exclude_secondary": OptionInfo("bool", False, "drop secondary (non-primary) reports"),
    }),
    tables=("edss", "patients", "arms"),
    formats=_EDSS_FORMATS,
    prepare=_edss("prepare"),
    build=_edss("build"),
    derive=_edss("derive"),
    unit_estimate="theta",
)  # fmt: skip

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


def get(name: str) -> Outcome:
    """The registered `Outcome` called `name` (KeyError naming the known outcomes otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown outcome {name!r}: one of {', '.join(map(repr, _REGISTRY))}") from None


register(_EDSS)
register(_binary_outcome("adverse_events", "adverse_events", "adverse events (counts of patients with an event)",
                         "an event"))
register(_binary_outcome("mri_activity", "mri", "MRI activity (counts of patients with active lesions)",
                         "MRI activity"))
