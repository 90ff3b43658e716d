"""The summary of findings: one row per headline quantity of each fitted outcome (EDSS first), each with its
numbers (:mod:`.quantities`), what it rests on (:mod:`.support`) and its certainty (:mod:`.certainty`); the
plain-language paragraph (:mod:`.text`) and the study arms that contribute nothing (:mod:`.left_out`).

    summary_of_findings(fits, evidence, sensitivity={outcome: report table}) -> SummaryOfFindings
"""

from __future__ import annotations

import pandas as pd

from msc_bayes import outcomes
from msc_bayes.evidence.labels import study_labels
from msc_bayes.findings import certainty as grading
from msc_bayes.findings import left_out as leaving
from msc_bayes.findings import support as resting
from msc_bayes.findings.base import (
    Certainty,
    Downgrade,
    Finding,
    Interval,
    LeftOut,
    SummaryOfFindings,
)
from msc_bayes.findings.certainty import (
    PUBLICATION_BIAS_STUDIES,
    RULES_TEXT,
    rules_text,
)
from msc_bayes.findings.quantities import numbers, rows_for
from msc_bayes.findings.text import paragraph

__all__ = ["RULES_TEXT", "Certainty", "Downgrade", "Finding", "Interval", "LeftOut",
           "SummaryOfFindings", "findings_of", "rules_text", "summary_of_findings"]


def _fit_of(item):
    return getattr(item, "fit", item)


def _ordered(fits) -> list:
    return sorted(fits, key=lambda f: outcomes.order(f.spec.outcome))  # stable: the report's order within one


def findings_of(fit, evidence, *, sensitivity: pd.DataFrame | None = None, mcid: float | None = None
                ) -> tuple[Finding, ...]:
    """One Finding per summary row the fit has (:func:`msc_bayes.findings.quantities.rows_for`)."""
    out = []
    for row in rows_for(fit):
        nums = numbers(fit, row, mcid=mcid)
        arms = resting.contributing(fit, row, evidence)
        sup = resting.support(fit, row, evidence, sensitivity=sensitivity, arms=arms)
        grade = grading.certainty(nums, sup, evidence, fit, row, arms=arms, mcid=mcid)
        out.append(Finding(outcome=fit.spec.outcome, outcome_label=fit.spec.name, quantity=row.name,
                           label=row.label, unit=row.unit, scale=row.scale, **nums, **sup, certainty=grade))
    return tuple(out)


def _notes(findings: tuple[Finding, ...]) -> tuple[str, ...]:
    notes = []
    few = sorted({len(f.studies) for f in findings if len(f.studies) < PUBLICATION_BIAS_STUDIES})
    if few:
        notes.append(f"Publication bias could not be assessed where fewer than {PUBLICATION_BIAS_STUDIES} studies "
                     "inform a row (" + ", ".join(f"{f.outcome_label}: {f.label}" for f in findings
                                                   if len(f.studies) < PUBLICATION_BIAS_STUDIES) + ").")
    prior = [f for f in findings if f.mostly_prior]
    if prior:
        notes.append("Mostly prior (not a finding): " + "; ".join(f"{f.outcome_label}: {f.label}" for f in prior) + ".")
    return tuple(notes)


def summary_of_findings(fits, evidence, *, sensitivity: dict[str, pd.DataFrame] | None = None,
                        mcid: float | None = None) -> SummaryOfFindings:
    """The report's first section from its fits (Fits or ModelRuns, in report order; EDSS is put first, then
    adverse events, then MRI): the findings, the paragraph, the arms left out, the certainty rules and notes.
    `sensitivity` maps an outcome (spec.outcome) to its report sensitivity table; `mcid` overrides the spec's."""
    fits = _ordered([_fit_of(f) for f in fits])
    sensitivity = sensitivity or {}
    findings = tuple(x for fit in fits
                     for x in findings_of(fit, evidence, sensitivity=sensitivity.get(fit.spec.outcome), mcid=mcid))
    left = leaving.left_out(fits, evidence)
    text = paragraph(findings, left=left, sensitivity=sensitivity, sizes=leaving.study_sizes(evidence),
                     labels=study_labels(evidence.arms))
    return SummaryOfFindings(findings, text, left, rules_text(), _notes(findings))
