"""Tests for the `validate` and `describe` commands: exit codes and one clean message on bad input."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from msc_bayes.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def corrupt(data_copy, edit_cell) -> tuple[Path, int, int]:
    """EDSS 12.5 in edss.csv and 30 patients with an event among 24 at risk in adverse_events.csv."""
    edss_row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "baseline_mean", "12.5")
    ae_row = edit_cell(data_copy / "adverse_events.csv", {"study": "petrou2021"}, "patients_with_event", "30")
    return data_copy, edss_row, ae_row


def test_validate_bundled_data(capsys):
    assert main(["validate", "--data", str(DATA)]) == 0
    out, err = capsys.readouterr()
    assert "valid" in out and "25 studies" in out and "38 arms" in out
    assert err == ""


def test_validate_reports_every_problem_cleanly(corrupt, capsys):
    folder, edss_row, ae_row = corrupt
    assert main(["validate", "--data", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("error: 2 problem(s) in the evidence")
    # the bundled files have no blank or multi-line rows: data row r is line r + 1 (header = line 1)
    assert f"{folder / 'edss.csv'}, line {edss_row + 1}, column 'baseline_mean': found '12.5'" in err
    assert f"{folder / 'adverse_events.csv'}, line {ae_row + 1}, column 'patients_with_event': found 30" in err
    assert "at most n_at_risk (24)" in err


def test_describe_prints_the_headline_numbers(capsys):
    assert main(["describe", "--data", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert "== petrou2021" in out
    assert "[all] msc, progressive, n=24, route IT+IV, courses 1-9, follow-up 27.8 months" in out
    assert "6.75 ± 0.68 → 6.42 ± 0.84; improved 10, stable or improved 22 of 24" in out
    assert "serious_ae (related) 0/24" in out
    assert "stable 6 of 6" in out and "worsened 3 of 5" in out


def test_describe_on_bad_data_is_a_clean_error(corrupt, capsys):
    assert main(["describe", "--data", str(corrupt[0])]) == 2
    out, err = capsys.readouterr()
    assert "12.5" in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("command", ["validate", "describe"])
def test_missing_data_folder(tmp_path, capsys, command):
    missing = tmp_path / "no_such_folder"
    assert main([command, "--data", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error:") and str(missing) in err and "folder" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["validat"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_python_m_validate_on_corrupt_data(corrupt):
    proc = subprocess.run([sys.executable, "-m", "msc_bayes", "validate", "--data", str(corrupt[0])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "12.5" in proc.stderr and "patients_with_event" in proc.stderr
    assert proc.stdout == ""


def test_validate_on_a_link_to_an_endless_device(data_copy):
    (data_copy / "edss.csv").unlink()
    (data_copy / "edss.csv").symlink_to("/dev/zero")  # was: read until memory ran out

    def limit_memory():  # should the device be read after all, fail fast instead of exhausting the machine
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    proc = subprocess.run([sys.executable, "-m", "msc_bayes", "validate", "--data", str(data_copy)],
                          capture_output=True, text=True, timeout=60, preexec_fn=limit_memory)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: 1 problem(s) in the evidence")
    found = "a character device (a symbolic link to '/dev/zero')"
    assert f"{data_copy / 'edss.csv'}: found {found!r}; expected a readable regular file" in proc.stderr


def test_validate_names_the_delimiter_and_line(data_copy, capsys):
    text = (data_copy / "mri.csv").read_text()
    (data_copy / "mri.csv").write_text(text.replace(",", ";"))
    assert main(["validate", "--data", str(data_copy)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: 1 problem(s) in the evidence")
    assert f"{data_copy / 'mri.csv'}, line 1: found " in err
    assert "expected comma-separated fields; this looks ';'-separated" in err
