"""The command line at its edges: numbers checked before any work, a closed pipe, Ctrl-C and SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_diagnostics import fake_fit, write_fixture

from msc_bayes import cli, inference
from msc_bayes.cli import main
from msc_bayes.spec import SAMPLER_INT_MAX, SAMPLER_MAXIMUM

REPO = Path(__file__).resolve().parents[1]
BOUNDS = {f"--{k}": (1 if k != "seed" else 0, high) for k, high in SAMPLER_MAXIMUM.items()}  # a spec's rules


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Evidence and a spec; `fit` replaced by a stub that records its settings and returns a tiny fake fit."""
    data, spec, _ = write_fixture(tmp_path)
    seen: list[dict] = []

    def stub(spec, evidence, **settings):
        seen.append(settings)
        return fake_fit(spec, evidence, draws=10, chains=2)

    monkeypatch.setattr(inference.ENGINE, "fit", stub)
    return data, spec, seen


def fit_with(project, flag: str, value: str) -> int:
    data, spec, _ = project
    out = Path(tempfile.mkdtemp()) / "fit"
    # the stub's tiny fake fit fails the convergence gate (exit 3, tested in test_fit_gate.py): accepted here
    return main(["fit", str(spec), "--data", str(data), "--out", str(out), "--allow-unconverged", flag, value])


@pytest.mark.parametrize("flag, value", [
    ("--draws", "0"), ("--tune", "-5"), ("--seed", "-1"), ("--chains", "0"), ("--chains", "abc"),
    ("--draws", "1_000"), ("--draws", "١٢"), ("--draws", "１２"), ("--draws", "1e3"), ("--draws", "0x10"),
    ("--draws", "2.5"), ("--draws", "+5"), ("--draws", ""), ("--seed", str(2**64)), ("--chains", str(2**70)),
    ("--seed", "nan"),
])
def test_a_bad_number_is_one_message_and_exit_2_before_any_work(project, capsys, flag, value):
    assert fit_with(project, flag, value) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and flag in err
    assert project[2] == []  # nothing was sampled


def test_draws_zero_is_not_the_specs_default(project, capsys):
    assert fit_with(project, "--draws", "0") == 2
    assert "found 0; expected an integer >= 1" in capsys.readouterr().err


_VALUES = st.one_of(
    st.integers(-10**21, 10**21).map(str),
    st.text(max_size=8),
    st.sampled_from(["1_000", "١٢", "１２", "0x10", "1e3", " 5", "5 ", "+5", "-0", "inf", "nan", "", "0", "1",
                     str(SAMPLER_INT_MAX), str(SAMPLER_INT_MAX + 1), "64", "65", "1000000", "1000001"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(sorted(BOUNDS)), value=_VALUES)
def test_any_command_line_value_exits_0_or_2_never_a_traceback(project, capsys, flag, value):
    seen = project[2]
    seen.clear()
    code = fit_with(project, flag, value)
    err = capsys.readouterr().err
    low, high = BOUNDS[flag]
    valid = re.fullmatch(r"[0-9]+", value.strip()) is not None and low <= int(value.strip()) <= high \
        and not value.startswith("-")
    assert code == (0 if valid else 2), (flag, value, err)
    assert "Traceback" not in err
    if valid:
        assert seen[0][flag[2:]] == int(value.strip())  # passed on as the number written
    else:
        assert seen == []


def run_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "msc_bayes", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_closed_pipe_ends_quietly_with_one_line():
    with run_cli("describe") as process:
        process.stdout.close()  # as `describe | head` does once head has its lines
        err = process.stderr.read()
    assert process.returncode == 141
    assert err.splitlines() == ["stopped: the output pipe was closed"]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                                (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_during_a_report_ends_with_one_line_and_leaves_nothing(tmp_path, signum, code, line):
    out = tmp_path / "reports" / "run"
    with run_cli("report", "--out", str(out), "--models", "models/mri_activity.toml", "--no-sensitivity") as process:
        for text in process.stdout:  # wait until it is fitting
            if "fitting" in text:
                break
        time.sleep(0.5)
        process.send_signal(signum)
        err = process.stderr.read()
        process.stdout.read()
    assert process.returncode == code
    assert len(err.splitlines()) == 1 and err.startswith(line) and "Traceback" not in err
    assert list((tmp_path / "reports").iterdir()) == []  # no run folder, no staging folder


_HALF_BUILT = """
import runpy
from msc_bayes import cli

class HalfBuilt:  # what a library leaves when the signal lands inside its work (llvmlite, mid-compile)
    def __del__(self):
        raise AttributeError("'_GlobalsIterator' object has no attribute '_as_parameter_'")

def interrupted(args):
    global left
    left = HalfBuilt()  # its destructor runs as the interpreter ends
    raise {exception}

cli._COMMANDS["validate"] = interrupted
runpy.run_module("msc_bayes", run_name="__main__")
"""


@pytest.mark.parametrize("exception, code, line", [("KeyboardInterrupt", 130, "interrupted (Ctrl-C)"),
                                                   ("cli._Terminated", 143, "terminated (SIGTERM)")])
def test_an_interrupt_ends_with_its_one_line_even_when_a_library_fails_as_the_process_ends(exception, code, line):
    """On empty compile caches, Ctrl-C during a report stopped numba mid-compile, and llvmlite's destructors
    printed 'Exception ignored in: ObjectRef.__del__' and a traceback after the one line (the suite's cold run,
    2026-12-03)."""
    done = subprocess.run([sys.executable, "-c", _HALF_BUILT.format(exception=exception), "validate"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code
    assert done.stderr.splitlines() == [f"{line}; nothing earlier was changed"]


def test_sigterm_is_not_taken_for_a_sampler_failure():
    """SIGTERM while sampling was reported as 'sampling ... failed: _Terminated', exit 2 (tester's F05)."""
    assert not inference.sampling.is_sampler_failure(cli._Terminated())
    assert not isinstance(cli._Terminated(), Exception)


def test_a_full_or_closed_stdout_is_one_line_not_a_traceback(tmp_path):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "msc_bayes", "describe"], cwd=REPO, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: cannot write to standard output: No space left on device"]
    closed = subprocess.run(["bash", "-c", f"'{sys.executable}' -m msc_bayes validate >&-"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert closed.returncode == 0 and "Traceback" not in closed.stderr


def test_names_from_the_data_reach_the_terminal_on_one_line(tmp_path, capsys):
    data, _, _ = write_fixture(tmp_path)
    odd = tmp_path / "d\nx"
    data.rename(odd)
    assert main(["validate", "--data", str(odd)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "d\\nx: valid" in out
    assert main(["describe", "--data", str(odd)]) == 0
    described = capsys.readouterr().out
    assert "== <script>alert(1)</script>" in described and "follow-up nan" not in described
