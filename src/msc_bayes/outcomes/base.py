"""What an outcome is: the `Outcome` a spec's ``outcome`` names, and the `Quantity` a report headlines.

An outcome declares, as data, everything the rest of the package needs to know about it:
its prior slots and ``[options]`` (checked when a spec is loaded), the evidence tables and
reporting formats it reads, `prepare` / `build` / `derive`, the quantities a report
headlines (label, unit, direction), its probability thresholds, and the sentences that
describe its model and formats in a report's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from msc_bayes.numbers import signed_g
from msc_bayes.spec import OptionInfo, PriorSlot

Direction = Literal["lower_better", "higher_better", "none"]
#: How a statement shows a variable's draws: a number, a risk in %, 2 significant digits, or a
#: log odds ratio followed by its odds ratio
ValueFormat = Literal["num", "risk", "sig", "log_odds_ratio"]


@dataclass(frozen=True)
class Quantity:
    """A headline quantity: a variable of the fit (posterior or derived) and how a reader sees it.

    ``direction`` says which way is good ("lower_better": negative = improvement for a
    change in EDSS, a lower risk for events); ``scale`` is the axis a figure draws it on.
    """

    name: str
    label: str
    unit: str
    direction: Direction = "none"
    scale: str = ""


#: How a summary-of-findings row reads its quantity: EDSS points (or another number), a risk, a log odds ratio, a
#: rate (events per 100 units of exposure: its prior is on the log rate, ``mu``)
RowScale = Literal["num", "risk", "log_odds_ratio", "rate"]


@dataclass(frozen=True)
class SummaryRow:
    """One row of the summary of findings: a scalar cell of the fit and how it is judged (:mod:`msc_bayes.findings`).

    - ``name``: the fit's variable cell (``msc_effect``, ``route_contrast[IT vs IV]``, ``beta[courses]``);
      ``label`` the human label saying what it compares (``{per}`` is filled in per fit for a numeric
      covariate: "per doubling of" for a log-transformed one, see ``findings.quantities.rows_for``); ``unit``.
    - ``direction``: which way is good; ``better`` / ``worse`` the words of either direction ("favours MSC" /
      "favours control"); ``benefit`` what P(benefit) is the probability of. ``direction="none"``: no comparison
      (a risk in MSC arms), so no P(benefit).
    - ``point_null``: a Bayes factor of "effect" against "no effect" applies (Savage–Dickey at 0);
      ``prior_key`` the spec prior of the quantity (its density at 0 is the Savage–Dickey numerator, its
      variance the contraction's denominator); ``prior_scale_keys``: scale priors s of terms s·N(0, 1) added
      to it (a typical event type's risk: mu + tau_event·z), each adding E[s²] to the prior variance.
    - ``important``: the clinically important magnitude on the row's scale, or the name of the spec option
      holding it (EDSS ``mcid``); ``important_side``: "benefit" (P(at least that much better)) or "harm"
      (P(a risk above it), P(an odds ratio above exp(it))).
    - ``prediction``: the derived cell of a new study's value ("" when none is defined);
      ``informed_by``: "msc" (all MSC arms inform it) or "control" (only studies with a modelled control arm).
    - ``multiplier``: the row reports ``multiplier`` × the variable (set per fit by ``rows_for``: ln 2 for
      "per doubling" of a log-transformed covariate).
    """

    name: str
    label: str
    unit: str
    scale: RowScale = "num"
    direction: Direction = "lower_better"
    better: str = "favours MSC"
    worse: str = "favours control"
    benefit: str = "MSC better than control"
    point_null: bool = False
    prior_key: str = ""
    prior_scale_keys: tuple[str, ...] = ()
    important: float | str | None = None
    important_side: Literal["benefit", "harm"] = "benefit"
    prediction: str = ""
    informed_by: Literal["msc", "control"] = "msc"
    multiplier: float = 1.0


@dataclass(frozen=True)
class Statement:
    """One sentence of a report's results paragraph, said when the fit has ``variable`` in ``group``.

    ``text`` is a format string: ``{value}`` the variable's median and interval (``format``) or,
    with ``listing``, "label value; ..." over its cells (``numeric_only``: only cells whose label
    has no "[", i.e. numeric covariates; the sentence is left out when none is); ``{at_ref}`` the
    reference-covariate phrase; ``{probabilities}`` "; P(...) = p" per threshold of the derived
    indicator ``probabilities`` (``probability_text`` with ``{threshold}`` or ``{percent}``), or
    nothing when the fit lacks it.
    """

    variable: str
    text: str
    format: ValueFormat = "num"
    group: Literal["posterior", "derived"] = "posterior"
    listing: bool = False
    numeric_only: bool = False
    probabilities: str = ""
    probability_text: str = ""

    def probability_words(self, threshold) -> str:
        """``probability_text`` at one threshold (a number or its coordinate text): "P(new-study change < −0.5)"."""
        return self.probability_text.format(threshold=signed_g(threshold), percent=f"{100 * float(threshold):g}")


@dataclass(frozen=True)
class Outcome:
    """One modelled outcome (a spec's ``outcome``), registered in :mod:`msc_bayes.outcomes`.

    - ``prepare(spec, evidence) -> prepared`` selects the modelled units (pure; no PyMC);
      ``prepared.units`` has one row per unit (``label``, ``study``, ``arm``, ``n``, ...);
    - ``build(spec, evidence) -> (pm.Model, prepared)`` never samples;
    - ``derive(posterior, prepared, spec) -> xarray.Dataset`` the derived quantities
      (``spec.sampler.seed`` seeds any random draw);
    - ``used(units) -> list[str]``: per unit, the format(s) it enters through;
    - ``observed(fit, *, evidence, probs, interval) -> [(value, lower, upper, what)]`` per
      unit, and ``replicates(fit, *, evidence, rng, probs) -> [(check, label, statistic,
      observed, replicate draws)]``: what :mod:`msc_bayes.diagnostics` lays out as observed
      estimates and posterior predictive checks (None: the outcome has none).
    """

    name: str
    description: str
    priors: Mapping[str, PriorSlot]
    options: Mapping[str, OptionInfo]
    #: the evidence tables it reads (file stems) and its reporting formats
    tables: tuple[str, ...]
    formats: tuple[str, ...]
    prepare: Callable
    build: Callable
    derive: Callable
    used: Callable | None = None
    observed: Callable | None = None
    replicates: Callable | None = None
    #: the per-unit estimate variable on the reporting scale (dim ``arm``; posterior or derived)
    unit_estimate: str = "theta"
    #: the quantities a report headlines, in order
    headline: tuple[Quantity, ...] = ()
    #: thresholds of the derived probability statements (on the outcome's scale)
    thresholds: tuple[float, ...] = ()
    #: prior key -> the posterior variables it sets when they are not named after the key
    prior_variables: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: the methods sentence of the model, and of each reporting format
    model_text: str = ""
    format_text: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: (prepared units, spec) -> the methods' sentences on the modelled units (the outcome's data rules), or None
    units_text: Callable | None = None
    #: how a sentence names the outcome ("EDSS change") and the axis its per-unit estimates are drawn on
    words: str = ""
    axis_label: str = ""
    #: whether a report gives the outcome a sensitivity section
    sensitivity: bool = False
    #: dims of per-unit variables (per arm or study): in a report's CSV tables, not its key table
    unit_dims: tuple[str, ...] = ("arm", "study")
    #: the sentences of a report's results paragraph, in order
    statements: tuple[Statement, ...] = ()
    #: (posterior variable, words added to the reference-covariate phrase when the fit has it)
    reference_suffixes: tuple[tuple[str, str], ...] = ()
    #: options that only set pm.Data values (not the model's compiled form), and
    #: ``option_data(spec) -> {pm.Data name: value}``: a change of them refits the same compiled model
    data_options: tuple[str, ...] = ()
    option_data: Callable | None = None
    #: the summary of findings' rows, in order (rows whose variable a fit lacks are skipped)
    summary: tuple[SummaryRow, ...] = ()
    #: options that change only what a report says (e.g. the EDSS MCID), never the model:
    #: ``inference.structure_key`` leaves them out
    report_options: tuple[str, ...] = ()
    #: variable -> its label in a report's tables, with unit and direction ("Pooled mean EDSS change ... (points;
    #: negative = improvement)"), and variable -> how its numbers are written (default "num"); a variable not
    #: named is shown by its name
    variable_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    variable_formats: Mapping[str, ValueFormat] = field(default_factory=lambda: MappingProxyType({}))
    #: prior keys a spec must state (spec checks: no default can be defended, e.g. on the scale of a user's effect size)
    required_priors: tuple[str, ...] = ()
    #: spec -> the summary of findings' rows when they depend on the spec (its labels, direction, important
    #: magnitude); None: ``summary``. Read through `summary_rows`.
    summary_of: Callable | None = None
    #: the sampler's target acceptance when a spec's [sampler] table gives none (the command line's
    #: --target-accept overrides both); an outcome whose posterior has a funnel raises it
    target_accept: float = 0.9
    #: the sampler's tuning (warm-up) steps per chain when a spec's [sampler] table gives none (the command
    #: line's --tune overrides both)
    tune: int = 1000
    #: the units of the model's scale, as a figure's axis names them (tau, covariate effects: "EDSS points",
    #: "log odds"), or ``spec -> units`` when the spec says them (an effect size's ``unit`` option)
    scale_units: str | Callable = ""

    def units_of(self, spec) -> str:
        """`scale_units` for a fit of `spec`."""
        return self.scale_units(spec) if callable(self.scale_units) else self.scale_units

    def summary_rows(self, spec) -> tuple[SummaryRow, ...]:
        """The summary of findings' rows for a fit of `spec` (``summary_of(spec)``, else ``summary``)."""
        return tuple(self.summary_of(spec)) if self.summary_of is not None else self.summary

    def quantity(self, name: str) -> Quantity:
        """The headline `Quantity` called `name` (KeyError if the outcome headlines none of that name)."""
        for q in self.headline:
            if q.name == name:
                return q
        raise KeyError(name)

    def variables_of(self, key: str) -> tuple[str, ...]:
        """The posterior variables the prior `key` sets (`prior_variables`, else the variable named `key`)."""
        return self.prior_variables.get(key, (key,))

    def headline_for(self, spec, units) -> tuple[str, str | None]:
        """(pooled effect, route contrast) of a fit: ``msc_effect`` when a control arm is modelled,
        else ``mu``; ``route_contrast[IT vs IV]`` when route is a covariate, else None."""
        contrast = "route_contrast[IT vs IV]"
        return ("msc_effect" if has_control(units) else "mu"), (contrast if "route" in spec.covariates else None)


def has_control(units) -> bool:
    """Whether any modelled unit is a control arm (a blank group is an MSC arm)."""
    return "group" in units.columns and bool((units["group"].fillna("msc") == "control").any())


# Options every outcome shares (one declaration each)
TIMEPOINT_OPTION = OptionInfo("choice", "last", "which follow-up visit(s) to use", ("last", "first", "all"))
OVERLAP_OPTION = OptionInfo("bool", True, "drop reports whose patients overlap another report")
SECONDARY_OPTION = OptionInfo("bool", False, "drop secondary (non-primary) reports")
