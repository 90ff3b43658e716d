"""Every code block of the README runs (or, for the command synopsis, names only what exists)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from msc_bayes.cli import _parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == language]


def test_every_block_is_one_of_the_kinds_tested_here():
    assert {lang for lang, _ in BLOCKS} <= {"bash", "python", "text", "toml", "csv"}
    assert len(blocks("bash")) == 2 and len(blocks("python")) >= 1 and len(blocks("text")) == 1


def test_the_toml_blocks_are_valid_spec_parts():
    """Each TOML block (a [priors] table) is accepted by a spec of the bundled EDSS model."""
    import tomllib

    from msc_bayes.spec import load_spec, spec_from_dict

    base = load_spec(REPO / "models" / "edss_change.toml").to_dict()
    for body in blocks("toml"):
        part = tomllib.loads(body)
        spec = spec_from_dict({**base, **{k: {**base.get(k, {}), **v} for k, v in part.items()}})
        for key, prior in part.get("priors", {}).items():
            assert spec.priors[key].to_dict() == {"dist": prior["dist"], **{k: float(v) for k, v in prior.items()
                                                                           if k != "dist"}}


def test_the_csv_blocks_are_tables_the_package_reads(tmp_path):
    """Each CSV block (an effect_sizes.csv) loads as evidence on its own, every row kept."""
    from msc_bayes.evidence import load_evidence

    for body in blocks("csv"):
        (tmp_path / "effect_sizes.csv").write_text(body, encoding="utf-8")
        table = load_evidence(tmp_path).table("effect_sizes")
        assert len(table) == len(body.strip().splitlines()) - 1 and table["y"].notna().all()


def test_the_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert blocks("bash")[1].strip() in ci


def test_the_command_synopsis_names_only_real_commands_and_options():
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public accessor
    for line in blocks("text")[0].splitlines():
        words = line.split("#")[0].split()
        assert words[:3] == ["python", "-m", "msc_bayes"] and words[3] in commands
        options = set(re.findall(r"--[a-z-]+", line.split("#")[0]))
        known = {o for action in commands[words[3]]._actions for o in action.option_strings}
        assert options <= known, options - known


def test_the_python_blocks_use_the_one_import():
    """`import msc_bayes as mb` and its verbs: no block reaches into a submodule for a verb mb offers."""
    python = blocks("python")
    assert python[0].startswith("import msc_bayes as mb\n")
    for body in python:
        assert not re.search(r"from msc_bayes\.(evidence|spec|inference|reporting|sensitivity|oracle)\b", body), body
        assert "mb." in body or "summary_of_findings" in body, body


@pytest.mark.slow
def test_every_python_block_runs_as_written(tmp_path, monkeypatch):
    """Every Python block, in order, in one namespace (as a reader pastes them), in a folder holding data/ and
    models/ (what it writes stays there)."""
    for name in ("data", "models", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, body in enumerate(blocks("python"), 1):
        exec(compile(body, f"README.md python block {i}", "exec"), namespace)  # noqa: S102 - our own README
    summary = namespace["summary"]
    assert summary.index.name == "quantity" and {"msc_effect", "mu", "tau"} <= set(summary.index)
    assert pd.read_csv(tmp_path / "edss_summary.csv").columns[0] == "quantity"
    assert namespace["gate"].passed == (not namespace["gate"].reasons)
    first = namespace["first"]
    assert first.quantity == "msc_effect" and first.certainty.grade in ("high", "moderate", "low", "very low")
    assert {"eti95_lower", "eti95_upper"} <= set(namespace["priors"].columns) and len(namespace["psense"]) > 0
    assert namespace["post"].mu_quantile([0.5]).shape == (1,)
    assert {"mu", "tau"} <= set(namespace["schools"].summary().index)
    assert namespace["rates"].summary().loc["rate_pooled", "median"] > 0
    run = namespace["run"]
    assert (run.out / "index.html").is_file() and run.out.parent == Path("reports") and not run.unconverged


@pytest.mark.slow
def test_the_main_command_runs(tmp_path):
    """The main job as written (less the install, which CI's own set-up is), in a scratch folder."""
    commands = [c.strip() for c in blocks("bash")[0].split("&&")]
    assert commands[:2] == ["python -m venv .venv", ".venv/bin/pip install -q -c constraints.txt -e ."]
    words = shlex.split(commands[2])
    assert words[:3] == [".venv/bin/python", "-m", "msc_bayes"]
    for name in ("data", "models"):
        (tmp_path / name).symlink_to(REPO / name)
    done = subprocess.run([sys.executable, *words[1:]], check=False, cwd=tmp_path, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr
    runs = list((tmp_path / "reports").iterdir())
    assert len(runs) == 1 and (runs[0] / "index.html").exists() and (runs[0] / "report.md").exists()
    assert f"report: reports/{runs[0].name}/index.html" in done.stdout
