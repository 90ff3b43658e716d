"""The report: fit every spec, gate on convergence, write one self-contained run folder.

`run_report` fits each spec (refitting once, with doubled tuning and a higher target
acceptance, a fit that fails the gate of :mod:`msc_bayes.diagnostics`), and writes one run
folder through :func:`msc_bayes.output.run_folder` (staged beside the target, published whole):

- ``<key>.nc`` per model, written as soon as the model is sampled (before any figure);
- ``<key>_summary.csv``, ``<key>_diagnostics.csv``, ``<key>_study_estimates.csv``,
  ``<key>_ppc.csv`` per model;
- ``summary_of_findings.csv``: the report's first section as a table (:func:`msc_bayes.findings.summary_of_findings`,
  one row per headline quantity: estimate, probabilities, Bayes factor, heterogeneity, support, certainty);
- ``figures/<key>_<figure>.png``, ``index.html`` (self-contained: figures embedded as
  base64 PNG, inline CSS, no scripts; rendered with autoescaping), ``report.md`` (same
  content, figures referenced in ``figures/``) and ``run.json`` (versions, seeds, specs,
  data hash, timings, convergence);
- for EDSS models, and adverse events whose statements include vague ones (unless ``sensitivity=False``,
  CLI ``--no-sensitivity``): a sensitivity section (:func:`msc_bayes.sensitivity.sensitivity_for_report`,
  restricted to scenarios that reuse the compiled base model and a few named ones, see
  :func:`msc_bayes.sensitivity.report_policy.has_section`) with ``<key>_sensitivity.csv``,
  ``<key>_psense.csv`` and ``figures/<key>_sensitivity.png``, run after every posterior is saved.

If anything fails after a model was sampled, the staging folder with the posteriors written so
far is kept as ``<out>.failed/`` before the error propagates (the report folder itself is never
partial, and an earlier run at ``out`` is untouched).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msc_bayes import inference, outcomes, results
from msc_bayes.diagnostics import Convergence, thresholds
from msc_bayes.errors import ConvergenceError, Problem, SpecError
from msc_bayes.findings import summary_of_findings
from msc_bayes.findings.table import findings_table
from msc_bayes.inference import Attempt, fit_gated
from msc_bayes.progress import LogProgress, Progress
from msc_bayes.reporting.context import report_context
from msc_bayes.reporting.render import render_html, render_markdown
from msc_bayes.reporting.sections import model_section, sensitivity_section
from msc_bayes.results import interval_text
from msc_bayes.sensitivity.report_policy import (
    has_section,
    sensitivity_settings,
)


@dataclass(frozen=True)
class ModelRun:
    """A model of the report: its final fit, the gate's verdict and every attempt."""

    key: str
    spec_path: str
    fit: object
    convergence: Convergence
    attempts: tuple[Attempt, ...]

    @property
    def converged(self) -> bool:
        return self.convergence.passed


@dataclass(frozen=True)
class ReportResult:
    out: Path
    models: tuple[ModelRun, ...]

    @property
    def unconverged(self) -> list[ModelRun]:
        return [m for m in self.models if not m.converged]


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def spec_paths(models: list[str]) -> list[Path]:
    """Spec files from folders (every *.toml, sorted) and files, in the order given."""
    out: list[Path] = []
    problems = []
    for m in models:
        p = Path(m)
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                problems.append(Problem(str(p), None, None, str(p), "a folder holding model specs (*.toml)"))
            out += found
        elif p.is_file():
            out.append(p)
        else:
            problems.append(Problem(str(p), None, None, str(p), "a model spec file or a folder of specs"))
    if problems:
        raise SpecError(problems)
    return out


def model_keys(paths: list[Path]) -> list[str]:
    """File-name stems, made unique (edss_change, edss_change-2, ...)."""
    keys: list[str] = []
    for p in paths:
        key, i = p.stem, 1
        while key in keys:
            i += 1
            key = f"{p.stem}-{i}"
        keys.append(key)
    return keys


def prepare(spec, evidence):
    """The outcome module's selection of units for `spec` (raises EvidenceError/SpecError; never samples)."""
    return outcomes.get(spec.outcome).prepare(spec, evidence)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def run_report(*, data: str | Path = "data", models: list[str] | None = None, out: str | Path | None = None,
               overwrite: bool = False, draws: int | None = None, tune: int | None = None,
               chains: int | None = None, seed: int | None = None, target_accept: float | None = None,
               allow_unconverged: bool = False,
               sensitivity: bool = True, progress: Progress | None = None,
               log: Callable[[str], None] = print) -> ReportResult:
    """Fit every spec and write the report folder (see the module docstring and :mod:`msc_bayes.output`).

    `progress` shows each fit's draws and the sensitivity refits (:mod:`msc_bayes.progress`;
    None: a :class:`~msc_bayes.progress.LogProgress` writing to `log`)."""
    from msc_bayes.evidence import load_evidence
    from msc_bayes.output import check_target, default_target, run_folder
    from msc_bayes.spec import load_spec

    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    out = Path(out) if out is not None else default_target("report", now=now)
    check_target(out, overwrite=overwrite, protect=[data])  # before any work; checked again when writing
    evidence = load_evidence(data)
    paths = spec_paths(list(models or ["models"]))
    specs = [load_spec(p) for p in paths]
    for spec in specs:  # every spec checked against the evidence before any sampling
        prepare(spec, evidence)
    keys = model_keys(paths)
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    progress = progress if progress is not None else LogProgress(log)
    runs: list[ModelRun] = []
    timings: dict[str, dict] = {}
    with run_folder(out, kind="report", overwrite=overwrite, protect=[data], log=log) as tmp:
        handed = inference.precompile([(spec, evidence) for spec in specs])
        if handed:
            log(f"compiling {', '.join(handed)} in a helper process meanwhile (first run on this machine) ...")
        for i, (key, path, spec) in enumerate(zip(keys, paths, specs), 1):
            log(f"[{i}/{len(specs)}] fitting {key} ({spec.name}) ...")
            start = time.perf_counter()
            with progress.about(key):
                result, verdict, attempts = fit_gated(spec, evidence, log=log, key=key, **settings)
            result.to_netcdf(tmp / f"{key}.nc")  # saved before any plotting
            runs.append(ModelRun(key, str(path), result, verdict, attempts))
            seconds = time.perf_counter() - start
            timings[key] = {"fit_seconds": round(seconds, 3),
                            "sampling_seconds": round(sum(a.seconds for a in attempts), 3)}
            status = "converged" if verdict.passed else "NOT CONVERGED: " + "; ".join(verdict.reasons)
            log(f"[{i}/{len(specs)}] {key}: done in {seconds:.1f} s ({status})")
        log("writing tables, figures and report ...")
        write_outputs(tmp, runs, evidence, created=now, run_name=out.name, settings=settings,
                      allow_unconverged=allow_unconverged, timings=timings, started=started,
                      sensitivity=sensitivity, log=log, progress=progress)
    log(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return ReportResult(out, tuple(runs))


def report(data: str | Path = "data", models: str | Path | list[str | Path] = "models", out: str | Path | None = None,
           *, overwrite: bool = False, sensitivity: bool = True, allow_unconverged: bool = False,
           draws: int | None = None, tune: int | None = None, chains: int | None = None, seed: int | None = None,
           target_accept: float | None = None, progress: Progress | None = None,
           log: Callable[[str], None] = print) -> ReportResult:
    """The report run as one call (``mb.report(...)``), as ``python -m msc_bayes report`` does it.

    Sampler settings (`draws`, `tune`, `chains`, `seed`, `target_accept`) default to each spec's.
    `models`: a folder of specs (every ``*.toml``), a spec file, or a list of both. `out`: a new or
    empty folder, or (``overwrite=True``) an earlier msc_bayes run folder left unchanged; None: a new
    ``reports/run-<UTC time>-<token>`` (the output-folder rules of :mod:`msc_bayes.output`). Returns the
    :class:`ReportResult` (``.out`` the run folder, ``.models`` each fit with its gate verdict). A model
    that still fails the convergence gate after its refit raises
    :class:`~msc_bayes.errors.ConvergenceError` naming the report (which is written, saying so at the
    top) unless ``allow_unconverged=True``.
    """
    listed = [models] if isinstance(models, (str, Path)) else list(models)
    result = run_report(data=data, models=[str(m) for m in listed], out=out, overwrite=overwrite, draws=draws,
                        tune=tune, chains=chains, seed=seed, target_accept=target_accept,
                        allow_unconverged=allow_unconverged,
                        sensitivity=sensitivity, progress=progress, log=log)
    failed = result.unconverged
    if failed and not allow_unconverged:
        raise ConvergenceError(f"{', '.join(m.key for m in failed)} did not pass the convergence gate after a refit; "
                               f"see {result.out / 'index.html'} (allow_unconverged=True to accept)")
    return result


def write_outputs(folder: Path, runs: list[ModelRun], evidence, *, created: dt.datetime, run_name: str,
                  settings: dict, allow_unconverged: bool, timings: dict, started: float,
                  sensitivity: bool = True, log: Callable[[str], None] = print,
                  progress: Progress | None = None) -> None:
    """Every file of the report except the posteriors (already written)."""
    (folder / "figures").mkdir(exist_ok=True)
    sections = []
    for run in runs:
        start = time.perf_counter()
        section = model_section(folder, run, evidence)
        timings[run.key]["report_seconds"] = round(time.perf_counter() - start, 3)
        section["sensitivity"] = None
        if sensitivity and has_section(run.fit.spec, evidence):
            log(f"    {run.key}: sensitivity analyses ...")
            start = time.perf_counter()
            with (progress or LogProgress(log)).about(run.key, steps="sensitivity refit"):
                section["sensitivity"] = sensitivity_section(folder, run, evidence)
            section["files"] += section["sensitivity"]["files"]
            timings[run.key]["sensitivity_seconds"] = round(time.perf_counter() - start, 3)
            log(f"    {run.key}: sensitivity analyses done in {timings[run.key]['sensitivity_seconds']:.1f} s")
        sections.append(section)
    summary = summary_of_findings([run.fit for run in runs], evidence, sensitivity={
        s["outcome"]: s["sensitivity"]["frame"] for s in sections if s["sensitivity"]})
    findings_table(summary).to_csv(folder / "summary_of_findings.csv", index=False)
    context = report_context(sections, runs, evidence, created=created, run_name=run_name,
                             allow_unconverged=allow_unconverged, summary=summary)
    (folder / "index.html").write_text(render_html(context), encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(context), encoding="utf-8")
    run_json = {
        "run": run_name, "created_utc": created.isoformat(), "interval": interval_text(),
        "data": {"path": str(evidence.path), "hash": evidence.data_hash},
        "versions": inference.versions(), "overrides": settings, "allow_unconverged": allow_unconverged,
        "sensitivity": sensitivity_settings() if sensitivity else None,
        "gate": thresholds(),
        "models": [model_json(run, timings[run.key]) for run in runs],
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    (folder / "run.json").write_text(json.dumps(run_json, indent=2, default=_json_default), encoding="utf-8")


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def model_json(run: ModelRun, timing: dict) -> dict:
    a = results.attrs(run.fit)
    return {
        "key": run.key, "name": run.fit.spec.name, "outcome": run.fit.spec.outcome, "spec_path": run.spec_path,
        "spec": run.fit.spec.to_dict(), "seed": int(a["seed"]), "draws": int(a["draws"]), "tune": int(a["tune"]),
        "chains": int(a["chains"]), "target_accept": float(a["target_accept"]), "data_hash": a["data_hash"],
        "attempts": [t.to_dict() for t in run.attempts], "convergence": run.convergence.to_dict(),
        "notes": run.fit.notes, "timings": timing,
    }
