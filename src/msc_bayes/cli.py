"""Command line: `python -m msc_bayes {validate,describe,fit,report}`.

Bad input ends in one clear message on stderr and exit code 2, never a traceback.
Anything unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from msc_bayes.errors import MscBayesError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m msc_bayes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("validate", "check the evidence tables and list every problem"),
                        ("describe", "per-study table of what the evidence says")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--data", default="data", help="folder of evidence CSV files (default: data)")
    p = sub.add_parser("fit", help="fit one model spec; write OUT/posterior.nc and OUT/summary.csv")
    p.add_argument("spec", help="a model spec (TOML), e.g. models/edss_change.toml")
    p.add_argument("--data", default="data", help="folder of evidence CSV files (default: data)")
    p.add_argument("--out", default=None, help="output folder (default: reports/fit-<spec name>)")
    _sampler_args(p)
    p = sub.add_parser("report", help="fit every model spec; write a self-contained report folder")
    p.add_argument("--data", default="data", help="folder of evidence CSV files (default: data)")
    p.add_argument("--models", nargs="+", default=["models"], metavar="DIR|SPEC",
                   help="folders of specs (every *.toml) and/or spec files (default: models)")
    p.add_argument("--out", default=None, help="output folder (default: reports/run-<UTC timestamp>)")
    _sampler_args(p)
    p.add_argument("--allow-unconverged", action="store_true",
                   help="exit 0 even if a model fails the convergence gate (the report says so at the top)")
    p.add_argument("--no-sensitivity", dest="sensitivity", action="store_false",
                   help="skip the sensitivity analyses of the EDSS model(s) (default: included; they only refit "
                        "or reweight the already compiled base model)")
    return parser


def _sampler_args(p: argparse.ArgumentParser) -> None:
    for flag, help_ in (("--draws", "draws per chain"), ("--tune", "tuning steps per chain"),
                        ("--chains", "number of chains"), ("--seed", "random seed")):
        p.add_argument(flag, type=int, default=None, help=f"{help_} (default: the spec's)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return int(exc.code or 0)
    try:
        return _COMMANDS[args.command](args)
    except MscBayesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _validate(args) -> int:
    from msc_bayes.evidence import load_evidence

    ev = load_evidence(args.data)
    counts = ", ".join(f"{len(ev.table(t))} {t}" for t in ("arms", "edss", "patients", "adverse_events", "mri"))
    print(f"{args.data}: valid ({len(ev.studies)} studies; {counts} rows; data hash {ev.data_hash})")
    return 0


def _describe(args) -> int:
    from msc_bayes.describe import describe
    from msc_bayes.evidence import load_evidence

    table = describe(load_evidence(args.data))
    with pd.option_context("display.max_colwidth", None, "display.width", 250, "display.max_rows", None):
        for study, rows in table.groupby("study", sort=False):
            print(f"== {study}")
            for r in rows.itertuples(index=False):
                print(f"  [{r.arm}] {r.group}, {r.disease}, n={r.n}, route {r.route}, courses {r.courses}, "
                      f"follow-up {r.followup_months if r.followup_months is not None else 'NR'} months"
                      + (f", overlap {r.overlap}" if r.overlap else ""))
                for label, text in (("EDSS", r.edss), ("AE", r.adverse_events), ("MRI", r.mri)):
                    if text:
                        print(f"      {label}: {text}")
    return 0


def _fit(args) -> int:
    from pathlib import Path

    from msc_bayes.evidence import load_evidence
    from msc_bayes.fitting import fit
    from msc_bayes.output import atomic_folder
    from msc_bayes.spec import load_spec

    spec = load_spec(args.spec)
    evidence = load_evidence(args.data)
    out = Path(args.out or Path("reports") / f"fit-{Path(args.spec).stem}")
    result = fit(spec, evidence, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    with atomic_folder(out) as tmp:
        result.to_netcdf(tmp / "posterior.nc")
        result.summary().to_csv(tmp / "summary.csv", index=False)
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {out / 'posterior.nc'} and {out / 'summary.csv'}")
    return 0


def _report(args) -> int:
    import os

    from msc_bayes.errors import ConvergenceError
    from msc_bayes.report import run_report

    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    result = run_report(data=args.data, models=args.models, out=args.out, draws=args.draws, tune=args.tune,
                        chains=args.chains, seed=args.seed, allow_unconverged=args.allow_unconverged,
                        sensitivity=args.sensitivity,
                        progress=sys.stdout.isatty() and not ci, log=lambda line: print(line, flush=True))
    failed = result.unconverged
    if failed and not args.allow_unconverged:
        names = ", ".join(m.key for m in failed)
        raise ConvergenceError(f"{names} did not pass the convergence gate after a refit; see {result.out / 'index.html'}"
                               " (use --allow-unconverged to accept)")
    print(f"report: {result.out / 'index.html'}")
    return 0


_COMMANDS = {"validate": _validate, "describe": _describe, "fit": _fit, "report": _report}
