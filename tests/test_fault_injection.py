"""Fault injection: SIGINT, SIGKILL, a failing write or rename at each stage of writing `fit` and `report` output.

Each case starts from an earlier complete run at the target (replaced with --overwrite) and an
unrelated user file beside it, injects the fault when a stage begins, and asserts:
- the unrelated file is byte-identical;
- the target holds either the earlier run, byte-identical, or a complete new run (never a mix);
- after the next run writing beside it, no staging folder is left, and whatever the failed run
  sampled is in a visible ``<target>.failed`` folder (nothing of value only under a hidden name).

SIGINT and failing writes run in-process; SIGKILL needs a process to kill (a subprocess running
the same command with sampling replaced by `fake_fit`). In-process runs also skip drawing the figures
(`_fake_work`): each figure file is still written under its name, so the run folder is the same set of
files; the figures themselves are drawn and checked in test_report.py (and by the SIGKILL cases here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_diagnostics import fake_fit, undrawn_figures, write_fixture

from msc_bayes import inference, output
from msc_bayes.cli import main
from msc_bayes.reporting import run as report

TESTS = Path(__file__).resolve().parent
FIT_STAGES = [("ENGINE", "fit"), ("Fit", "to_netcdf"), ("Fit", "summary"), ("output", "write_marker"),
              ("output", "publish"), ("output", "exchange"), ("output", "_remove_entry")]
REPORT_STAGES = [("ENGINE", "fit"), ("report", "write_outputs"), ("report", "render_markdown"),
                 ("output", "write_marker"), ("output", "exchange"), ("output", "_remove_entry")]
#: Stages before the check that a run was not stopped (run_folder, before it writes the marker).
STAGES_BEFORE_PUBLISHING = {("ENGINE", "fit"), ("Fit", "to_netcdf"), ("Fit", "summary"), ("report", "write_outputs"),
                            ("report", "render_markdown")}
OWNERS = {"ENGINE": inference.ENGINE, "Fit": inference.Fit, "output": output, "report": report, "shutil": shutil}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def command(kind: str, data: Path, spec: Path, out: Path, *extra: str) -> list[str]:
    if kind == "fit":
        return ["fit", str(spec), "--data", str(data), "--out", str(out), *extra]
    return ["report", "--data", str(data), "--models", str(spec), "--out", str(out), "--no-sensitivity", *extra]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """One complete earlier fit and report (made once; each case works on a copy)."""
    root = tmp_path_factory.mktemp("earlier")
    data, spec, _ = write_fixture(root)
    with pytest.MonkeyPatch.context() as mp:
        _fake_work(mp)
        for kind in ("fit", "report"):
            assert main(command(kind, data, spec, root / kind)) == 0
    return root


def _fake_work(mp) -> None:
    """Sampling replaced by `fake_fit`; each figure file written without drawing it (`undrawn_figures`)."""
    mp.setattr(inference.ENGINE, "fit", lambda spec, evidence, **kw: fake_fit(spec, evidence, **kw))
    mp.setattr(inference.ENGINE, "precompile", lambda models: [])
    undrawn_figures(mp)


@pytest.fixture
def case(earlier, tmp_path):
    """(data, spec, the earlier run's copy at tmp/<kind>/run, its snapshot, the user's file beside it)."""
    def make(kind: str):
        data, spec = earlier / "evidence", earlier / "specs" / "edss_plain.toml"
        parent = tmp_path / kind
        parent.mkdir()
        shutil.copytree(earlier / kind, parent / "run")
        (parent / "notes.txt").write_text("the user's own notes", encoding="utf-8")
        return data, spec, parent / "run", snapshot(parent / "run")
    return make


def check_after(kind: str, data: Path, spec: Path, target: Path, before: dict[str, bytes]) -> None:
    parent = target.parent
    assert (parent / "notes.txt").read_text(encoding="utf-8") == "the user's own notes"
    now = snapshot(target)
    if now != before:  # then it must be a complete new run
        marker = output.read_marker(target)
        assert marker is not None and output.foreign_files(target, marker) == []
    with pytest.MonkeyPatch.context() as mp:  # the next run beside it recovers what the failed one left
        _fake_work(mp)
        assert main(command(kind, data, spec, parent / "next")) == 0
    assert not list(parent.glob(".*")), "a hidden folder was left behind"
    for failed in parent.glob("run.failed*"):
        assert list(failed.glob("*.nc")) and (failed / "README.txt").exists()


def inject(monkeypatch, owner: str, name: str, fault) -> list:
    """Make `fault()` happen when OWNERS[owner].name is first called; returns a list that records the hit."""
    real = getattr(OWNERS[owner], name)
    hit = []

    def faulty(*args, **kwargs):
        if not hit:
            hit.append(True)
            fault()
        return real(*args, **kwargs)

    monkeypatch.setattr(OWNERS[owner], name, faulty)
    return hit


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10**6):  # the handler raises KeyboardInterrupt at the next bytecode
        pass


def _swallowed_sigint():
    """Ctrl-C whose KeyboardInterrupt a finalizer swallowed ("Exception ignored in ..."): only the record is left."""
    output.request_stop(KeyboardInterrupt)


def _oserror():
    raise OSError(28, "No space left on device (injected)")


@pytest.mark.parametrize("kind, stage", [("fit", s) for s in FIT_STAGES] + [("report", s) for s in REPORT_STAGES],
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("fault", ["sigint", "swallowed", "oserror"])
def test_in_process_faults_lose_nothing(case, monkeypatch, capsys, kind, stage, fault):
    data, spec, target, before = case(kind)
    _fake_work(monkeypatch)
    hit = inject(monkeypatch, *stage, {"sigint": _sigint, "swallowed": _swallowed_sigint, "oserror": _oserror}[fault])
    code = main(command(kind, data, spec, target, "--overwrite"))
    assert hit, "the stage was never reached"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    removing = stage == ("output", "_remove_entry")  # the new run is in place: a failure to remove the old is said
    if fault == "swallowed":  # noticed before publishing; once the new run is in place it stands
        assert code == (130 if stage in STAGES_BEFORE_PUBLISHING else 0), err
    else:
        assert code == (130 if fault == "sigint" else 0 if removing else 2), err
    monkeypatch.undo()
    check_after(kind, data, spec, target, before)


_CHILD = textwrap.dedent("""
    import os, signal, shutil, sys
    sys.path.insert(0, {tests!r})
    from test_diagnostics import fake_fit
    from msc_bayes import inference, output
    from msc_bayes.reporting import run as report
    from msc_bayes.cli import main
    inference.ENGINE.fit = lambda spec, evidence, **kw: fake_fit(spec, evidence, **kw)
    inference.ENGINE.precompile = lambda models: []
    owner = {{"ENGINE": inference.ENGINE, "Fit": inference.Fit, "output": output, "report": report, "shutil": shutil}}[sys.argv[1]]
    real = getattr(owner, sys.argv[2])
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(owner, sys.argv[2], killed)
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("kind, stage", [("fit", ("ENGINE", "fit")), ("fit", ("Fit", "summary")),
                                         ("fit", ("output", "publish")), ("fit", ("output", "_remove_entry")),
                                         ("report", ("report", "write_outputs")), ("report", ("output", "exchange"))],
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else v)
def test_sigkill_at_each_stage_loses_nothing(case, kind, stage):
    data, spec, target, before = case(kind)
    script = _CHILD.format(tests=str(TESTS))
    done = subprocess.run([sys.executable, "-c", script, *stage, *command(kind, data, spec, target, "--overwrite")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    check_after(kind, data, spec, target, before)
