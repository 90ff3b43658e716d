"""The ONE context both pages render: run metadata, a section per model, the evidence table, versions."""

from __future__ import annotations

import datetime as dt

from msc_bayes import inference
from msc_bayes.report.methods import gate_text
from msc_bayes.report.views import evidence_table
from msc_bayes.results import interval_text

TITLE = "MSC therapy in multiple sclerosis: Bayesian evidence synthesis"


def report_context(sections: list[dict], runs, evidence, *, created: dt.datetime, run_name: str,
                   allow_unconverged: bool) -> dict:
    """The context of index.html and report.md from the models' sections (:mod:`.sections`) and their runs."""
    from msc_bayes.evidence.describe import describe

    return {
        "title": TITLE, "run_name": run_name, "created": f"{created:%Y-%m-%d %H:%M:%S} UTC",
        "data_path": str(evidence.path), "data_hash": evidence.data_hash, "interval": interval_text(),
        "gate": gate_text(), "allow_unconverged": allow_unconverged, "models": sections,
        "unconverged": [s for s in sections if not s["converged"]],
        "versions": inference.versions(), "evidence": evidence_table(describe(evidence), runs),
    }
