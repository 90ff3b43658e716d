"""The vocabulary of the evidence tables: codes (routes, diseases, ...), each table's columns
(`SCHEMAS`), the columns that identify a row, and which values a row needs.

Crossover designs (one patient contributes a period to more than one arm, or two periods to one):

* ``shared_patients.csv``: one row per unordered pair of arms of one study that share patients,
  or an arm with itself. ``patients`` (whole number >= 1) counts the patients who contribute a
  period to both ``arm`` and ``other_arm``; when ``other_arm`` is ``arm``, the patients who
  contribute two periods to that arm. Key (study, arm, other_arm); a pair given twice, also as
  (b, a), is a problem. Both arms are arms of ``arms.csv`` of the same study (when there is an
  arms.csv), ``patients`` is at most the ``n`` of either arm, twice it at most the arm's ``n``
  for an arm with itself, and for each arm the patients it shares with other arms plus twice
  its repeated patients are at most its ``n`` (an arm's ``n`` counts periods). An absent file
  means no study shares patients between arms (the arms are independent).
* ``arms.csv`` ``periods_after_msc``: how many of the arm's periods come after an MSC period of
  the same patient (carry-over into a control arm); a whole number between 0 and the arm's
  ``n``. Blank: none (no period of the arm follows an MSC period).

An arm's size: ``arms.csv`` ``n`` may be blank, or the column absent (an arms.csv of only ``study`` and
``arm`` works, as does no arms.csv). A missing ``n`` is taken from the outcome tables' patient counts
(:data:`PATIENT_COUNTS`: ``edss`` ``n``, ``adverse_events``/``mri`` ``n_at_risk``, ``effect_sizes`` ``n``)
when every row of the arm that gives one agrees; rows that disagree are a problem naming them ("give n
in arms.csv"), or, without an arms.csv, leave ``n`` missing; an arm no row counts keeps ``n`` missing.

Adverse-event statements (``adverse_events.csv``): ``serious`` may be blank (the words do not
say); ``timing`` (:data:`AE_TIMINGS`) is the period a statement covers (``whole`` = the whole
follow-up) and ``wording`` (:data:`AE_WORDINGS`) how it is worded: ``count`` = a number of
patients is reported, ``none`` = the words name the event class and say none occurred, ``vague``
= words excluding a less defined class (coded under the event the words name, e.g.
``major_ae``, ``significant_ae``, ``intolerable_ae``, never ``serious_ae``). A ``none`` or
``vague`` statement reports no patient with the event (``patients_with_event`` 0). Both may be
blank (user tables without them); ``timing`` is part of a row's key (an acute and a delayed
statement of one event are two rows). Event codes (``event`` in adverse_events.csv and mri.csv) are
free text: the models select events by the codes the tables use."""

from __future__ import annotations

import math
from dataclasses import dataclass

ROUTES = ("IV", "IT", "IT+IV", "mixed")
DISEASES = ("RRMS", "SPMS", "PPMS", "progressive", "MS", "mixed", "NMO", "NMOSD")
GROUPS = ("msc", "control")
DESIGNS = ("single-arm", "randomised", "randomised-crossover", "non-randomised-controlled")
CELL_SOURCES = ("bone_marrow", "umbilical_cord", "adipose", "msc_np", "placenta", "unspecified", "none")
CELL_ORIGINS = ("autologous", "allogeneic")
GRADES = ("primary", "secondary")
ATTRIBUTIONS = ("any", "related")
#: Units of ``exposure`` (adverse_events.csv, mri.csv): person-time, or administrations received
#: (another scale). ``exposure`` and ``exposure_unit`` go together.
EXPOSURE_UNITS = ("person_years", "person_months", "person_days", "administrations")
#: Person-time units in person-years (the one home of the conversion; a Julian year of 365.25 days).
PERSON_YEARS_PER_UNIT = {"person_years": 1.0, "person_months": 1 / 12, "person_days": 1 / 365.25}
#: The period an adverse-event statement covers (whole = the whole follow-up).
AE_TIMINGS = ("acute", "delayed", "whole")
#: How an adverse-event statement is worded: a count, "none occurred" of a named class, or vague words.
AE_WORDINGS = ("count", "none", "vague")
#: EDSS moves in steps of 0.5 (0 to 10).
EDSS_STEP = 0.5
#: Weeks to months: mean Gregorian month of 30.4375 days.
DAYS_PER_MONTH = 30.4375

TABLES = ("arms", "edss", "patients", "adverse_events", "mri", "shared_patients", "effect_sizes")
#: Tables that describe arms rather than report outcomes: no arm is derived from them.
DESIGN_TABLES = ("shared_patients",)
COUNT_COLUMNS = ("improved", "stable", "worsened", "stable_or_improved", "stable_or_worsened")


@dataclass(frozen=True)
class Column:
    kind: str  # "str" | "float" | "int" | "bool" | "cat"
    required: bool = False
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive bounds
    high: float | None = None
    positive: bool = False  # strictly > 0
    below: float | None = None  # strictly less than
    what: str = ""

    def expected(self) -> str:
        if self.kind == "cat":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = "a whole number" if self.kind == "int" else "a number"
        if self.positive:
            noun += " > 0"
        if self.low is not None and self.high is not None:
            noun += f" between {self.low:g} and {self.high:g}"
        elif self.low is not None:
            noun += f" >= {self.low:g}"
        if self.below is not None:
            noun += f" and < {self.below:g}" if self.positive or self.low is not None else f" < {self.below:g}"
        return noun + (f" ({self.what})" if self.what else "")


_S, _F, _I = Column("str"), Column("float"), Column("int")
PROVENANCE = {
    "location": _S, "grade": Column("cat", choices=GRADES), "secondary_fields": _S,
    "derived": _S, "confidence": _S, "extraction_row": _S, "note": _S,
}
_KEYS = {"study": Column("str", required=True), "arm": Column("str", required=True)}
_TIME = {
    "timepoint_months": Column("float", positive=True, what="months since treatment"),
    "timepoint_weeks": Column("float", positive=True, what="weeks since treatment"),
    "timepoint_text": _S,
}
_EDSS_VALUE = Column("float", low=0, high=10, what="EDSS")
_CHANGE = Column("float", low=-10, high=10, what="EDSS change")
_SD = Column("float", positive=True)
_COUNT = Column("int", low=0)
#: Event counts and their person-time (or administrations): adverse_events.csv and mri.csv.
_EVENTS = {
    "events": Column("int", low=0, what="events, a patient's repeats counted"),
    "exposure": Column("float", positive=True, what="in exposure_unit"), "exposure_unit": Column("cat", choices=EXPOSURE_UNITS),
}
#: A confidence level when a CI is given without one (effect_sizes.csv): 95%.
DEFAULT_CI_LEVEL = 0.95

SCHEMAS: dict[str, dict[str, Column]] = {
    "arms": {
        **_KEYS, "label": _S, "citation": _S, "source": _S,  # n blank: from the outcome tables (docstring)
        "design": Column("cat", choices=DESIGNS), "disease": Column("cat", choices=DISEASES),
        "group": Column("cat", choices=GROUPS), "cell_source": Column("cat", choices=CELL_SOURCES),
        "cell_origin": Column("cat", choices=CELL_ORIGINS), "route": Column("cat", choices=ROUTES),
        "dose_per_kg_million": Column("float", positive=True), "dose_cells_million": Column("float", positive=True),
        "dose_text": _S, "courses": Column("int", low=1), "courses_min": Column("int", low=1),
        "courses_max": Column("int", low=1), "administrations": Column("int", low=1),
        "n": Column("int", low=1), "followup_months": Column("float", positive=True),
        "followup_weeks": Column("float", positive=True), "overlap_group": _S,
        "overlap_rank": Column("int", low=1),
        "periods_after_msc": Column("int", low=0, what="periods of the arm after an MSC period; at most n"),
        **PROVENANCE,
    },
    "edss": {
        **_KEYS, **_TIME, "n": Column("int", required=True, low=1),
        "change_mean": _CHANGE, "change_sd": _SD, "change_se": _SD,
        "change_ci_lower": _CHANGE, "change_ci_upper": _CHANGE,
        "change_ci_level": Column("float", positive=True, high=0.999, what="e.g. 0.95"),
        "baseline_mean": _EDSS_VALUE, "baseline_sd": _SD, "followup_mean": _EDSS_VALUE, "followup_sd": _SD,
        **{c: _COUNT for c in COUNT_COLUMNS},
        "threshold": Column("float", positive=True, high=10, what="EDSS points"), "threshold_basis": _S,
        **PROVENANCE,
    },
    "patients": {  # a visit at time 0 is the baseline EDSS (a change at 0 is a problem: _check_patients)
        **_KEYS, "patient": Column("str", required=True),
        "timepoint_months": Column("float", low=0, what="months since treatment; 0 = baseline"),
        "timepoint_weeks": Column("float", low=0, what="weeks since treatment; 0 = baseline"),
        "timepoint_text": _S,
        "edss": _EDSS_VALUE, "change": _CHANGE, **PROVENANCE,
    },
    "adverse_events": {
        **_KEYS, "event": Column("str", required=True), "event_text": _S, "serious": Column("bool"),
        "attribution": Column("cat", choices=ATTRIBUTIONS),
        "patients_with_event": Column("int", low=0),
        "n_at_risk": Column("int", required=True, low=1), **_EVENTS,
        "timing": Column("cat", choices=AE_TIMINGS), "wording": Column("cat", choices=AE_WORDINGS),
        **_TIME, **PROVENANCE,
    },
    "mri": {
        **_KEYS, "event": Column("str", required=True), "event_text": _S, **_TIME,
        "patients_with_event": Column("int", low=0),
        "n_at_risk": Column("int", required=True, low=1), **_EVENTS, **PROVENANCE,
    },
    "shared_patients": {
        **_KEYS, "other_arm": Column("str", required=True),
        "patients": Column("int", required=True, low=1, what="patients with a period in both arms"),
        **PROVENANCE,
    },
    "effect_sizes": {  # one estimate per arm (and timepoint) on any scale; no EDSS ranges
        **_KEYS, **_TIME, "y": Column("float", required=True, what="the estimate"),
        "se": Column("float", positive=True, what="standard error of y"),
        "sd": Column("float", positive=True, what="within-arm SD, with n"), "n": Column("int", low=1),
        "ci_lower": _F, "ci_upper": _F,
        "ci_level": Column("float", positive=True, below=1, what=f"e.g. 0.95; blank with a CI: {DEFAULT_CI_LEVEL:g}"),
        **PROVENANCE,
    },
}
#: Columns that identify a row; a repeat is a duplicate.
ROW_KEYS = {
    "arms": ("study", "arm"),
    "edss": ("study", "arm", "timepoint_months"),
    "patients": ("study", "arm", "patient", "timepoint_months"),
    "adverse_events": ("study", "arm", "event", "attribution", "timing", "timepoint_months"),
    "mri": ("study", "arm", "event", "timepoint_months"),
    "shared_patients": ("study", "arm", "other_arm"),
    "effect_sizes": ("study", "arm", "timepoint_months"),
}
MISSING = {"", "NA", "N/A", "NR", "nan", "NaN"}
#: Groups of columns of which a table needs at least one (beyond its required columns).
ONE_OF = {
    "edss": (("timepoint_months", "timepoint_weeks"),),
    "patients": (("timepoint_months", "timepoint_weeks"), ("edss", "change")),
    "adverse_events": (("patients_with_event", "events"),),
    "mri": (("timepoint_months", "timepoint_weeks"), ("patients_with_event", "events")),
}
#: Outcome values a row needs one of (ONE_OF) that `Evidence.without_secondary` may leave blank:
#: a row without any is "not reported", and the models leave it out with a note.
OUTCOME_VALUES = ("patients_with_event", "events")
#: Columns a table may leave out (every row then gets the default) but, when present, needs on
#: every row: an arms.csv without `group` is a table of MSC arms, as a folder without arms.csv
#: is; a blank `group` (a placebo arm left blank) is a problem, never taken for MSC.
REQUIRED_WHEN_PRESENT = {"arms": {"group": "msc"}}
#: The column of an outcome table that counts patients of one arm: at most the arm's n.
PATIENT_COUNTS = {"edss": "n", "adverse_events": "n_at_risk", "mri": "n_at_risk", "effect_sizes": "n"}


def _needed_columns(name: str) -> list[tuple[str, ...]]:
    """Groups of columns of which a row of table `name` needs a value in at least one to be used:
    each required column alone, each ONE_OF group, and REQUIRED_WHEN_PRESENT columns. A blank
    count of patients with an event (OUTCOME_VALUES) leaves the row: its model reads it as "not
    reported" and says that exclude_secondary blanked it."""
    needed = [(c,) for c, col in SCHEMAS[name].items() if col.required and c not in OUTCOME_VALUES]
    groups = [g for g in ONE_OF.get(name, ()) if not set(g) <= set(OUTCOME_VALUES)]
    return needed + [(c,) for c in REQUIRED_WHEN_PRESENT.get(name, ())] + groups


def _key_columns(name: str) -> tuple[str, ...]:
    """The columns that identify a row of table `name` (ROW_KEYS; a timepoint in months or weeks)."""
    keys = ROW_KEYS[name]
    return keys + ("timepoint_weeks",) if "timepoint_months" in keys else keys


def _split(value) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [v.strip() for v in str(value).split(";") if v.strip()]


def _dtype(col: Column) -> str:
    return {"float": "float64", "int": "Int64", "bool": "boolean"}.get(col.kind, "object")
