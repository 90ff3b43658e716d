"""The effect-size outcome: a plain normal meta-(regression) of estimates on the user's own scale.

Reads ``effect_sizes.csv`` (an estimate ``y`` per study arm with its ``se``, a CI, or a within-arm ``sd``
with ``n``; :mod:`.prepare`), builds :mod:`.model` and checks it against the data (:mod:`.checks`).

The scale of ``y`` is the data's (a log odds ratio, a standardised mean difference, points on a
questionnaire), so no prior of ``mu`` or ``tau`` can be a defended default: a spec must state both
(``required_priors``; a spec without them is a SpecError naming the key). ``beta`` and ``msc_effect``
default to Normal(0, 1), wide on the unit-free scales of log odds ratios and standardised mean
differences; on any other scale state them too. The spec's ``[options]`` name what y is (``label``,
``unit``), which way is better (``direction``), the thresholds of the probability statements
(``thresholds``) and the clinically important magnitude (``important``) of the summary of findings.
"""

from __future__ import annotations

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
from msc_bayes.outcomes.effect_size import checks
from msc_bayes.outcomes.effect_size.model import build, derive
from msc_bayes.outcomes.effect_size.prepare import FORMATS, TABLE, prepare
from msc_bayes.spec import OptionInfo, Prior, PriorSlot

_Y = "units of y"
_FORMAT_TEXT = MappingProxyType({
    "se": "an estimate with its reported SE (normal, SE known)",
    "ci": "an estimate with its confidence interval (normal, SE = CI width / (2 z), level 0.95 when not given)",
    "sd": "an estimate with a within-arm SD and n (normal with SE sigma/√n; the reported SD is data on the arm's "
          "SD sigma, (n − 1)·sd²/sigma² ~ χ²(n − 1), with the Jeffreys prior on sigma: integrated over sigma, a "
          "t(n − 1) likelihood, wider than a plug-in SD gives for a small arm)",
})
_LABELS = MappingProxyType({
    "mu": "Pooled effect size in MSC arms, reference covariates (units of y)",
    "msc_effect": "MSC minus control: difference in effect size (units of y)",
    "tau": "Between-study SD of the effect size (units of y)",
    "beta": "Covariate effect {cell} on the effect size (units of y per unit on the model scale)",
    "route_contrast": "Route contrast {cell}: difference in effect size (units of y)",
    "theta_new": "Effect size in a new study's MSC arm, reference covariates (units of y)",
    "sigma": "Within-arm SD {cell} of an arm reported with SD and n (units of y)",
})


def _words(spec) -> tuple[str, str, str, str, str]:
    """(label, unit with direction, better, worse, benefit) of a spec's effect size, from its options."""
    o = spec.options
    label, unit, direction = o["label"], o["unit"], o["direction"]
    if direction == "none":
        return label, unit, f"higher {label}", f"lower {label}", ""
    good = "lower" if direction == "lower_better" else "higher"
    bad = "higher" if direction == "lower_better" else "lower"
    sign = "negative" if direction == "lower_better" else "positive"
    return label, f"{unit} ({sign} = better)", f"{good} {label}", f"{bad} {label}", \
        f"{label} {'below' if direction == 'lower_better' else 'above'} 0"


def summary_rows(spec) -> tuple[SummaryRow, ...]:
    """The summary of findings' rows of a fit of `spec` (rows whose variable the fit lacks are skipped):
    MSC vs control, the pooled effect size (with a new study's), the IT vs IV contrast; P(important) at the
    spec's ``important`` magnitude (none when the spec gives none), direction as the spec says."""
    label, unit, better, worse, benefit = _words(spec)
    common = {"unit": unit, "direction": spec.options["direction"], "important": spec.options["important"],
              "point_null": True}
    return (
        SummaryRow("msc_effect", f"MSC vs control: difference in {label} (MSC minus control)", better="favours MSC",
                   worse="favours control", benefit="MSC better than control" if benefit else "",
                   prior_key="msc_effect", informed_by="control", **common),
        SummaryRow("mu", f"Pooled {label} in MSC arms (at the reference covariates)", better=better, worse=worse,
                   benefit=benefit, prior_key="mu", prediction="theta_new", **common),
        SummaryRow("route_contrast[IT vs IV]", f"Intrathecal (IT) vs intravenous (IV) MSC: difference in {label} "
                   "(IT minus IV)", better="favours IT", worse="favours IV",
                   benefit="IT better than IV" if benefit else "", prior_key="beta", **common),
    )


OUTCOME = Outcome(
    name="effect_size",
    description="an effect size per study arm on the user's scale (effect_sizes.csv)",
    priors=MappingProxyType({
        "mu": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "pooled effect size in MSC arms at reference "
                        "covariates, on the scale of y: state it"),
        "tau": PriorSlot(Prior("HalfNormal", {"sigma": 0.5}), "between-study SD, on the scale of y: state it",
                         "positive"),
        "beta": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "covariate effects (scale of y)"),
        "msc_effect": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}),
                                "MSC minus control difference (scale of y)"),
    }),
    required_priors=("mu", "tau"),
    options=MappingProxyType({
        "label": OptionInfo("text", "effect size", "what y is, in a report's words (e.g. 'log odds ratio of "
                            "relapse', 'SMD in walking speed')"),
        "unit": OptionInfo("text", _Y, "the unit of y in a report"),
        "direction": OptionInfo("choice", "none", "which way is better: 'lower_better', 'higher_better' or "
                                "'none' (no P(benefit))", ("lower_better", "higher_better", "none")),
        "thresholds": OptionInfo("numbers", (0.0,), "thresholds t of the statements P(new-study effect < t), on "
                                 "the scale of y"),
        "important": OptionInfo("positive_float", None, "the clinically important magnitude on the scale of y "
                                "(the summary of findings' P(important)); not given: none"),
        "timepoint": TIMEPOINT_OPTION,
        "exclude_overlapping": OVERLAP_OPTION,
        "exclude_secondary": SECONDARY_OPTION,
    }),
    tables=(TABLE, "arms"),
    formats=FORMATS,
    prepare=prepare,
    build=build,
    derive=derive,
    used=lambda units: list(units["likelihood"]),
    observed=checks.observed,
    replicates=checks.replicates,
    unit_estimate="theta",
    headline=(
        Quantity("mu", "pooled effect size (MSC arms)", _Y),
        Quantity("msc_effect", "MSC minus control", _Y),
        Quantity("route_contrast[IT vs IV]", "IT vs IV contrast", _Y),
    ),
    thresholds=(0.0,),
    model_text=(
        "a Bayesian random-effects meta-(regression) of the reported effect sizes y on their own scale: each "
        "modelled arm has theta = mu + X·beta − msc_effect·[control arm] + tau·z(study), z ~ N(0, 1), and "
        "y ~ N(theta, SE)"),
    format_text=_FORMAT_TEXT,
    words="effect size",
    axis_label="effect size (units of y)",
    scale_units=lambda spec: spec.options["unit"],
    unit_dims=("arm", "arm_sd", "study"),
    statements=(
        Statement("mu", "The pooled effect size in MSC arms {at_ref} was {value}."),
        Statement("msc_effect", "MSC minus control difference: {value}."),
        Statement("tau", "Between-study SD tau: {value}."),
        Statement("theta_new", "Prediction for a new study's MSC arm {at_ref}: effect size {value}{probabilities}.",
                  group="derived", probabilities="p_new_below", probability_text="P(new-study effect < {threshold})"),
        Statement("route_contrast", "Route contrasts (difference in effect size): {value}.", group="derived",
                  listing=True),
        Statement("beta", "Numeric covariate effects (per unit of the covariate on the model scale): {value}.",
                  listing=True, numeric_only=True),
    ),
    variable_labels=_LABELS,
    summary_of=summary_rows,
    report_options=("label", "unit", "direction", "important"),
)  # fmt: skip
