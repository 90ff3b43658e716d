"""Command line: `python -m msc_bayes {validate,describe,fit,report}`.

Bad input ends in one clear message on stderr and exit code 2, never a traceback; every
number on the command line is checked before any work starts. Ctrl-C, SIGTERM and a closed
output pipe end with one line on stderr and the usual exit code (130, 143, 141). Anything
unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys

from msc_bayes.errors import MscBayesError, one_line


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
    p.add_argument("--out", default=None, help="output folder, new or empty (default: a new "
                   "reports/fit-<spec name>-<UTC time>-<token>)")
    _overwrite_arg(p)
    _sampler_args(p)
    p = sub.add_parser("report", help="fit every model spec; write a self-contained report folder")
    p.add_argument("--data", default="data", help="folder of evidence CSV files (default: data)")
    p.add_argument("--models", nargs="+", default=["models"], metavar="DIR|SPEC",
                   help="folders of specs (every *.toml) and/or spec files (default: models)")
    p.add_argument("--out", default=None, help="output folder, new or empty (default: a new "
                   "reports/run-<UTC time>-<token>)")
    _overwrite_arg(p)
    _sampler_args(p)
    p.add_argument("--allow-unconverged", action="store_true",
                   help="exit 0 even if a model fails the convergence gate (the report says so at the top)")
    p.add_argument("--no-sensitivity", dest="sensitivity", action="store_false",
                   help="skip the sensitivity analyses of the EDSS model(s) (default: included; they only refit "
                        "or reweight the already compiled base model)")
    return parser


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="let --out replace an earlier msc_bayes run folder (only one msc_bayes wrote, unchanged; "
                        "it stays as it is until the new run is complete)")


def _sampler_args(p: argparse.ArgumentParser) -> None:
    for flag, help_ in (("--draws", "draws per chain"), ("--tune", "tuning steps per chain"),
                        ("--chains", "number of chains"), ("--seed", "random seed")):
        p.add_argument(flag, type=_sampler_setting(flag[2:]), default=None, metavar="N",
                       help=f"{help_} (default: the spec's; the rules of a spec's [sampler] table apply)")


def _sampler_setting(name: str):
    """An argparse type: an ASCII whole number (no sign, no `1_000`, no `1e3`) that the rules of a
    spec's ``[sampler]`` table accept (:func:`msc_bayes.spec.check_sampler_settings`)."""

    def parse(text: str) -> int:
        from msc_bayes.spec import check_sampler_settings

        if not re.fullmatch(r"[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"found {text!r}; expected a whole number written in digits 0-9")
        value = int(text.strip())
        problems = check_sampler_settings(**{name: value})
        if problems:
            raise argparse.ArgumentTypeError(f"found {value}; expected {problems[0].expected}")
        return value

    parse.__name__ = "whole number"
    return parse


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that cleanup runs as for Ctrl-C (a BaseException, like
    KeyboardInterrupt, so that no `except Exception` takes it for a failure)."""


def _on_signal(signum, frame):
    """Ctrl-C and SIGTERM: recorded (see :func:`msc_bayes.output.request_stop`), then raised."""
    from msc_bayes import output

    exception = KeyboardInterrupt if signum == signal.SIGINT else _Terminated
    output.request_stop(exception)
    raise exception


def main(argv: list[str] | None = None) -> int:
    from msc_bayes import output

    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return int(exc.code or 0)
    output.clear_stop_requests()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}  # an ignored Ctrl-C (a background job) stays ignored
    try:
        code = _COMMANDS[args.command](args)
        _flush_stdout()
        return code
    except MscBayesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); nothing earlier was changed", file=sys.stderr)
        return 130
    except _Terminated:
        print("terminated (SIGTERM); nothing earlier was changed", file=sys.stderr)
        return 143
    except BrokenPipeError:
        _quiet_stdout()
        print("stopped: the output pipe was closed", file=sys.stderr)
        return 141
    except OSError as exc:
        if not _raised_here(exc):  # a write elsewhere (output folders say their own errors): a traceback
            raise
        _quiet_stdout()
        print(f"error: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _flush_stdout() -> None:
    """Flush what the command printed, so that a closed pipe or a full device is found in main(),
    not in the interpreter's final flush (which would print a traceback)."""
    if sys.stdout is not None:  # None when started with stdout closed: print() wrote nothing
        sys.stdout.flush()


def _raised_here(exc: BaseException) -> bool:
    """Was `exc` raised by a line of this module? Its only I/O is printing the commands' output."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename == __file__


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured in tests)
        pass


def _validate(args) -> int:
    from msc_bayes.evidence import load_evidence

    ev = load_evidence(args.data)
    counts = ", ".join(f"{len(ev.table(t))} {t}" for t in ("arms", "edss", "patients", "adverse_events", "mri")
                       + (("shared_patients",) if len(ev.shared_patients) else ()))
    print(one_line(f"{args.data}: valid ({len(ev.studies)} studies; {counts} rows; data hash {ev.data_hash})"))
    return 0


def _describe(args) -> int:
    import pandas as pd

    from msc_bayes.evidence import load_evidence
    from msc_bayes.evidence.describe import describe

    table = describe(load_evidence(args.data))
    with pd.option_context("display.max_colwidth", None, "display.width", 250, "display.max_rows", None):
        for study, rows in table.groupby("study", sort=False):
            print(one_line(f"== {study}"))  # names from the data: no line break or terminal escape gets through
            for r in rows.itertuples(index=False):
                followup = f"{r.followup_months:g} months" if pd.notna(r.followup_months) else "not reported"
                print(one_line(f"  [{r.arm}] {r.group}, {r.disease}, n={r.n}, route {r.route}, courses {r.courses}, "
                               f"follow-up {followup}" + (f", overlap {r.overlap}" if r.overlap else "")
                               + (f", crossover: {r.crossover}" if r.crossover else "")))
                for label, text in (("EDSS", r.edss), ("AE", r.adverse_events), ("MRI", r.mri)):
                    if text:
                        print(one_line(f"      {label}: {text}"))
    return 0


def _fit(args) -> int:
    from pathlib import Path

    from msc_bayes.evidence import load_evidence
    from msc_bayes.inference import fit
    from msc_bayes.output import check_target, default_target, run_folder
    from msc_bayes.spec import load_spec

    out = Path(args.out) if args.out else default_target("fit", Path(args.spec).stem)
    check_target(out, overwrite=args.overwrite, protect=[args.data])  # before any work; again when writing
    spec = load_spec(args.spec)
    evidence = load_evidence(args.data)
    with run_folder(out, kind="fit", overwrite=args.overwrite, protect=[args.data]) as folder:
        with _progress().about(Path(args.spec).stem):
            result = fit(spec, evidence, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
        result.to_netcdf(folder / "posterior.nc")
        result.summary().to_csv(folder / "summary.csv", index=False)
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {out / 'posterior.nc'} and {out / 'summary.csv'}")
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


def _progress():
    """Progress of long work: rich bars on a terminal; concise lines when not (a log, CI)."""
    import os

    from msc_bayes.progress import LogProgress, TerminalProgress

    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    terminal = sys.stdout is not None and sys.stdout.isatty() and not ci
    return TerminalProgress(_log) if terminal else LogProgress(_log)


def _report(args) -> int:
    from msc_bayes.errors import ConvergenceError
    from msc_bayes.reporting import run_report

    result = run_report(data=args.data, models=args.models, out=args.out, overwrite=args.overwrite,
                        draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                        allow_unconverged=args.allow_unconverged, sensitivity=args.sensitivity,
                        progress=_progress(), log=_log)
    failed = result.unconverged
    if failed and not args.allow_unconverged:
        names = ", ".join(m.key for m in failed)
        raise ConvergenceError(f"{names} did not pass the convergence gate after a refit; see {result.out / 'index.html'}"
                               " (use --allow-unconverged to accept)")
    print(f"report: {result.out / 'index.html'}")
    return 0


_COMMANDS = {"validate": _validate, "describe": _describe, "fit": _fit, "report": _report}
