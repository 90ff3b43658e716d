"""The one-import API (`import msc_bayes as mb`): the verbs, what `import msc_bayes` loads, `Fit.summary`'s layout,
and `mb.report` (the report run as one call, with the command's output-folder rules and convergence gate).

`mb.report` runs on the fake engine of tests/test_report.py (`fake`: numpy draws in a real fit's layout, no MCMC).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_diagnostics import fake_fit, undrawn_figures, write_fixture
from test_report import fake, files  # noqa: F401 - pytest fixtures

import msc_bayes as mb
from msc_bayes import inference, results
from msc_bayes.errors import ConvergenceError, OutputError
from msc_bayes.evidence import load_evidence
from msc_bayes.reporting import ReportResult
from msc_bayes.spec import load_spec

SUMMARY_COLUMNS = ["group", "mean", "sd", "eti95_lower", "median", "eti95_upper", "mcse_mean", "ess_bulk", "ess_tail",
                   "r_hat"]


def test_the_verbs_are_the_package_functions_and_modules():
    import msc_bayes.evidence
    import msc_bayes.oracle
    import msc_bayes.reporting
    import msc_bayes.sensitivity
    import msc_bayes.spec

    assert mb.load_evidence is msc_bayes.evidence.load_evidence
    assert mb.load_spec is msc_bayes.spec.load_spec
    assert mb.report is msc_bayes.reporting.report
    assert mb.sensitivity is msc_bayes.sensitivity and mb.oracle is msc_bayes.oracle
    assert callable(mb.sensitivity.leave_one_out) and callable(mb.oracle.normal_normal)
    assert {"load_evidence", "load_spec", "fit", "report", "sensitivity", "oracle"} <= set(dir(mb)) & set(mb.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'fitt'"):
        mb.fitt  # noqa: B018 - the attribute access is the test


def test_mb_fit_is_the_default_engines_fit_at_each_access(monkeypatch):
    """Looked up at each access, like msc_bayes.inference.fit: a stub of the engine's fit is what mb.fit gives."""
    assert mb.fit == inference.ENGINE.fit
    stub = lambda spec, evidence, **kw: ("stub", spec, evidence)
    monkeypatch.setattr(inference.ENGINE, "fit", stub)
    assert mb.fit is stub and mb.fit("s", "e") == ("stub", "s", "e")


def test_import_msc_bayes_loads_no_submodule_until_a_verb_is_used():
    """`import msc_bayes` stays light (no PyMC, PyTensor, pandas): the verbs import their modules on first use."""
    code = ("import sys, msc_bayes as mb; before = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('msc_bayes', 'pymc', 'pytensor', 'pandas', 'nutpie', 'arviz')); mb.load_spec; "
            "print(before, 'msc_bayes.spec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['msc_bayes', 'msc_bayes.errors'] True"


# --------------------------------------------------------------------------------------
# Fit.summary: indexed by quantity, the columns of summary.csv
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edss_fake(tmp_path_factory):
    data, edss_spec, _ = write_fixture(tmp_path_factory.mktemp("api"))
    return fake_fit(load_spec(edss_spec), load_evidence(data), draws=200, chains=2, seed=3)


def test_fit_summary_is_indexed_by_quantity_with_the_csv_columns(edss_fake, tmp_path):
    s = edss_fake.summary()
    assert s.index.name == "quantity" and s.index.is_unique and list(s.columns) == SUMMARY_COLUMNS
    mu = results.draws(edss_fake, "mu")
    lo, hi = results.quantile_probs()
    assert [s.loc["mu", "eti95_lower"], s.loc["mu", "median"], s.loc["mu", "eti95_upper"]] == list(
        np.quantile(mu, [lo, 0.5, hi]))  # a 95% equal-tailed interval, not ArviZ's 89% default
    assert s.loc["mu", "mean"] == pytest.approx(mu.mean(), rel=1e-12)
    s.to_csv(tmp_path / "summary.csv")
    written = pd.read_csv(tmp_path / "summary.csv")
    assert list(written.columns) == ["quantity", *SUMMARY_COLUMNS]  # the CSV's first column is the quantity
    assert list(written["quantity"]) == list(s.index)


def test_fit_convergence_is_the_gate_fit_and_report_apply(tmp_path):
    """Fit.convergence() is the CLI's verdict: a fit with divergent draws fails it, naming them."""
    data, edss_spec, _ = write_fixture(tmp_path)
    spec, evidence = load_spec(edss_spec), load_evidence(data)
    clean = fake_fit(spec, evidence, draws=500, chains=4, seed=1)
    bad = fake_fit(spec, evidence, draws=500, chains=4, seed=1, divergences=3)
    assert clean.convergence().passed and not clean.convergence().reasons
    gate = bad.convergence()
    assert not gate.passed and gate.divergences == 3 and any("3 divergent transitions" in r for r in gate.reasons)


def test_fit_summary_at_another_probability_names_its_interval(edss_fake):
    s = edss_fake.summary(prob=0.8)
    assert "eti80_lower" in s.columns and "eti80_upper" in s.columns and s.index.name == "quantity"
    mu = results.draws(edss_fake, "mu")
    assert s.loc["mu", "eti80_upper"] == np.quantile(mu, 0.9)


# --------------------------------------------------------------------------------------
# mb.report
# --------------------------------------------------------------------------------------


def _report(files, out, **kw):  # noqa: F811 - `files` is the fixture's value
    data, edss_spec, _ = files
    return mb.report(data=data, models=kw.pop("models", edss_spec), out=out, sensitivity=False,
                     log=lambda line: None, **kw)


def test_report_writes_the_run_folder_and_returns_it(files, fake, tmp_path):  # noqa: F811
    _, edss_spec, ae_spec = files
    result = _report(files, tmp_path / "run", models=[edss_spec, ae_spec])
    assert isinstance(result, ReportResult) and result.out == tmp_path / "run"
    assert [m.key for m in result.models] == ["edss_plain", "ae_plain"] and not result.unconverged
    assert (result.out / "index.html").is_file() and (result.out / ".msc_bayes-run.json").is_file()
    summary = pd.read_csv(result.out / "edss_plain_summary.csv")
    assert list(summary.columns) == ["quantity", *SUMMARY_COLUMNS]
    assert {"mu", "tau", "msc_effect"} <= set(summary["quantity"])
    assert "eti95_lower" in pd.read_csv(result.out / "summary_of_findings.csv").columns
    for table in result.out.glob("*.csv"):  # every interval a table writes says it is the 95% ETI
        ends = [c for c in pd.read_csv(table).columns if c.endswith(("_lower", "_upper"))]
        # observed_*: the source's own estimate's 95% interval, its kind in observed_from ('± 1.96 SE', 'Jeffreys')
        assert all("eti95_" in c or c.startswith("observed_") for c in ends), (table.name, ends)


def test_report_keeps_the_output_folder_rules(files, fake, tmp_path, monkeypatch):  # noqa: F811
    undrawn_figures(monkeypatch)  # the folder rules, not the figures (drawn in the test above)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError):
        _report(files, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and fake.calls == []  # refused before any fit
    first = _report(files, tmp_path / "run")
    with pytest.raises(OutputError):
        _report(files, first.out)  # an earlier run is replaced only with overwrite=True
    assert _report(files, first.out, overwrite=True).out == first.out


def test_report_raises_on_a_failed_gate_unless_allowed(files, fake, tmp_path, monkeypatch):  # noqa: F811
    undrawn_figures(monkeypatch)  # the gate, not the figures
    fake.options = {"all": {"shift": 1.0}}  # R-hat fails, on the refit too
    with pytest.raises(ConvergenceError, match="edss_plain did not pass the convergence gate.*allow_unconverged"):
        _report(files, tmp_path / "a")
    assert (tmp_path / "a" / "index.html").is_file()  # the report is written and says so
    result = _report(files, tmp_path / "b", allow_unconverged=True)
    assert [m.key for m in result.unconverged] == ["edss_plain"]
