"""One model's section of the report: its tables and figures written, its part of the context returned."""

from __future__ import annotations

import base64
from pathlib import Path

from msc_bayes.diagnostics import predictive_checks, study_estimates, summary_table
from msc_bayes.reporting.methods import attempt_text, methods_paragraph
from msc_bayes.reporting.results_text import results_paragraph
from msc_bayes.reporting.views import (
    diagnostics_view,
    estimates_view,
    key_estimates,
    psense_view,
    sensitivity_view,
)
from msc_bayes.results import attrs, interval_text
from msc_bayes.sensitivity import sensitivity_for_report
from msc_bayes.sensitivity.report_policy import (
    report_arguments,
    report_evidence,
    varied_text,
)


def _figure(folder: Path, file: str, png: bytes, **fields) -> dict:
    """Write a figure's PNG into `folder`; its context entry (fields, file, base64 PNG)."""
    (folder / file).write_bytes(png)
    return {**fields, "file": file, "png_b64": base64.b64encode(png).decode("ascii")}


def model_section(folder: Path, run, evidence) -> dict:
    """Write a model's (ModelRun) tables and figures into `folder`; return its section of the report."""
    from msc_bayes.viz import figures_for, to_png

    fit, key = run.fit, run.key
    summary = fit.summary()
    estimates = study_estimates(fit, evidence=evidence)
    checks = predictive_checks(fit, evidence=evidence)
    files = {f"{key}_summary.csv": summary_table(fit, run.convergence).reset_index(),
             f"{key}_diagnostics.csv": run.convergence.table,
             f"{key}_study_estimates.csv": estimates, f"{key}_ppc.csv": checks}
    for name, table in files.items():
        table.to_csv(folder / name, index=False)
    figures = []
    for spec in figures_for(fit, checks=checks):
        fig = spec.draw(fit, {"estimates": estimates, "checks": checks})
        figures.append(_figure(folder, f"figures/{key}_{spec.key}.png", to_png(fig), key=spec.key, title=spec.title,
                               caption=spec.caption))
    conv = run.convergence
    return {
        "key": key, "name": fit.spec.name, "outcome": fit.spec.outcome, "spec_path": run.spec_path,
        "converged": conv.passed, "reasons": list(conv.reasons), "warnings": list(conv.warnings),
        "attempts": [attempt_text(a) for a in run.attempts],
        "results": results_paragraph(fit), "methods": methods_paragraph(fit, run.attempts),
        "key_estimates": key_estimates(summary, fit), "study_estimates": estimates_view(estimates),
        "diagnostics": diagnostics_view(conv), "figures": figures, "notes": fit.notes,
        "files": [f"{key}.nc", *files],
    }


def sensitivity_section(folder: Path, run, evidence) -> dict:
    """Run the report's sensitivity analyses of one model; write its CSVs and figure; return its section.

    The base fit is the report's own (put into the sweep cache, so it is not sampled again);
    refits use its final settings. Errors propagate (the report fails, like a figure).
    """
    from msc_bayes.inference import remember_fit
    from msc_bayes.viz import plot_sensitivity_grid, to_png

    fit, key = run.fit, run.key
    a = attrs(fit)
    settings = {"draws": int(a["draws"]), "tune": int(a["tune"]), "chains": int(a["chains"]), "seed": int(a["seed"]),
                "target_accept": float(a["target_accept"])}
    remember_fit(fit, evidence, **settings)
    arguments = report_arguments(fit.spec, evidence)
    result = sensitivity_for_report(fit.spec, evidence, **arguments, **settings)
    table, psense = result.table, result.psense
    files = {f"{key}_sensitivity.csv": table, f"{key}_psense.csv": psense}
    for name, df in files.items():
        df.to_csv(folder / name, index=False)
    figure = _figure(folder, f"figures/{key}_sensitivity.png", to_png(plot_sensitivity_grid(table, outcome=fit.spec.outcome)),
                     title="Sensitivity of the headline estimates")
    figure["caption"] = (f"Median and {interval_text()} of each headline quantity per scenario, grouped by family "
                         "(rows sorted by how far they move the first quantity); the shaded band and dashed line are "
                         "the base fit. Open circles: importance reweighting of the base fit. †: the refit had divergent "
                         "transitions.")
    threshold = psense["threshold"].iloc[0] if "threshold" in psense and len(psense) else 0.05
    scaled = psense["power_scaled"].iloc[0] if "power_scaled" in psense and len(psense) else ""
    return {
        "varied": varied_text(table, report_evidence(fit.spec, evidence)),
        "figure": figure,
        "table": sensitivity_view(table), "psense": psense_view(psense),
        "psense_text": (f"Power-scaling sensitivity (ArviZ psense) of the base fit: the priors of "
                        f"{scaled or 'the hyperparameters'} and the likelihood are power-scaled; a sensitivity of at "
                        f"least {threshold:g} is flagged in the diagnosis."),
        "files": list(files) + [figure["file"]],
        "frame": table,
    }
