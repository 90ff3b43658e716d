"""The summary of findings as data: one `Finding` per headline quantity, and the whole `SummaryOfFindings`.

Everything here is plain frozen data (no HTML, no formatting): :mod:`msc_bayes.reporting` lays it
out, the Python API returns it. Numbers are on the quantity's own scale (``scale``: EDSS points,
a risk as a proportion, a log odds ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Grade = Literal["high", "moderate", "low", "very low"]
#: GRADE's five domains (the certainty rules name each downgrade by its domain)
Domain = Literal["risk of bias", "inconsistency", "imprecision", "indirectness", "publication bias"]
Scale = Literal["num", "risk", "log_odds_ratio", "rate"]


@dataclass(frozen=True)
class Interval:
    """A posterior median with its 95% ETI ends."""

    median: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Downgrade:
    """One step down (``levels`` 1 or 2; 0 = considered, not downgraded) with its reason in words."""

    domain: Domain
    levels: int
    reason: str


@dataclass(frozen=True)
class Certainty:
    """The grade, where it started (by design) and every domain considered."""

    grade: Grade
    start: Grade
    start_reason: str
    downgrades: tuple[Downgrade, ...]


@dataclass(frozen=True)
class Finding:
    """One row of the summary of findings: a headline quantity of one fitted outcome."""

    outcome: str                 # spec.outcome, e.g. "edss_change"
    outcome_label: str           # spec.name, e.g. "EDSS change"
    quantity: str                # the fit's variable (cell), e.g. "msc_effect", "route_contrast[IT vs IV]"
    label: str                   # human label, e.g. "MSC vs control: difference in mean EDSS change"
    unit: str                    # e.g. "EDSS points (negative = improvement)"
    scale: Scale
    estimate: Interval
    direction: str               # the estimate's direction in words, e.g. "favours MSC (P = 0.98)"
    p_benefit: float | None      # posterior probability of the beneficial direction (None: no direction)
    benefit_text: str            # what p_benefit is the probability of, e.g. "MSC better than control"
    p_important: float | None    # posterior probability of a clinically important benefit (or harm)
    important_text: str          # e.g. "benefit of at least 0.5 EDSS points (the MCID)"
    bayes_factor: float | None   # BF10, effect vs no effect (Savage–Dickey); None where no point null
    bayes_factor_text: str       # e.g. "BF10 = 3.2: moderate evidence for an effect" or ""
    tau: Interval | None         # between-study SD (the outcome's model scale)
    i2: Interval | None          # Bayesian I² (proportion, 0-1)
    prediction: Interval | None  # a new study's value of the quantity (None where none is defined)
    studies: tuple[str, ...]     # studies whose data inform the quantity
    arms: int
    patients: int
    rests_on: str                # in words: studies, arms, patients; e.g. "1 randomised crossover study ..."
    dominance: str               # e.g. "without petrou2020 this is the prior" ("" when no study dominates)
    contraction: float | None    # 1 - posterior variance / prior variance
    mostly_prior: bool           # contraction (or power-scaling) below the stated threshold
    certainty: Certainty | None = None


@dataclass(frozen=True)
class LeftOut:
    """A study arm in the evidence that contributes nothing to an outcome, and why."""

    study: str
    arm: str
    outcome: str                 # spec.outcome
    reason: str                  # e.g. "no EDSS numbers in the sources read"
    n: int | None = None         # the arm's n in arms.csv (patients, or periods for a pooled crossover arm)
    note: str = ""                # the arm's own note in arms.csv (it often says why: 'EDSS Plus, a composite')


@dataclass(frozen=True)
class SummaryOfFindings:
    """The report's first section: its rows (EDSS first), the plain-language paragraph, the arms left out."""

    findings: tuple[Finding, ...]
    text: str                    # "What the evidence can and cannot say" (generated, plain language)
    left_out: tuple[LeftOut, ...] = ()
    rules: str = ""              # the certainty rules and thresholds in words (the report's Methods)
    notes: tuple[str, ...] = field(default_factory=tuple)  # footnotes (e.g. publication bias not assessable)
