"""The event outcomes, adverse events and MRI activity: one binomial-logit model, two declarations.

The model is in :mod:`.model` (build, derive), the selection of rows in :mod:`.prepare`, the
two reporting formats (binomial, Poisson) with their checks in :mod:`.formats`.
"""

from __future__ import annotations

from types import MappingProxyType

from msc_bayes.outcomes.base import (
    OVERLAP_OPTION,
    SECONDARY_OPTION,
    TIMEPOINT_OPTION,
    Outcome,
    Quantity,
)
from msc_bayes.outcomes.events import formats
from msc_bayes.outcomes.events.formats import FORMATS
from msc_bayes.outcomes.events.model import RISK_THRESHOLDS, build, derive
from msc_bayes.outcomes.events.prepare import TABLES, prepare
from msc_bayes.spec import OptionInfo, Prior, PriorSlot

_RISK = "per-patient risk over follow-up (lower = better)"


def _binary_outcome(name: str, table: str, description: str, what: str, model_text: str, axis_label: str) -> Outcome:
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
            "timepoint": TIMEPOINT_OPTION,
            "exclude_overlapping": OVERLAP_OPTION,
            "exclude_secondary": SECONDARY_OPTION,
        }),
        tables=(table, "arms"),
        formats=tuple(FORMATS),
        prepare=prepare,
        build=build,
        derive=derive,
        used=lambda units: list(units["likelihood"]),
        observed=formats.observed,
        replicates=formats.replicates,
        unit_estimate="risk_arm",
        headline=(
            Quantity("risk_pooled", "pooled risk (MSC arms)", _RISK, "lower_better"),
            Quantity("risk_new", "risk in a new study's MSC arm", _RISK, "lower_better"),
            Quantity("msc_effect", "MSC minus control (log odds ratio)", "log odds ratio", "lower_better"),
            Quantity("route_contrast[IT vs IV]", "IT vs IV contrast (log odds ratio)", "log odds ratio",
                     "lower_better"),
        ),
        thresholds=RISK_THRESHOLDS,
        model_text=model_text,
        format_text=MappingProxyType({f.name: f.text for f in FORMATS.values()}),
        words=name.replace("_", " "),
        axis_label=axis_label,
    )  # fmt: skip


ADVERSE_EVENTS = _binary_outcome(
    "adverse_events", TABLES["adverse_events"], "adverse events (counts of patients with an event)", "an event",
    "a Bayesian binomial-logit random-effects meta-regression of the per-patient risk of at least one event "
    "over follow-up: logit risk theta = mu + event-type effect + X·beta − msc_effect·[control arm] + "
    "tau·z(study, event type), z ~ N(0, 1) (non-centred)",
    "per-patient risk of the event over follow-up")
MRI_ACTIVITY = _binary_outcome(
    "mri_activity", TABLES["mri_activity"], "MRI activity (counts of patients with active lesions)", "MRI activity",
    "a Bayesian binomial-logit random-effects meta-analysis of the per-patient risk of MRI activity over "
    "follow-up: logit risk theta = mu + measure effect + X·beta − msc_effect·[control arm] + "
    "tau·z(study, measure), z ~ N(0, 1) (non-centred)",
    "per-patient risk of MRI activity over follow-up")
