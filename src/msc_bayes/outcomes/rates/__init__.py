"""The outcome ``event_rates``: events per person-time (or per administration), a Poisson log-link model.

Rows of ``adverse_events.csv`` (or ``mri.csv``, option ``table``) with an event count and its exposure
(:mod:`.prepare`), events ~ Poisson(exposure · exp(theta)) with the event outcomes' linear predictor
(:mod:`.model`), rates reported per 100 person-years (per 100 administrations), observed rates and
predictive checks in :mod:`.observed`. The exact check is :func:`msc_bayes.oracle.poisson.poisson_lognormal`.
"""

from __future__ import annotations

from types import MappingProxyType

from msc_bayes.outcomes.base import (
    Outcome,
    Quantity,
    Statement,
    SummaryRow,
)
from msc_bayes.outcomes.events import SELECTION_OPTIONS
from msc_bayes.outcomes.events.prepare import TABLES
from msc_bayes.outcomes.rates import observed
from msc_bayes.outcomes.rates.model import RATE_THRESHOLDS, build, derive
from msc_bayes.outcomes.rates.prepare import PER, prepare
from msc_bayes.spec import OptionInfo, Prior, PriorSlot

_PER = f"per {PER:g} person-years (or per {PER:g} administrations)"
_RATE = f"events {_PER}"
_LOG_RR = "log rate ratio (negative = fewer events with MSC)"

_STATEMENTS = (
    Statement("rate_pooled", f"The pooled event rate in MSC arms {{at_ref}} was {{value}} events {_PER}.", "sig",
              "derived"),
    Statement("rate_new", "Prediction for a new study's MSC arm {at_ref}: {value} events{probabilities}.", "sig",
              "derived", probabilities="p_rate_above", probability_text="P(new-study rate > {threshold})"),
    Statement("msc_effect", "MSC vs control log rate ratio {value}.", "num"),
    Statement("rate_ratio", "MSC vs control rate ratio {value}.", "sig", "derived"),
    Statement("rate_new_control", "Rate in a new study's control arm: {value}.", "sig", "derived"),
    Statement("rate_by_route", "New-study rate by route: {value}.", "sig", "derived", listing=True),
    Statement("rate_new_event", "New-study rate by event type: {value}.", "sig", "derived", listing=True),
    Statement("route_contrast", "Route contrasts (log rate ratios): {value}.", group="derived", listing=True),
    Statement("tau", "Between-study SD tau (log rate scale): {value}."),
)

_VARIABLE_LABELS = MappingProxyType({
    "mu": "Pooled log event rate per person-year (per administration) in MSC arms, reference covariates",
    "tau": "Between-study SD (log rate scale)",
    "tau_event": "SD between event types (log rate scale)",
    "event_effect": "Effect of event type {cell} (log rate ratio vs a typical event type)",
    "beta": "Covariate effect {cell} (log rate ratio; negative = fewer events)",
    "msc_effect": "MSC minus control (log rate ratio; negative = fewer events with MSC)",
    "rate_ratio": "MSC over control rate ratio (below 1 = fewer events with MSC)",
    "rate_pooled": f"Pooled event rate in MSC arms, reference covariates ({_RATE})",
    "rate_pooled_event": f"Pooled event rate in MSC arms, event type {{cell}} ({_RATE})",
    "rate_new": f"Event rate in a new study's MSC arm ({_RATE})",
    "rate_new_event": f"Event rate in a new study's MSC arm, event type {{cell}} ({_RATE})",
    "rate_new_control": f"Event rate in a new study's control arm ({_RATE})",
    "rate_by_route": f"Event rate in a new study's MSC arm, route {{cell}} ({_RATE})",
    "route_contrast": "Route contrast {cell} (log rate ratio; negative = fewer events with the first route)",
    "theta_new": "Log event rate per person-year (per administration) in a new study's MSC arm",
})
_VARIABLE_FORMATS = MappingProxyType({
    v: "sig" for v in ("rate_pooled", "rate_pooled_event", "rate_new", "rate_new_event", "rate_new_control",
                       "rate_by_route", "rate_ratio")
})

#: No clinically important rate is defined for these rows (an event rate's importance depends on the event):
#: the summary gives no P(important) for them. The pooled rate's contraction is that of its log, mu (scale "rate").
_SUMMARY = (
    SummaryRow("rate_pooled", "Events of a typical event type: rate in a typical study's MSC arm", _RATE, "rate",
               direction="none", better="lower rate", worse="higher rate", benefit="", prediction="rate_new",
               prior_key="mu", important_side="harm"),
    SummaryRow("msc_effect", "MSC vs control: rate ratio of events (log scale)", _LOG_RR, better="fewer events "
               "with MSC", worse="more events with MSC", benefit="fewer events with MSC than control",
               point_null=True, prior_key="msc_effect", informed_by="control"),
    SummaryRow("route_contrast[IT vs IV]", "Intrathecal (IT) vs intravenous (IV) MSC: rate ratio of events (log "
               "scale)", "log rate ratio (negative = fewer events with IT)", better="fewer events with IT",
               worse="fewer events with IV", benefit="fewer events with IT than IV", point_null=True,
               prior_key="beta"),
)


def _units_text(units, spec) -> str:
    """The methods' sentence on what a unit's count and exposure are."""
    per = "administrations received" if spec.options["exposure"] == "administrations" else \
        "person-time converted to person-years (months / 12, days / 365.25)"
    return ("Each unit is an event count over its reported exposure (" + per + "); an arm whose patients had no "
            "event counts 0 events, one reporting patients with an event but no event count is left out (its "
            "events are not reported), and exposure is never taken as n × follow-up. A crossover arm's exposure "
            "is its periods' person-time. An arm reporting both counts enters here through its events only.")


OUTCOME = Outcome(
    name="event_rates",
    description="event rates (events per person-time)",
    priors=MappingProxyType({
        "mu": PriorSlot(Prior("Normal", {"mu": -2, "sigma": 2}),
                        "pooled log event rate per person-year (or per administration) in MSC arms at reference "
                        "covariates: median 14 per 100, 95% between 0.27 and 680 per 100"),
        "tau": PriorSlot(Prior("HalfNormal", {"sigma": 1}), "between-study SD (log rate scale)", "positive"),
        "beta": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "covariate effects (log rate ratios)"),
        "msc_effect": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "MSC minus control (log rate ratio)"),
        "tau_event": PriorSlot(Prior("HalfNormal", {"sigma": 1}), "between-event-type SD (log rate scale)",
                               "positive"),
    }),
    options=MappingProxyType({
        "table": OptionInfo("choice", "adverse_events", "the table of event counts: adverse_events or mri",
                            ("adverse_events", "mri")),
        "exposure": OptionInfo("choice", "person_time", "what a rate is per: person-time (in person-years) or "
                               "administrations; rows of the other kind are left out", ("person_time",
                                                                                      "administrations")),
        **SELECTION_OPTIONS,
    }),
    tables=(TABLES["adverse_events"], TABLES["mri_activity"], "arms"),
    formats=("poisson",),
    prepare=prepare,
    build=build,
    derive=derive,
    used=lambda units: list(units["likelihood"]),
    observed=observed.observed,
    replicates=observed.replicates,
    unit_estimate="theta",
    headline=(
        Quantity("rate_pooled", "pooled event rate (MSC arms)", _RATE, "lower_better"),
        Quantity("rate_new", "event rate in a new study's MSC arm", _RATE, "lower_better"),
        Quantity("msc_effect", "MSC minus control (log rate ratio)", "log rate ratio", "lower_better"),
        Quantity("route_contrast[IT vs IV]", "IT vs IV contrast (log rate ratio)", "log rate ratio", "lower_better"),
    ),
    thresholds=RATE_THRESHOLDS,
    model_text=("a Bayesian Poisson log-link random-effects meta-regression of event counts over their exposure: "
                "events ~ Poisson(exposure · exp(theta)), log rate theta = mu + event-type effect + X·beta − "
                "msc_effect·[control arm] + tau·z(study, event type), z ~ N(0, 1) (non-centred)"),
    format_text=MappingProxyType({"poisson": "an event count over its exposure (Poisson, log link, exposure "
                                             "as offset)"}),
    units_text=_units_text,
    words="event rates",
    axis_label="log event rate per person-year (or per administration)",
    scale_units="log rate",
    unit_dims=("arm", "study_event"),
    statements=_STATEMENTS,
    reference_suffixes=(("event_effect", ", typical event type"),),
    variable_labels=_VARIABLE_LABELS,
    variable_formats=_VARIABLE_FORMATS,
    summary=_SUMMARY,
)
