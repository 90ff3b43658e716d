"""Command line: `python -m msc_bayes {validate,describe,fit,report}`.

Bad input ends in one clear message on stderr and exit code 2, never a traceback; every
number on the command line is checked before any work starts. A model that does not pass the
convergence gate (``fit`` and ``report``, after one refit) ends in exit code 3
(:data:`EXIT_UNCONVERGED`) with its files written, unless ``--allow-unconverged``. Ctrl-C,
SIGTERM and a closed output pipe end with one line on stderr and the usual exit code (130, 143, 141), and
nothing after it (:func:`quiet_teardown`). Anything unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys

from msc_bayes.errors import MscBayesError, one_line

#: Exit code of a fit or report whose model did not pass the convergence gate (after its one refit);
#: its files are written. ``--allow-unconverged`` makes it 0.
EXIT_UNCONVERGED = 3

_DESCRIPTION = """\
Bayesian evidence synthesis of mesenchymal stromal/stem cell (MSC) therapy in multiple sclerosis and
neuromyelitis optica (EDSS change, adverse events and their rates, MRI activity), or of any table of
effect sizes (outcome "effect_size"): evidence tables (CSV, one folder) and model specs (TOML) in;
posteriors, tables, figures and a report out.
Every interval is a 95% equal-tailed interval (ETI).

commands (`python -m msc_bayes COMMAND --help`: its options):
  validate   check the evidence tables and list every problem
  describe   per-study table of what the evidence says, as reported
  fit        fit one model spec through the convergence gate; write OUT/posterior.nc, OUT/summary.csv
  report     fit every model spec; write a self-contained report folder"""

_EPILOG = """\
examples:
  python -m msc_bayes validate --data data
  python -m msc_bayes describe --data data
  python -m msc_bayes fit models/edss_change.toml --out reports/edss --draws 2000
  python -m msc_bayes report --models models --out reports/run1

what each command writes:
  validate, describe   standard output only
  fit                  OUT/posterior.nc (the DataTree: arviz.from_netcdf) and OUT/summary.csv
                       (one row per quantity, then the sampler rows: draws, divergences,
                       max_treedepth_hits, ebfmi_min, gate_passed)
  report               OUT/index.html, OUT/report.md, OUT/run.json, OUT/summary_of_findings.csv,
                       per model <key>.nc and <key>_{summary,diagnostics,study_estimates,ppc}.csv,
                       OUT/figures/; OUT is new, never a folder that holds anything else

convergence gate (fit and report): R-hat <= 1.01, bulk and tail ESS >= 400, no divergent
transitions (E-BFMI < 0.3 and maximum tree depth hits are warnings); a model that fails is refitted
once with tuning doubled and target acceptance raised (0.99).

exit codes:
  0    done (with --allow-unconverged also when the gate failed)
  1    standard output could not be written
  2    bad input: evidence, spec, a command-line value or the output folder (one message
       naming file, line, column, the value and what was expected); nothing sampled
  3    a model did not pass the convergence gate after its refit (files written; the
       verdict says why)
  130  Ctrl-C; 143 SIGTERM (nothing earlier changed); 141 the output pipe was closed"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m msc_bayes", usage="%(prog)s [-h] {validate,describe,fit,report} ...",
                                     description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS)
    for name, help_ in (("validate", "check the evidence tables and list every problem"),
                        ("describe", "per-study table of what the evidence says, as reported")):
        p = sub.add_parser(name, help=help_, description=help_)
        _data_arg(p)
    p = sub.add_parser("fit", help="fit one model spec through the convergence gate; write OUT/posterior.nc and "
                       "OUT/summary.csv", description=_FIT_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="a model spec (TOML), e.g. models/edss_change.toml")
    _data_arg(p)
    p.add_argument("--out", default=None, help="output folder, new or empty (default: a new "
                   "reports/fit-<spec name>-<UTC time>-<token>)")
    _overwrite_arg(p)
    _sampler_args(p)
    _unconverged_arg(p, "the summary's gate_passed row says 0")
    p = sub.add_parser("report", help="fit every model spec; write a self-contained report folder",
                       description="Fit every model spec (each through the convergence gate, refitted once if it "
                       "fails) and write one self-contained report folder. Exit 3 if a model still fails the "
                       "gate (the report is written and says so at the top).")
    _data_arg(p)
    p.add_argument("--models", nargs="+", default=["models"], metavar="DIR|SPEC",
                   help="folders of specs (every *.toml) and/or spec files (default: models)")
    p.add_argument("--out", default=None, help="output folder, new or empty (default: a new "
                   "reports/run-<UTC time>-<token>)")
    _overwrite_arg(p)
    _sampler_args(p)
    _unconverged_arg(p, "the report says so at the top")
    p.add_argument("--no-sensitivity", dest="sensitivity", action="store_false",
                   help="skip the sensitivity analyses of the EDSS model(s) (default: included; they only refit "
                        "or reweight the already compiled base model)")
    return parser


_FIT_DESCRIPTION = """\
Fit one model spec and check the fit against the convergence gate (the same as `report`'s):
R-hat <= 1.01, bulk and tail ESS >= 400, no divergent transitions. A fit that fails is refitted
once with tuning doubled and target acceptance raised (to 0.99, or halfway to 1 from there).
The verdict is printed (worst R-hat, lowest ESS, divergences, E-BFMI, tree depth, each with its
threshold). The files are written either way; exit code 3 if the gate still fails, unless
--allow-unconverged."""


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data", metavar="DIR", help="folder of evidence CSV files (default: data)")


def _unconverged_arg(p: argparse.ArgumentParser, says: str) -> None:
    p.add_argument("--allow-unconverged", action="store_true",
                   help=f"exit 0 even if a model fails the convergence gate ({says}; default: exit 3)")


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="let --out replace an earlier msc_bayes run folder (only one msc_bayes wrote, unchanged; "
                        "it stays as it is until the new run is complete)")


def _sampler_args(p: argparse.ArgumentParser) -> None:
    for flag, help_ in (("--draws", "draws per chain"), ("--tune", "tuning steps per chain"),
                        ("--chains", "number of chains"), ("--seed", "random seed")):
        p.add_argument(flag, type=_sampler_setting(flag[2:]), default=None, metavar="N",
                       help=f"{help_} (default: the spec's; the rules of a spec's [sampler] table apply)")
    p.add_argument("--target-accept", type=_target_accept, default=None, metavar="X",
                   help="NUTS target acceptance rate, strictly between 0 and 1, e.g. 0.95 (default: the spec's "
                        "[sampler] target_accept, else the outcome's: 0.9, edss_change 0.99)")


def _target_accept(text: str) -> float:
    """An argparse type: a decimal number written in ASCII digits (``0.95``, ``.95``) strictly between 0 and 1."""
    from msc_bayes.spec import check_sampler_settings

    if not re.fullmatch(r"[0-9]*\.?[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"found {text!r}; expected a decimal number such as 0.95")
    value = float(text.strip())
    problems = check_sampler_settings(target_accept=value)
    if problems:
        raise argparse.ArgumentTypeError(f"found {text.strip()}; expected {problems[0].expected}")
    return value


_target_accept.__name__ = "number"  # argparse's "invalid <name> value" wording


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


#: The exit codes of an interrupt (Ctrl-C, SIGTERM): the process ends because its user asked.
INTERRUPTED = (130, 143)


def quiet_teardown() -> None:
    """After an interrupt, the one line stays the only one: objects a library was building when the
    signal landed can fail in their destructors as the interpreter ends (llvmlite's, when Ctrl-C stops a
    numba compile on empty caches: "Exception ignored in: ObjectRef.__del__ ..."). Python reports such
    errors through ``sys.unraisablehook``; from here on it says nothing. Called by ``python -m
    msc_bayes`` as it exits (not by :func:`main`, which a program may call and go on)."""
    sys.unraisablehook = lambda unraisable: None


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
                       + tuple(t for t in ("shared_patients", "effect_sizes") if len(ev.table(t))))
    print(one_line(f"{args.data}: valid ({len(ev.studies)} studies; {counts} rows; data hash {ev.data_hash})"))
    return 0


def _describe(args) -> int:
    import pandas as pd

    from msc_bayes.evidence import load_evidence
    from msc_bayes.evidence.describe import arm_text, describe

    table = describe(load_evidence(args.data))
    with pd.option_context("display.max_colwidth", None, "display.width", 250, "display.max_rows", None):
        for study, rows in table.groupby("study", sort=False):
            print(one_line(f"== {study}"))  # names from the data: no line break or terminal escape gets through
            for r in rows.itertuples(index=False):
                print(one_line(f"  [{r.arm}] {arm_text(r)}"))
                for label, text in (("EDSS", r.edss), ("AE", r.adverse_events), ("MRI", r.mri),
                                    ("effect size", r.effect_sizes)):
                    if text:
                        print(one_line(f"      {label}: {text}"))
    return 0


def _fit(args) -> int:
    from pathlib import Path

    from msc_bayes.diagnostics import summary_table, verdict_lines
    from msc_bayes.evidence import load_evidence
    from msc_bayes.inference import fit_gated
    from msc_bayes.output import check_target, default_target, run_folder
    from msc_bayes.spec import load_spec

    name = Path(args.spec).stem
    out = Path(args.out) if args.out else default_target("fit", name)
    check_target(out, overwrite=args.overwrite, protect=[args.data])  # before any work; again when writing
    spec = load_spec(args.spec)
    evidence = load_evidence(args.data)
    with run_folder(out, kind="fit", overwrite=args.overwrite, protect=[args.data]) as folder:
        with _progress().about(name):
            result, verdict, attempts = fit_gated(spec, evidence, draws=args.draws, tune=args.tune,
                                                  chains=args.chains, seed=args.seed,
                                                  target_accept=args.target_accept, log=_log, key=name)
        result.to_netcdf(folder / "posterior.nc")  # the posterior is written whatever the gate says
        summary_table(result, verdict).to_csv(folder / "summary.csv")
    for note in result.notes:
        print(f"note: {note}")
    for line in verdict_lines(verdict):
        print(line)
    for warning in verdict.warnings:
        print(f"warning: {warning}")
    print(f"wrote {out / 'posterior.nc'} and {out / 'summary.csv'}")
    if verdict.passed:
        return 0
    refit = " after a refit" if len(attempts) > 1 else ""
    print(f"warning: {name} did not pass the convergence gate{refit} ({'; '.join(verdict.reasons)}); its numbers "
          "are not reliable" + ("" if args.allow_unconverged else
                                f" (exit {EXIT_UNCONVERGED}; use --allow-unconverged to accept)"), file=sys.stderr)
    return 0 if args.allow_unconverged else EXIT_UNCONVERGED


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
    from msc_bayes.reporting import run_report

    result = run_report(data=args.data, models=args.models, out=args.out, overwrite=args.overwrite,
                        draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                        target_accept=args.target_accept, allow_unconverged=args.allow_unconverged,
                        sensitivity=args.sensitivity, progress=_progress(), log=_log)
    print(f"report: {result.out / 'index.html'}")
    failed = result.unconverged
    if failed and not args.allow_unconverged:
        names = ", ".join(m.key for m in failed)
        print(f"error: {names} did not pass the convergence gate after a refit; see {result.out / 'index.html'} "
              f"(exit {EXIT_UNCONVERGED}; use --allow-unconverged to accept)", file=sys.stderr)
        return EXIT_UNCONVERGED
    return 0


_COMMANDS = {"validate": _validate, "describe": _describe, "fit": _fit, "report": _report}
