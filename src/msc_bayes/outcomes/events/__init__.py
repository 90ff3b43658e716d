"""The event outcomes, adverse events and MRI activity: one binomial-logit model, two declarations.

The model is in :mod:`.model` (build, derive), the selection of rows in :mod:`.prepare`, the
two reporting formats (binomial, Poisson) with their checks in :mod:`.formats`, the statements
by wording in :mod:`.wording`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from types import MappingProxyType

from msc_bayes.outcomes.base import (
    OVERLAP_OPTION,
    SECONDARY_OPTION,
    TIMEPOINT_OPTION,
    Outcome,
    Quantity,
    Statement,
    SummaryRow,
)
from msc_bayes.outcomes.events import formats
from msc_bayes.outcomes.events.formats import FORMATS
from msc_bayes.outcomes.events.model import (
    MRI_RISK_THRESHOLDS,
    RISK_THRESHOLDS,
    build,
    derive,
)
from msc_bayes.outcomes.events.prepare import TABLES, patients_text, prepare
from msc_bayes.outcomes.events.wording import statements_text
from msc_bayes.spec import OptionInfo, Prior, PriorSlot

_RISK = "per-patient risk over follow-up (lower = better)"
#: The results paragraph of an event outcome (a sentence for each variable the fit has)
_STATEMENTS = (
    Statement("risk_pooled", "The pooled per-patient risk in MSC arms {at_ref} was {value}.", "risk", "derived"),
    Statement("risk_new", "Prediction for a new study's MSC arm {at_ref}: risk {value}{probabilities}.", "risk",
              "derived", probabilities="p_risk_above", probability_text="P(new-study risk > {percent}%)"),
    Statement("msc_effect", "MSC vs control log odds ratio {value}.", "log_odds_ratio"),
    Statement("risk_new_control", "Risk in a new study's control arm: {value}.", "risk", "derived"),
    Statement("risk_by_route", "New-study risk by route: {value}.", "risk", "derived", listing=True),
    Statement("risk_new_event", "New-study risk by event type: {value}.", "risk", "derived", listing=True),
    Statement("route_contrast", "Route contrasts (log odds ratios): {value}.", group="derived", listing=True),
    Statement("tau", "Between-study SD tau (logit scale): {value}."),
    Statement("rate_per_administration_new", "Expected events per administration in a new study: {value}.", "sig",
              "derived"),
)
#: MRI activity's results paragraph: its own words (activity, MRI measures), no events per administration
_MRI_STATEMENTS = (
    Statement("risk_pooled", "The pooled per-patient risk of MRI activity in MSC arms {at_ref} was {value}.", "risk",
              "derived"),
    Statement("risk_new", "Prediction for a new study's MSC arm {at_ref}: risk of MRI activity {value}"
              "{probabilities}.", "risk", "derived", probabilities="p_risk_above",
              probability_text="P(new-study risk > {percent}%)"),
    Statement("msc_effect", "MSC vs control log odds ratio of MRI activity {value}.", "log_odds_ratio"),
    Statement("risk_new_control", "Risk of MRI activity in a new study's control arm: {value}.", "risk", "derived"),
    Statement("risk_by_route", "New-study risk of MRI activity by route: {value}.", "risk", "derived", listing=True),
    Statement("risk_new_event", "New-study risk by MRI measure: {value}.", "risk", "derived", listing=True),
    Statement("route_contrast", "Route contrasts (log odds ratios): {value}.", group="derived", listing=True),
    Statement("tau", "Between-study SD tau (logit scale): {value}."),
)


def _variable_labels(what: str, kind: str) -> MappingProxyType:
    """The key table's labels of an event outcome's variables (`what`: "an adverse event"; `kind`: what the
    event dim is, "event type" or "MRI measure"); risks are per patient over follow-up, lower = better."""
    return MappingProxyType({
        "mu": f"Pooled log odds of {what} in MSC arms, reference covariates (logit scale)",
        "tau": "Between-study SD (logit scale)",
        "tau_event": f"SD between {kind}s (logit scale)",
        "event_effect": f"Effect of {kind} {{cell}} (log odds vs a typical {kind})",
        "beta": "Covariate effect {cell} (log odds ratio; negative = lower risk)",
        "msc_effect": "MSC minus control (log odds ratio; negative = lower risk with MSC)",
        "risk_pooled": f"Pooled per-patient risk of {what} in MSC arms, reference covariates",
        "risk_pooled_event": f"Pooled per-patient risk in MSC arms, {kind} {{cell}}",
        "risk_new": f"Risk of {what} in a new study's MSC arm",
        "risk_new_event": f"Risk in a new study's MSC arm, {kind} {{cell}}",
        "risk_new_control": f"Risk of {what} in a new study's control arm",
        "risk_by_route": "Risk in a new study's MSC arm, route {cell}",
        "route_contrast": "Route contrast {cell} (log odds ratio; negative = lower risk with the first route)",
        "rate_per_administration_new": "Expected events per administration in a new study's MSC arm",
    })


#: How the key table writes an event outcome's variables: risks in %, log odds ratios with their odds ratios
_VARIABLE_FORMATS = MappingProxyType({
    **{v: "risk" for v in ("risk_pooled", "risk_pooled_event", "risk_new", "risk_new_event", "risk_new_control",
                           "risk_by_route")},
    **{v: "log_odds_ratio" for v in ("msc_effect", "route_contrast", "beta")},
    "rate_per_administration_new": "sig",
})


#: Clinically important magnitudes of the summary of findings (our choices, stated in the Methods): a serious
#: adverse event in more than 1 patient in 20; an adverse event of a typical type in more than 1 in 10; MRI
#: activity (about a quarter of MSC-arm patients here) in more than half the patients; an odds ratio of 2
#: (or 1/2) between arms.
SERIOUS_AE_IMPORTANT_RISK = 0.05
AE_IMPORTANT_RISK = 0.10
MRI_IMPORTANT_RISK = 0.5
IMPORTANT_LOG_ODDS_RATIO = math.log(2.0)
_LOG_OR = "log odds ratio (negative = lower risk with MSC)"
#: Risks in MSC arms: no comparison (direction "none"); P(important) is a probability of harm
_RISK_ROW = {"scale": "risk", "direction": "none", "better": "lower risk", "worse": "higher risk", "benefit": "",
             "prior_key": "mu", "important_side": "harm"}
_AE_SUMMARY = (
    SummaryRow("risk_pooled_event[serious_ae]", "Serious adverse events: per-patient risk in a typical study's MSC "
               "arm", _RISK, important=SERIOUS_AE_IMPORTANT_RISK, prediction="risk_new_event[serious_ae]",
               prior_scale_keys=("tau_event",), **_RISK_ROW),
    SummaryRow("risk_pooled", "Adverse events of a typical event type: per-patient risk in a typical study's MSC "
               "arm", _RISK, important=AE_IMPORTANT_RISK, prediction="risk_new", **_RISK_ROW),
    SummaryRow("msc_effect", "MSC vs control: odds ratio of an adverse event (log scale)", _LOG_OR,
               "log_odds_ratio", better="lower risk with MSC", worse="higher risk with MSC",
               benefit="lower risk with MSC than control", point_null=True, prior_key="msc_effect",
               important=IMPORTANT_LOG_ODDS_RATIO, important_side="harm", informed_by="control"),
    SummaryRow("route_contrast[IT vs IV]", "Intrathecal (IT) vs intravenous (IV) MSC: odds ratio of an adverse "
               "event (log scale)", "log odds ratio (negative = lower risk with IT)", "log_odds_ratio",
               better="lower risk with IT", worse="lower risk with IV", benefit="lower risk with IT than IV",
               point_null=True, prior_key="beta", important=IMPORTANT_LOG_ODDS_RATIO, important_side="harm"),
)
_MRI_SUMMARY = (
    SummaryRow("risk_pooled", "MRI activity (typical measure): per-patient risk in a typical study's MSC arm", _RISK,
               important=MRI_IMPORTANT_RISK, prediction="risk_new", **_RISK_ROW),
    SummaryRow("msc_effect", "MSC vs control: odds ratio of MRI activity (log scale)",
               "log odds ratio (negative = less activity with MSC)", "log_odds_ratio",
               better="less MRI activity with MSC", worse="more MRI activity with MSC",
               benefit="less MRI activity with MSC than control", point_null=True, prior_key="msc_effect",
               important=IMPORTANT_LOG_ODDS_RATIO, informed_by="control"),
)


#: The options that select event rows: the event outcomes' (adverse events, MRI activity) and the event rates'
SELECTION_OPTIONS = MappingProxyType({
    "events": OptionInfo("strings", (), "event types to include; empty = all events in the data"),
    "attribution": OptionInfo("choice", "all", "which events count: any / treatment-related / all",
                              ("any", "related", "all")),
    "serious_only": OptionInfo("bool", False, "count serious events only"),
    "statements": OptionInfo("choice", "all", "which safety statements count: all, or explicit only "
                             "(wording count or none; vague wording left out)", ("all", "explicit")),
    "timepoint": TIMEPOINT_OPTION,
    "exclude_overlapping": OVERLAP_OPTION,
    "exclude_secondary": SECONDARY_OPTION,
})


def _units_text(units, spec) -> str:
    """The methods' sentences on the modelled units: patients versus periods, and the statements that entered."""
    return " ".join(t for t in (patients_text(units), statements_text(units, spec.options["statements"])) if t)


def _binary_outcome(name: str, table: str, description: str, what: str, model_text: str, axis_label: str,
                    summary: tuple[SummaryRow, ...] = ()) -> Outcome:
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
        options=SELECTION_OPTIONS,
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
        units_text=_units_text,
        format_text=MappingProxyType({f.name: f.text for f in FORMATS.values()}),
        words=name.replace("_", " "),
        axis_label=axis_label,
        scale_units="log odds",
        unit_dims=("arm", "arm_admin", "study_event"),
        statements=_STATEMENTS,
        reference_suffixes=(("event_effect", ", typical event type"),),
        variable_labels=_variable_labels(what, "event type"),
        variable_formats=_VARIABLE_FORMATS,
        summary=summary,
    )  # fmt: skip


ADVERSE_EVENTS = _binary_outcome(
    "adverse_events", TABLES["adverse_events"], "adverse events (counts of patients with an event)", "an event",
    "a Bayesian binomial-logit random-effects meta-regression of the per-patient risk of at least one event "
    "over follow-up: logit risk theta = mu + event-type effect + X·beta − msc_effect·[control arm] + "
    "tau·z(study, event type), z ~ N(0, 1) (non-centred)",
    "per-patient risk of the event over follow-up", _AE_SUMMARY)
MRI_ACTIVITY = _binary_outcome(
    "mri_activity", TABLES["mri_activity"], "MRI activity (counts of patients with active lesions)", "MRI activity",
    "a Bayesian binomial-logit random-effects meta-analysis of the per-patient risk of MRI activity over "
    "follow-up: logit risk theta = mu + measure effect + X·beta − msc_effect·[control arm] + "
    "tau·z(study, measure), z ~ N(0, 1) (non-centred)",
    "per-patient risk of MRI activity over follow-up", _MRI_SUMMARY)
#: MRI activity is not an adverse event: its own sentences and labels (MRI measures, not event types; no events
#: per administration) and thresholds around its risk of about a quarter (events.model.MRI_RISK_THRESHOLDS)
MRI_ACTIVITY = replace(
    MRI_ACTIVITY, statements=_MRI_STATEMENTS, thresholds=MRI_RISK_THRESHOLDS,
    derive=partial(derive, risk_thresholds=MRI_RISK_THRESHOLDS, rates=False),
    reference_suffixes=(("event_effect", ", typical MRI measure"),),
    variable_labels=_variable_labels("MRI activity", "MRI measure"))
