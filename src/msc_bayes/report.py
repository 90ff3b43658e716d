"""The report: fit every spec, gate on convergence, write one self-contained run folder.

`run_report` fits each spec (refitting once, with doubled tuning and a higher target
acceptance, a fit that fails the gate of :mod:`msc_bayes.diagnostics`), and writes one run
folder through :func:`msc_bayes.output.run_folder` (staged beside the target, published whole):

- ``<key>.nc`` per model, written as soon as the model is sampled (before any figure);
- ``<key>_summary.csv``, ``<key>_diagnostics.csv``, ``<key>_study_estimates.csv``,
  ``<key>_ppc.csv`` per model;
- ``figures/<key>_<figure>.png``, ``index.html`` (self-contained: figures embedded as
  base64 PNG, inline CSS, no scripts; rendered with autoescaping), ``report.md`` (same
  content, figures referenced in ``figures/``) and ``run.json`` (versions, seeds, specs,
  data hash, timings, convergence);
- for EDSS models (unless ``sensitivity=False``, CLI ``--no-sensitivity``): a sensitivity
  section (:func:`msc_bayes.sensitivity.sensitivity_for_report`, restricted to scenarios that
  reuse the compiled base model, see :mod:`msc_bayes.sensitivity.report_policy`) with ``<key>_sensitivity.csv``,
  ``<key>_psense.csv`` and ``figures/<key>_sensitivity.png``, run after every posterior is saved.

If anything fails after a model was sampled, the staging folder with the posteriors written so
far is kept as ``<out>.failed/`` before the error propagates (the report folder itself is never
partial, and an earlier run at ``out`` is untouched).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB, inference, outcomes
from msc_bayes.diagnostics import (
    Convergence,
    draws_flat,
    predictive_checks,
    study_estimates,
    thresholds,
)
from msc_bayes.errors import Problem, SpecError
from msc_bayes.inference import Attempt, fit_gated
from msc_bayes.results import (
    interval_columns,
    interval_text,
    is_plumbing,
    quantile_probs,
)
from msc_bayes.sensitivity import sensitivity_for_report
from msc_bayes.sensitivity.report_policy import (
    SENSITIVITY_OUTCOMES,
    report_arguments,
    sensitivity_settings,
    varied_text,
)

#: Variables with any of these dims are per arm/study: in the CSV tables, not in the key table.
UNIT_DIMS = frozenset({"arm", "arm_sd", "arm_bf", "arm_admin", "study", "study_event"})
TITLE = "MSC therapy in multiple sclerosis: Bayesian evidence synthesis"


# --------------------------------------------------------------------------------------
# The models of a report (fitted by inference.fit_gated)
# --------------------------------------------------------------------------------------


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
               chains: int | None = None, seed: int | None = None, allow_unconverged: bool = False,
               sensitivity: bool = True, progress: bool = False,
               log: Callable[[str], None] = print) -> ReportResult:
    """Fit every spec and write the report folder (see the module docstring and :mod:`msc_bayes.output`)."""
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
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    runs: list[ModelRun] = []
    timings: dict[str, dict] = {}
    with run_folder(out, kind="report", overwrite=overwrite, protect=[data], log=log) as tmp:
        handed = inference.precompile([(spec, evidence) for spec in specs])
        if handed:
            log(f"compiling {', '.join(handed)} in a helper process meanwhile (first run on this machine) ...")
        for i, (key, path, spec) in enumerate(zip(keys, paths, specs), 1):
            log(f"[{i}/{len(specs)}] fitting {key} ({spec.name}) ...")
            start = time.perf_counter()
            result, verdict, attempts = fit_gated(spec, evidence, progress=progress, log=log, key=key, **settings)
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
                      sensitivity=sensitivity, log=log)
    log(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return ReportResult(out, tuple(runs))


def write_outputs(folder: Path, runs: list[ModelRun], evidence, *, created: dt.datetime, run_name: str,
                  settings: dict, allow_unconverged: bool, timings: dict, started: float,
                  sensitivity: bool = True, log: Callable[[str], None] = print) -> None:
    """Every file of the report except the posteriors (already written)."""
    from msc_bayes.evidence.describe import describe

    (folder / "figures").mkdir(exist_ok=True)
    sections = []
    for run in runs:
        start = time.perf_counter()
        section = model_section(folder, run, evidence)
        timings[run.key]["report_seconds"] = round(time.perf_counter() - start, 3)
        section["sensitivity"] = None
        if sensitivity and run.fit.spec.outcome in SENSITIVITY_OUTCOMES:
            log(f"    {run.key}: sensitivity analyses ...")
            start = time.perf_counter()
            section["sensitivity"] = sensitivity_section(folder, run, evidence)
            section["files"] += section["sensitivity"]["files"]
            timings[run.key]["sensitivity_seconds"] = round(time.perf_counter() - start, 3)
            log(f"    {run.key}: sensitivity analyses done in {timings[run.key]['sensitivity_seconds']:.1f} s")
        sections.append(section)
    context = {
        "title": TITLE, "run_name": run_name, "created": f"{created:%Y-%m-%d %H:%M:%S} UTC",
        "data_path": str(evidence.path), "data_hash": evidence.data_hash, "interval": interval_text(),
        "gate": gate_text(), "allow_unconverged": allow_unconverged, "models": sections,
        "unconverged": [s for s in sections if not s["converged"]],
        "versions": inference.versions(), "evidence": evidence_table(describe(evidence), runs),
    }
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
    a = run.fit.tree.attrs
    return {
        "key": run.key, "name": run.fit.spec.name, "outcome": run.fit.spec.outcome, "spec_path": run.spec_path,
        "spec": run.fit.spec.to_dict(), "seed": int(a["seed"]), "draws": int(a["draws"]), "tune": int(a["tune"]),
        "chains": int(a["chains"]), "target_accept": float(a["target_accept"]), "data_hash": a["data_hash"],
        "attempts": [t.to_dict() for t in run.attempts], "convergence": run.convergence.to_dict(),
        "notes": run.fit.notes, "timings": timing,
    }


# --------------------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------------------


def summary_table(fit) -> pd.DataFrame:
    """The posterior summary (:func:`msc_bayes.results.summary`; interval columns eti95_lower, median, eti95_upper)."""
    return fit.summary()


def model_section(folder: Path, run: ModelRun, evidence) -> dict:
    """Write a model's tables and figures into `folder`; return its section of the report."""
    from msc_bayes.viz import figures_for, to_png

    fit, key = run.fit, run.key
    summary = summary_table(fit)
    estimates = study_estimates(fit, evidence=evidence)
    checks = predictive_checks(fit, evidence=evidence)
    files = {f"{key}_summary.csv": summary, f"{key}_diagnostics.csv": run.convergence.table,
             f"{key}_study_estimates.csv": estimates, f"{key}_ppc.csv": checks}
    for name, table in files.items():
        table.to_csv(folder / name, index=False)
    figures = []
    for spec in figures_for(fit, checks=checks):
        fig = spec.draw(fit, {"estimates": estimates, "checks": checks})
        png = to_png(fig)
        file = f"figures/{key}_{spec.key}.png"
        (folder / file).write_bytes(png)
        figures.append({"key": spec.key, "title": spec.title, "caption": spec.caption, "file": file,
                        "png_b64": base64.b64encode(png).decode("ascii")})
    conv = run.convergence
    return {
        "key": key, "name": fit.spec.name, "outcome": fit.spec.outcome, "spec_path": run.spec_path,
        "converged": conv.passed, "reasons": list(conv.reasons), "warnings": list(conv.warnings),
        "attempts": [attempt_text(a) for a in run.attempts],
        "results": results_paragraph(fit), "methods": methods_paragraph(fit, run.attempts),
        "key_estimates": key_estimates(summary, fit.tree), "study_estimates": estimates_view(estimates),
        "diagnostics": diagnostics_view(conv), "figures": figures, "notes": fit.notes,
        "files": [f"{key}.nc", *files],
    }


# --------------------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------------------


def sensitivity_view(table: pd.DataFrame) -> dict:
    lower, upper = interval_columns()
    rows = [[r["family"], r["scenario"], r["label"], _num(r["median"]), _num(r[lower]), _num(r[upper]),
             "" if r["scenario"] == "base" else _num(r["shift"]), r["method"], r["notes"]]
            for r in table.to_dict("records")]
    return {"columns": ["family", "scenario", "quantity", "median", f"{interval_text()} lower",
                        f"{interval_text()} upper", "shift from base (median)", "method", "notes"], "rows": rows}


def psense_view(psense: pd.DataFrame) -> dict:
    rows = [[r["quantity"], _num(r["prior_sensitivity"]), _num(r["likelihood_sensitivity"]), r["diagnosis"]]
            for r in psense.to_dict("records")]
    return {"columns": ["quantity", "prior sensitivity", "likelihood sensitivity", "diagnosis"], "rows": rows}


def sensitivity_section(folder: Path, run: ModelRun, evidence) -> dict:
    """Run the report's sensitivity analyses of one model; write its CSVs and figure; return its section.

    The base fit is the report's own (put into the sweep cache, so it is not sampled again);
    refits use its final settings. Errors propagate (the report fails, like a figure).
    """
    from msc_bayes.viz import plot_sensitivity_grid, to_png
    from msc_bayes.inference import remember_fit

    fit, key = run.fit, run.key
    a = fit.tree.attrs
    settings = {"draws": int(a["draws"]), "tune": int(a["tune"]), "chains": int(a["chains"]), "seed": int(a["seed"]),
                "target_accept": float(a["target_accept"])}
    remember_fit(fit, evidence, **settings)
    arguments = report_arguments(fit.spec, evidence)
    result = sensitivity_for_report(fit.spec, evidence, **arguments, **settings)
    table, psense = result.table, result.psense
    files = {f"{key}_sensitivity.csv": table, f"{key}_psense.csv": psense}
    for name, df in files.items():
        df.to_csv(folder / name, index=False)
    png = to_png(plot_sensitivity_grid(table))
    file = f"figures/{key}_sensitivity.png"
    (folder / file).write_bytes(png)
    threshold = psense["threshold"].iloc[0] if "threshold" in psense and len(psense) else 0.05
    scaled = psense["power_scaled"].iloc[0] if "power_scaled" in psense and len(psense) else ""
    return {
        "varied": varied_text(table, arguments["evidence_names"]),
        "figure": {"title": "Sensitivity of the headline estimates", "file": file,
                   "png_b64": base64.b64encode(png).decode("ascii"),
                   "caption": (f"Median and {interval_text()} of each headline quantity per scenario, grouped by "
                               "family (rows sorted by how far they move the first quantity); the shaded band and "
                               "dashed line are the base fit. Open circles: importance reweighting of the base fit.")},
        "table": sensitivity_view(table), "psense": psense_view(psense),
        "psense_text": (f"Power-scaling sensitivity (ArviZ psense) of the base fit: the priors of "
                        f"{scaled or 'the hyperparameters'} and the likelihood are power-scaled; a sensitivity of at "
                        f"least {threshold:g} is flagged in the diagnosis."),
        "files": list(files) + [file],
    }


def attempt_text(a: Attempt) -> str:
    verdict = "passed the gate" if a.passed else "failed the gate: " + "; ".join(a.reasons)
    return (f"{a.chains} chains × {a.draws} draws after {a.tune} tuning steps, target acceptance {a.target_accept:g}, "
            f"{a.seconds:.1f} s: {verdict}")


def gate_text() -> str:
    return (f"rank-normalised split R-hat ≤ {thresholds()['r_hat_max']:g}, bulk and tail ESS ≥ "
            f"{thresholds()['ess_bulk_min']:g}, {thresholds()['max_divergences']} divergent transitions")


def _fmt(x: float, digits: int = 2) -> str:
    if not np.isfinite(x):
        return "NA"
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{abs(x):.{digits}f}"
    return text.replace("-", "−")


def _num(x: float) -> str:
    """A table number: 3 decimals, or 3 significant digits when smaller than 0.01."""
    if np.isfinite(x) and x != 0 and abs(x) < 0.01:
        return f"{x:.3g}".replace("-", "−")
    return _fmt(x, 3)


def _table(df: pd.DataFrame, formats: dict[str, Callable]) -> dict:
    rows = [[formats.get(c, str)(v) for c, v in zip(df.columns, r)] for r in df.itertuples(index=False)]
    return {"columns": list(df.columns), "rows": rows}


def key_variables(tree) -> set[str]:
    """Posterior/derived variables with at most one extra dim, none of them per arm or study."""
    out = set()
    for group in ("posterior", "derived"):
        if group not in tree.children:
            continue
        for name, da in tree[group].data_vars.items():
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            if len(extra) <= 1 and not set(extra) & UNIT_DIMS and not is_plumbing(name):
                out.add(name)
    return out


def key_estimates(summary: pd.DataFrame, tree) -> dict:
    """Summary rows of hyperparameters and new-study quantities (not per arm)."""
    lo_name, hi_name = interval_columns()
    keep = key_variables(tree)
    rows = []
    for r in summary[[q.split("[", 1)[0] in keep for q in summary["quantity"]]].to_dict("records"):
        diag = [_fmt(r["r_hat"], 3), _fmt(r["ess_bulk"], 0), _fmt(r["ess_tail"], 0)]
        if _is_indicator(r["quantity"]):  # a per-draw indicator: its mean is the probability
            rows.append([r["quantity"], f"P = {_prob(r['mean'])}", "", "", *diag])
        else:
            rows.append([r["quantity"], _num(r["median"]), _num(r[lo_name]), _num(r[hi_name]), *diag])
    columns = ["quantity", "median", f"{interval_text()} lower", f"{interval_text()} upper", "R-hat", "bulk ESS",
               "tail ESS"]
    return {"columns": columns, "rows": rows}


def _is_indicator(quantity: str) -> bool:
    return quantity.startswith("p_")


def estimates_view(est: pd.DataFrame) -> dict:
    lo_name, hi_name = interval_columns()
    rows = []
    for r in est.to_dict("records"):
        observed = ""
        if np.isfinite(r["observed"]):
            observed = _num(r["observed"])
            if np.isfinite(r["observed_lower"]):
                observed += f" ({_num(r['observed_lower'])} to {_num(r['observed_upper'])})"
        rows.append([r["label"], r["group"], f"{r['n']:g}", r["used"], observed, r["observed_from"],
                     f"{_num(r['shrunken_median'])} ({_num(r[f'shrunken_{lo_name}'])} to "
                     f"{_num(r[f'shrunken_{hi_name}'])})"])
    name = est["shrunken_quantity"].iloc[0] if len(est) else "theta"
    return {"columns": ["arm", "group", "n", "used", "observed (interval)", "observed from",
                        f"{name}: median ({interval_text()})"], "rows": rows}


def diagnostics_view(conv: Convergence) -> list[tuple[str, str]]:
    d = conv.to_dict()
    g = lambda x, digits: "NA" if x is None else _fmt(x, digits)  # noqa: E731
    return [
        ("post-warm-up draws", str(conv.draws)),
        ("divergent transitions", str(conv.divergences)),
        ("maximum tree depth hits", str(conv.treedepth_hits)),
        ("E-BFMI per chain", ", ".join(_fmt(e, 2) for e in conv.ebfmi) or "NA"),
        ("largest R-hat", g(d["max_r_hat"], 3)),
        ("smallest bulk ESS", g(d["min_ess_bulk"], 0)),
        ("smallest tail ESS", g(d["min_ess_tail"], 0)),
        ("quantities checked", str(int((~conv.table["constant"]).sum()))
         + (f" (+{int(conv.table['constant'].sum())} constant, not checked)" if conv.table["constant"].any() else "")),
    ]


def evidence_table(desc: pd.DataFrame, runs: list[ModelRun]) -> dict:
    """describe()'s table with the models that use each arm."""
    used = []
    for r in desc.itertuples(index=False):
        used.append(", ".join(run.key for run in runs
                              if ((run.fit.prepared.units["study"] == r.study)
                                  & (run.fit.prepared.units["arm"] == r.arm)).any()))
    view = desc.assign(used_in=used)
    view = view[["study", "arm", "group", "disease", "n", "route", "courses", "followup_months", "edss",
                 "adverse_events", "mri", "overlap", "grade", "used_in"]]
    fmt = {"followup_months": lambda v: "NR" if v is None or pd.isna(v) else f"{v:g}"}
    return _table(view.rename(columns={"followup_months": "follow-up (months)", "used_in": "used in"}),
                  {"follow-up (months)": fmt["followup_months"]})


# --------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------

_MODEL_TEXT = {
    "edss_change": (
        "a Bayesian hierarchical random-effects meta-regression of the mean EDSS change per study arm. Each "
        "modelled arm has a latent mean change theta = mu + X·beta − msc_effect·[control arm] + tau·z(study), "
        "z ~ N(0, 1) (non-centred), so the arms of one study share its study effect; a patient's change is a "
        "latent normal change observed on the 0.5-point EDSS grid (rounded to the nearest half point)"),
    "adverse_events": (
        "a Bayesian binomial-logit random-effects meta-regression of the per-patient risk of at least one event "
        "over follow-up: logit risk theta = mu + event-type effect + X·beta − msc_effect·[control arm] + "
        "tau·z(study, event type), z ~ N(0, 1) (non-centred)"),
    "mri_activity": (
        "a Bayesian binomial-logit random-effects meta-analysis of the per-patient risk of MRI activity over "
        "follow-up: logit risk theta = mu + measure effect + X·beta − msc_effect·[control arm] + "
        "tau·z(study, measure), z ~ N(0, 1) (non-centred)"),
}
_FORMAT_TEXT = {
    "change": "mean change with SD, SE or CI (normal with known SE)",
    "baseline_followup": ("baseline and follow-up means and SDs (follow-up minus baseline mean normal with the SD of "
                          "change from the two visit SDs and the pre–post correlation rho; the reported SDs are data "
                          "on the visit SDs)"),
    "means_only": ("a mean change without an SD (normal with the arm's within-arm SD sigma, hierarchical on the "
                   "log scale)"),
    "counts": ("numbers improved / stable / worsened (multinomial over the rounded latent change, summed over every "
               "split consistent with what is reported)"),
    "patient": "individual patients' changes (each the rounding of a latent normal change to 0.5 points)",
    "binomial": "patients with at least one event of n at risk (binomial)",
    "poisson": ("only an event count (Poisson with mean n·softplus(theta): each patient's events a Poisson process "
                "with P(≥1 event) = logit⁻¹(theta))"),
}
#: Prior keys whose parameter has another name in the posterior.
_PRIOR_VARIABLES = {"sigma_edss": ("sd_baseline", "sd_followup")}


def _attrs_json(fit, key: str, default):
    value = fit.tree.attrs.get(key)
    return json.loads(value) if isinstance(value, str) else default


def _terms(fit) -> list[dict]:
    return _attrs_json(fit, "design", {"terms": []}).get("terms", [])


def reference_text(fit) -> str:
    """The reference covariates (the design's zero), e.g. 'route IV, courses 1'."""
    parts = []
    for t in _terms(fit):
        if t["kind"] == "categorical" and t["levels"]:
            parts.append(f"{t['name']} {t['levels'][0]}")
        elif t["kind"] == "numeric":
            raw = float(np.exp(t["centre"])) if t["transform"] == "log" else float(t["centre"])
            parts.append(f"{t['name']} {raw:.3g}")
    return ", ".join(parts)


def covariates_text(fit) -> str:
    parts = []
    for t in _terms(fit):
        if t["kind"] == "categorical":
            parts.append(f"{t['name']} (categorical; reference {t['levels'][0]}; other levels "
                         f"{', '.join(t['levels'][1:]) or 'none'})")
        else:
            how = [t["transform"] + "-transformed" if t["transform"] != "identity" else "",
                   f"centred at {t['centre']:.3g}" if t["centre"] else "",
                   f"scaled by {t['scale']:.3g}" if t["scale"] != 1 else ""]
            parts.append(f"{t['name']} (numeric" + "".join(f", {h}" for h in how if h) + ")")
    if not parts:
        return "No covariates."
    text = "Covariates: " + "; ".join(parts) + "."
    text += " Treatment covariates (route, courses, dose, ...) act on MSC arms only."
    if any(v.endswith("_latent") for v in fit.tree["posterior"].data_vars):
        text += " A covariate reported only as a range is a parameter, uniform over the range."
    return text


def likelihood_text(fit) -> str:
    units = fit.prepared.units
    if "formats" in units.columns:
        counts = pd.Series([f for fs in units["formats"] for f in fs]).value_counts()
    elif "likelihood" in units.columns:
        counts = units["likelihood"].value_counts()
    else:
        return ""
    parts = [f"{_FORMAT_TEXT.get(k, k)}: {v} arm{'s' if v != 1 else ''}" for k, v in counts.items()]
    return "Likelihood, per reporting format (each an exact likelihood of what the source reports): " + \
        "; ".join(parts) + "."


def priors_text(fit) -> str:
    posterior = fit.tree["posterior"].data_vars
    used = [f"{k} ~ {p}" for k, p in fit.spec.priors.items()
            if any(v in posterior for v in _PRIOR_VARIABLES.get(k, (k,)))]
    unused = [k for k, _ in fit.spec.priors.items() if not any(v in posterior for v in _PRIOR_VARIABLES.get(k, (k,)))]
    text = "Priors (as written in the spec): " + "; ".join(used) + "."
    if unused:
        text += f" Not used by this model (no such parameter with these data): {', '.join(unused)}."
    return text


def methods_paragraph(fit, attempts: tuple[Attempt, ...]) -> str:
    a = fit.tree.attrs
    versions = _attrs_json(fit, "versions", {})
    units = fit.prepared.units
    model = _MODEL_TEXT.get(fit.spec.outcome, f"a Bayesian hierarchical model of {fit.spec.outcome_info.description}")
    text = [f"Model ({fit.spec.outcome}): {model}.",
            f"Data: {len(units)} modelled units from {units['study'].nunique()} studies "
            f"(evidence folder {a.get('data_path', '?')}, data hash {a['data_hash']}).",
            likelihood_text(fit), covariates_text(fit), priors_text(fit)]
    final = attempts[-1]
    sampler = (f"Sampling: NUTS (nutpie {versions.get('nutpie', '?')}) through PyMC {versions.get('pymc', '?')}, "
               f"{final.chains} chains × {final.draws} draws after {final.tune} tuning steps, target acceptance "
               f"{final.target_accept:g}, seed {a['seed']}.")
    if len(attempts) > 1:
        sampler += (f" A first run ({attempts[0].tune} tuning steps, target acceptance {attempts[0].target_accept:g}) "
                    f"failed the convergence gate ({'; '.join(attempts[0].reasons)}) and the model was refit with "
                    f"these settings.")
    text.append(sampler)
    text.append(f"Diagnostics and summaries: ArviZ {versions.get('arviz', '?')} (arviz-stats "
                f"{versions.get('arviz-stats', '?')}); intervals are {INTERVAL_PROB:.0%} equal-tailed intervals "
                f"({INTERVAL_KIND}) of the posterior; point estimates are posterior medians. Gate: {gate_text()}.")
    return " ".join(t for t in text if t)


def _est(x: np.ndarray, kind: str) -> str:
    lo, hi = quantile_probs()
    med, a, b = np.quantile(x, [0.5, lo, hi])
    f = {"risk": _risk, "sig": lambda v: f"{v:.2g}".replace("-", "−")}.get(kind, lambda v: _fmt(v, 2))
    return f"{f(med)} ({interval_text()} {f(a)} to {f(b)})"


def _risk(p: float) -> str:
    pct = 100 * p
    return f"{pct:.2g}%" if pct < 1 else f"{pct:.1f}%"


def _g(x) -> str:
    return f"{float(x):g}".replace("-", "−")


def _prob(p: float) -> str:
    return f"{p:.3f}" if p < 0.01 or p > 0.99 else f"{p:.2f}"


def _cells(ds, name: str) -> list[tuple[str, np.ndarray]]:
    """(coordinate label, samples) of a variable with at most one non-sample dim."""
    x = draws_flat(ds, name)
    if x.ndim == 1:
        return [("", x)]
    dim = [d for d in ds[name].dims if d not in ("chain", "draw")][0]
    return [(str(c) if not isinstance(c, (float, np.floating)) else f"{c:g}", x[:, j])
            for j, c in enumerate(ds[name][dim].values)]


def results_paragraph(fit) -> str:
    """Key numbers, each with its interval, from the posterior and derived draws."""
    post = fit.tree["posterior"].to_dataset()
    der = fit.tree["derived"].to_dataset() if "derived" in fit.tree.children else xr.Dataset()
    ref = reference_text(fit)
    at_ref = f"at reference covariates ({ref})" if ref else "(no covariates)"
    risk = "risk_pooled" in der.data_vars or "risk_arm" in der.data_vars
    if risk and "event_effect" in post:
        at_ref += ", typical event type"
    body = _risk_statements(post, der, at_ref) if risk else _change_statements(fit, post, der, at_ref)
    return " ".join([f"Posterior medians with {interval_text()}s.", *body])


def _listing(ds, name: str, kind: str) -> str:
    return "; ".join(f"{c} {_est(x, kind)}" for c, x in _cells(ds, name))


def _risk_statements(post, der, at_ref: str) -> list[str]:
    s = []
    if "risk_pooled" in der:
        pooled = _est(draws_flat(der, "risk_pooled"), "risk")
        s.append(f"The pooled per-patient risk in MSC arms {at_ref} was {pooled}.")
    if "risk_new" in der:
        text = f"Prediction for a new study's MSC arm {at_ref}: risk {_est(draws_flat(der, 'risk_new'), 'risk')}"
        if "p_risk_above" in der:
            text += "; " + "; ".join(f"P(new-study risk > {100 * float(c):g}%) = {_prob(x.mean())}"
                                     for c, x in _cells(der, "p_risk_above"))
        s.append(text + ".")
    if "msc_effect" in post:
        x = draws_flat(post, "msc_effect")
        q = np.exp(np.quantile(x, [0.5, *quantile_probs()]))
        s.append(f"MSC vs control log odds ratio {_est(x, 'num')}, i.e. odds ratio {_fmt(q[0])} "
                 f"({interval_text()} {_fmt(q[1])} to {_fmt(q[2])}).")
    if "risk_new_control" in der:
        s.append(f"Risk in a new study's control arm: {_est(draws_flat(der, 'risk_new_control'), 'risk')}.")
    if "risk_by_route" in der:
        s.append(f"New-study risk by route: {_listing(der, 'risk_by_route', 'risk')}.")
    if "risk_new_event" in der:
        s.append(f"New-study risk by event type: {_listing(der, 'risk_new_event', 'risk')}.")
    if "route_contrast" in der:
        s.append(f"Route contrasts (log odds ratios): {_listing(der, 'route_contrast', 'num')}.")
    if "tau" in post:
        s.append(f"Between-study SD tau (logit scale): {_est(draws_flat(post, 'tau'), 'num')}.")
    if "rate_per_administration_new" in der:
        s.append("Expected events per administration in a new study: "
                 f"{_est(draws_flat(der, 'rate_per_administration_new'), 'sig')}.")
    return s


def _change_statements(fit, post, der, at_ref: str) -> list[str]:
    s = []
    if "mu" in post:
        pooled = _est(draws_flat(post, "mu"), "num")
        s.append(f"The pooled mean {_outcome_words(fit)} in MSC arms {at_ref} was {pooled}.")
    if "msc_effect" in post:
        s.append(f"MSC minus control difference: {_est(draws_flat(post, 'msc_effect'), 'num')}.")
    if "tau" in post:
        s.append(f"Between-study SD tau: {_est(draws_flat(post, 'tau'), 'num')}.")
    if "theta_new" in der:
        text = f"Prediction for a new study's MSC arm {at_ref}: mean change {_est(draws_flat(der, 'theta_new'), 'num')}"
        if "p_new_below" in der:
            text += "; " + "; ".join(f"P(new-study change < {_g(c)}) = {_prob(x.mean())}"
                                     for c, x in _cells(der, "p_new_below"))
        s.append(text + ".")
    if "route_contrast" in der:
        s.append(f"Route contrasts (difference in mean change): {_listing(der, 'route_contrast', 'num')}.")
    numeric = [(c, x) for c, x in (_cells(post, "beta") if "beta" in post else []) if "[" not in c]
    if numeric:
        s.append("Numeric covariate effects (per unit of the covariate on the model scale): "
                 + "; ".join(f"{c} {_est(x, 'num')}" for c, x in numeric) + ".")
    return s


def _outcome_words(fit) -> str:
    return {"edss_change": "EDSS change"}.get(fit.spec.outcome, fit.spec.outcome.replace("_", " "))


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def render_html(context: dict) -> str:
    """index.html from the package template, autoescaped."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("msc_bayes", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


def md_escape(text: object) -> str:
    """Text safe inside Markdown (and inline HTML): markup characters escaped, one line."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\r", " ").replace("\n", " ")


def md_image(title: str, file: str) -> str:
    """A Markdown image whose path (from a spec's file name) is percent-encoded: no markup can break out."""
    return f"![{md_escape(title)}]({urllib.parse.quote(file)})"


def _md_table(table: dict) -> list[str]:
    lines = ["| " + " | ".join(md_escape(c) for c in table["columns"]) + " |",
             "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in table["rows"]]
    return lines + [""]


def render_markdown(context: dict) -> str:
    """report.md: the same content as index.html, figures as files in figures/."""
    e = md_escape
    out = [f"# {e(context['title'])}", "",
           f"Run {e(context['run_name'])}, created {e(context['created'])}. Evidence: {e(context['data_path'])} "
           f"(data hash {e(context['data_hash'])}). Every interval is a {e(context['interval'])} "
           f"({INTERVAL_PROB:.0%} equal-tailed interval).", ""]
    if context["unconverged"]:
        out += ["> **WARNING: NOT CONVERGED.** "
                + " ".join(f"{e(m['name'])} ({e(m['key'])}): {e('; '.join(m['reasons']))}."
                           for m in context["unconverged"])
                + (" Accepted with --allow-unconverged: do not use these numbers."
                   if context["allow_unconverged"] else " The command exits with an error."), ""]
    else:
        out += [f"All {len(context['models'])} model(s) passed the convergence gate ({e(context['gate'])}).", ""]
    for m in context["models"]:
        out += [f"## {e(m['name'])} ({e(m['key'])})", ""]
        status = "converged" if m["converged"] else "**NOT CONVERGED**: " + e("; ".join(m["reasons"]))
        out += [f"Convergence: {status}.", ""]
        out += ["### Results", "", e(m["results"]), ""]
        out += _md_table(m["key_estimates"])
        for f in m["figures"]:
            out += [f"### {e(f['title'])}", "", md_image(f["title"], f["file"]), "", e(f["caption"]), ""]
        out += ["### Study estimates", ""] + _md_table(m["study_estimates"])
        if m.get("sensitivity"):
            sens = m["sensitivity"]
            f = sens["figure"]
            out += ["### Sensitivity analyses", "", e(sens["varied"]), "",
                    md_image(f["title"], f["file"]), "", e(f["caption"]), ""]
            out += _md_table(sens["table"]) + [e(sens["psense_text"]), ""] + _md_table(sens["psense"])
        out += ["### Methods", "", e(m["methods"]), ""]
        out += ["### Diagnostics", ""] + [f"- {e(k)}: {e(v)}" for k, v in m["diagnostics"]]
        out += [f"- attempt {i}: {e(a)}" for i, a in enumerate(m["attempts"], 1)]
        out += [f"- warning: {e(w)}" for w in m["warnings"]] + [""]
        out += ["### Notes (arms left out and why)", ""]
        out += [f"- {e(n)}" for n in m["notes"]] or ["- none"]
        out += ["", "Files: " + ", ".join(e(f) for f in m["files"]), ""]
    out += ["## Evidence", "", "What each study arm reports, with its provenance grade and the models that use it.", ""]
    out += _md_table(context["evidence"])
    out += ["## Software", ""] + [f"- {e(k)} {e(v)}" for k, v in context["versions"].items()] + [""]
    return "\n".join(out)
