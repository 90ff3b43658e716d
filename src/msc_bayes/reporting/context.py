"""The ONE context both pages render: run metadata, the summary of findings, a section per model (EDSS first),
the evidence table, versions."""

from __future__ import annotations

import datetime as dt

from msc_bayes import inference, outcomes
from msc_bayes.evidence.labels import study_labels
from msc_bayes.reporting.methods import gate_text
from msc_bayes.reporting.views import evidence_table, summary_view
from msc_bayes.results import interval_text

TITLE = "MSC therapy in multiple sclerosis: Bayesian evidence synthesis"


def report_context(sections: list[dict], runs, evidence, *, created: dt.datetime, run_name: str,
                   allow_unconverged: bool, summary=None) -> dict:
    """The context of index.html and report.md from the models' sections (:mod:`.sections`), their runs and the
    summary of findings (a :class:`msc_bayes.findings.base.SummaryOfFindings`, or None: no summary section).

    Sections are ordered by outcome (:func:`msc_bayes.outcomes.order`: EDSS, adverse events, MRI, others by name),
    keeping the specs' order within an outcome.
    """
    from msc_bayes.evidence.describe import describe

    sections = sorted(sections, key=lambda s: outcomes.order(s["outcome"]))
    notes = {(a.study, a.arm): ("" if not isinstance(a.note, str) else a.note)
             for a in evidence.arms.itertuples(index=False)} if "note" in evidence.arms.columns else {}
    return {
        "title": TITLE, "run_name": run_name, "created": f"{created:%Y-%m-%d %H:%M:%S} UTC",
        "data_path": str(evidence.path), "data_hash": evidence.data_hash, "interval": interval_text(),
        "gate": gate_text(), "allow_unconverged": allow_unconverged, "models": sections,
        "unconverged": [s for s in sections if not s["converged"]],
        "summary": summary_view(summary, study_labels(evidence.arms)),
        "versions": inference.versions(),
        "evidence": evidence_table(describe(evidence), runs, notes=notes,
                                   left_out=None if summary is None else summary.left_out),
    }
