"""What each modelled outcome is, in one registry.

``OUTCOMES`` maps a spec's ``outcome`` to its declaration: allowed prior keys (with
defaults) and allowed ``[options]`` keys (with defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from msc_bayes.spec import OptionInfo, OutcomeInfo, Prior, PriorSlot

_TIMEPOINTS = ("last", "first", "all")
_EDSS_FORMATS = ("patient", "change", "baseline_followup", "counts", "means_only")


def _binary_outcome(description: str, what: str) -> OutcomeInfo:
    return OutcomeInfo(
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
    )  # fmt: skip


#: Outcome -> allowed prior keys (with defaults) and allowed ``[options]`` keys (with defaults).
OUTCOMES: Mapping[str, OutcomeInfo] = MappingProxyType({
    "edss_change": OutcomeInfo(
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
    ),
    "adverse_events": _binary_outcome("adverse events (counts of patients with an event)", "an event"),
    "mri_activity": _binary_outcome("MRI activity (counts of patients with active lesions)", "MRI activity"),
})  # fmt: skip
