"""An honest `fit` (#16): the convergence gate's verdict printed, exit code 3 when it fails (files still written),
the sampler's diagnostics in summary.csv, `--target-accept` with the outcome's default, and a --help and README
that say all of it."""

from __future__ import annotations

import re
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from test_diagnostics import fake_fit, undrawn_figures, write_fixture

from msc_bayes import cli, diagnostics, inference, results
from msc_bayes.cli import EXIT_UNCONVERGED, main
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import OUTCOMES
from msc_bayes.spec import load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path):
    return write_fixture(tmp_path)


@pytest.fixture
def stub(monkeypatch):
    """Sampling replaced by `fake_fit`; `stub.calls` records each call's settings, `stub.options` its keywords.
    A report writes its figure files without drawing them (`undrawn_figures`): these tests are of the gate."""

    class Stub:
        calls: list[dict]
        options: dict

        def __call__(self, spec, evidence, *, draws=None, tune=None, chains=None, seed=None, target_accept=None,
                     progress=False):
            self.calls.append({"tune": tune, "target_accept": target_accept})
            return fake_fit(spec, evidence, draws=draws, tune=tune, chains=chains, seed=seed,
                            target_accept=target_accept, **self.options)

    s = Stub()
    s.calls, s.options = [], {}
    monkeypatch.setattr(inference.ENGINE, "fit", s)
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: [])
    undrawn_figures(monkeypatch)
    return s


def fit_cli(files, out: Path, *extra: str, spec: int = 1) -> int:
    data = files[0]
    return main(["fit", str(files[spec]), "--data", str(data), "--out", str(out), *extra])


def read_summary(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv", index_col="quantity")


# --------------------------------------------------------------------------------------
# The gate on a real, deliberately short run
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_short_run_fails_the_gate_exit_3_and_every_file_is_written(files, tmp_path, capsys):
    out = tmp_path / "short"
    args = ("--draws", "20", "--tune", "20", "--chains", "2")
    assert fit_cli(files, out, *args) == EXIT_UNCONVERGED == 3
    captured = capsys.readouterr()
    assert "failed the convergence gate" in captured.out and "refitting with tune 40" in captured.out  # refit once
    assert "convergence gate: NOT PASSED" in captured.out
    worst = re.search(r"R-hat, worst: (\S+) \((\S+)\); must be at most 1\.01: FAILS", captured.out)
    assert re.search(r"bulk ESS, lowest: \d+ \(\S+\); must be at least 400: FAILS", captured.out)
    assert "edss_plain did not pass the convergence gate after a refit" in captured.err
    assert "--allow-unconverged" in captured.err and "Traceback" not in captured.err
    # the posterior is never lost: the refit's draws (tune doubled, target acceptance raised) and its summary
    tree = az.from_netcdf(out / "posterior.nc")
    assert tree["posterior"].sizes["draw"] == 20 and tree.attrs["tune"] == 40
    assert tree.attrs["target_accept"] == inference.raised_target_accept(OUTCOMES["edss_change"].target_accept)
    summary = read_summary(out)
    sampler = summary[summary["group"] == "sampler"]
    assert list(sampler.index) == list(diagnostics.SAMPLER_ROWS) and list(summary.index[-5:]) == list(sampler.index)
    assert sampler.loc["gate_passed", "mean"] == 0 and sampler.loc["draws", "mean"] == 40
    assert sampler.loc["divergences", "mean"] == int(tree["sample_stats"]["diverging"].values.sum())
    # the quantity rows first, as before: the worst R-hat printed is the summary's
    assert f"{summary.loc[worst.group(2), 'r_hat']:.3f}" == worst.group(1) and float(worst.group(1)) > 1.01

    accepted = tmp_path / "accepted"
    assert fit_cli(files, accepted, *args, "--allow-unconverged") == 0
    captured = capsys.readouterr()
    assert "convergence gate: NOT PASSED" in captured.out and "not reliable" in captured.err
    assert read_summary(accepted).loc["gate_passed", "mean"] == 0


# --------------------------------------------------------------------------------------
# The command (sampling stubbed)
# --------------------------------------------------------------------------------------


def test_a_fit_that_passes_prints_the_verdict_and_exits_0(files, stub, tmp_path, capsys):
    out = tmp_path / "fit"
    assert fit_cli(files, out) == 0
    text = capsys.readouterr().out
    assert "convergence gate: passed" in text and "divergent transitions: 0 of 1000 draws" in text
    assert len(stub.calls) == 1  # no refit
    assert read_summary(out).loc["gate_passed", "mean"] == 1


def test_divergences_fail_the_gate_after_one_refit(files, stub, tmp_path, capsys):
    stub.options = {"divergences": 3}
    out = tmp_path / "fit"
    assert fit_cli(files, out) == EXIT_UNCONVERGED
    captured = capsys.readouterr()
    assert "divergent transitions: 3 of 1000 draws; must be at most 0: FAILS" in captured.out
    assert "3 divergent transitions (of 1000 draws)" in captured.err
    first, second = stub.calls  # the same refit as the report's
    spec = load_spec(files[1])
    assert first == {"tune": None, "target_accept": spec.sampler.target_accept}
    assert second == {"tune": 2 * spec.sampler.tune, "target_accept": inference.raised_target_accept(0.99)}
    summary = read_summary(out)
    assert summary.loc["divergences", "mean"] == 3 and summary.loc["gate_passed", "mean"] == 0
    assert (out / "posterior.nc").is_file()


def test_the_report_exits_3_too(files, stub, tmp_path, capsys, monkeypatch):
    from msc_bayes.reporting import sections

    monkeypatch.setattr(sections, "sensitivity_for_report", lambda *a, **k: pytest.fail("no sensitivity here"))
    stub.options = {"divergences": 1}
    out = tmp_path / "run"
    code = main(["report", "--data", str(files[0]), "--models", str(files[2]), "--out", str(out), "--no-sensitivity"])
    assert code == EXIT_UNCONVERGED
    assert "did not pass the convergence gate" in capsys.readouterr().err
    summary = pd.read_csv(out / "ae_plain_summary.csv", index_col="quantity")
    assert summary.loc["divergences", "mean"] == 1 and summary.loc["gate_passed", "mean"] == 0


# --------------------------------------------------------------------------------------
# sampler_rows and the verdict in words, against the gate's own numbers
# --------------------------------------------------------------------------------------


def test_sampler_rows_are_the_gates_numbers_in_the_summarys_columns(files):
    data, edss_spec, _ = files
    fit = fake_fit(load_spec(edss_spec), load_evidence(data), divergences=2, sticky_energy=True)
    verdict = diagnostics.convergence(fit)
    rows = diagnostics.sampler_rows(fit)
    assert rows.index.name == "quantity" and list(rows.index) == list(diagnostics.SAMPLER_ROWS)
    assert list(rows.columns) == list(fit.summary().columns)
    assert (rows["group"] == "sampler").all()
    assert rows.drop(columns=["group", "mean"]).isna().all().all()  # blank in the CSV
    ebfmi = az.bfmi(fit.tree["sample_stats"].to_dataset()[["energy"]], sample_dims=["chain", "draw"])["energy"].values
    assert rows["mean"].to_dict() == {"draws": 1000, "divergences": 2, "max_treedepth_hits": 0,
                                      "ebfmi_min": float(np.min(ebfmi)), "gate_passed": 0}
    assert rows.loc["ebfmi_min", "mean"] < diagnostics.EBFMI_MIN  # the sticky energy shows
    table = diagnostics.summary_table(fit, verdict)
    assert table.index.name == "quantity" and len(table) == len(fit.summary()) + len(diagnostics.SAMPLER_ROWS)
    lines = diagnostics.verdict_lines(verdict)
    assert lines[0].startswith("convergence gate: NOT PASSED")
    assert any(line.startswith("  E-BFMI, lowest chain: ") and line.endswith("warning") for line in lines)


def test_the_verdict_names_the_worst_quantity_and_each_threshold(files):
    data, edss_spec, _ = files
    fit = fake_fit(load_spec(edss_spec), load_evidence(data), shift=1.0)
    verdict = diagnostics.convergence(fit)
    checked = verdict.table[~verdict.table["constant"]]
    worst = checked.loc[checked["r_hat"].idxmax()]
    lines = diagnostics.verdict_lines(verdict)
    assert lines[1] == (f"  R-hat, worst: {worst['r_hat']:.3f} ({worst['quantity']}); must be at most "
                        f"{diagnostics.RHAT_MAX:g}: FAILS")
    lowest = checked.loc[checked["ess_bulk"].idxmin()]
    assert lines[2].startswith(f"  bulk ESS, lowest: {lowest['ess_bulk']:.0f} ({lowest['quantity']}); "
                               f"must be at least {diagnostics.ESS_BULK_MIN:g}: ")
    assert lines[4].endswith(f"must be at most {diagnostics.MAX_DIVERGENCES}: ok")


# --------------------------------------------------------------------------------------
# target_accept: the outcome's default, the spec's, the command line's
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["edss_change", "adverse_events", "mri_activity", "toy"])
def test_a_spec_without_target_accept_or_tune_takes_the_outcomes(outcome):
    import dataclasses

    from msc_bayes import outcomes

    toy = outcomes.register(dataclasses.replace(OUTCOMES["adverse_events"], name="toy", target_accept=0.77, tune=123))
    try:
        spec = spec_from_dict({"outcome": outcome, "covariates": []})
        assert spec.sampler.target_accept == OUTCOMES[outcome].target_accept
        assert spec.sampler.tune == OUTCOMES[outcome].tune
        explicit = spec_from_dict({"outcome": outcome, "covariates": [], "sampler": {"target_accept": 0.8, "tune": 77}})
        assert (explicit.sampler.target_accept, explicit.sampler.tune) == (0.8, 77)
        assert spec_from_dict(spec.to_dict()) == spec  # the round trip keeps it
    finally:
        outcomes.unregister("toy")
    assert (toy.target_accept, toy.tune) == (0.77, 123)


def test_the_edss_defaults_are_0_99_and_500_and_the_bundled_specs_agree_with_their_outcomes():
    assert (OUTCOMES["edss_change"].target_accept, OUTCOMES["edss_change"].tune) == (0.99, 500)
    assert OUTCOMES["adverse_events"].tune == 1000
    for path in sorted((REPO / "models").glob("*.toml")):
        spec = load_spec(path)
        assert spec.sampler.target_accept == OUTCOMES[spec.outcome].target_accept, path
        assert spec.sampler.tune == OUTCOMES[spec.outcome].tune, path
        line = next(x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("target_accept"))
        assert "outcome's default" in line, path  # the comment says where the value comes from


@pytest.mark.parametrize("command", ["fit", "report"])
def test_target_accept_on_the_command_line_overrides_and_without_it_the_spec_decides(files, stub, tmp_path,
                                                                                     command, monkeypatch):
    from msc_bayes.reporting import sections

    monkeypatch.setattr(sections, "sensitivity_for_report", lambda *a, **k: pytest.fail("no sensitivity here"))
    data, edss_spec, _ = files

    def run(out, *extra):
        if command == "fit":
            return main(["fit", str(edss_spec), "--data", str(data), "--out", str(out), *extra])
        return main(["report", "--data", str(data), "--models", str(edss_spec), "--out", str(out),
                     "--no-sensitivity", *extra])

    assert run(tmp_path / "a", "--target-accept", "0.85") == 0
    assert run(tmp_path / "b") == 0
    assert [c["target_accept"] for c in stub.calls] == [0.85, load_spec(edss_spec).sampler.target_accept]
    assert load_spec(edss_spec).sampler.target_accept == 0.99  # the fixture's spec leaves it to the outcome


@pytest.mark.parametrize("value", ["0", "1", "1.0", "-0.5", "nan", "inf", "abc", "", "9e-1", "0,9", "０.９"])
def test_a_bad_target_accept_is_one_message_and_exit_2_before_any_work(files, stub, tmp_path, capsys, value):
    assert fit_cli(files, tmp_path / "fit", "--target-accept", value) == 2
    err = capsys.readouterr().err
    assert "--target-accept" in err and "Traceback" not in err
    assert stub.calls == [] and not (tmp_path / "fit").exists()


# --------------------------------------------------------------------------------------
# --help and the README's command list
# --------------------------------------------------------------------------------------


def _help(*args: str, capsys) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_the_top_level_help_describes_commands_outputs_and_exit_codes(capsys):
    text = _help(capsys=capsys)
    assert text.count("usage:") == 1 and "Command line:" not in text
    for command in ("validate", "describe", "fit", "report"):
        assert re.search(rf"^  {command} ", text, flags=re.MULTILINE), command
        assert f"python -m msc_bayes {command} " in text  # an example of each
    for written in ("posterior.nc", "summary.csv", "index.html", "report.md", "run.json", "summary_of_findings.csv"):
        assert written in text
    codes = dict(re.findall(r"^  (\d+) +(\S.*)$", text, flags=re.MULTILINE))
    assert {"0", "1", "2", "3", "130"} <= set(codes) and "convergence gate" in codes[str(EXIT_UNCONVERGED)]
    assert "143 SIGTERM" in codes["130"] and "141" in codes["130"]


@pytest.mark.parametrize("where", ["help", "README"])
def test_the_gate_and_defaults_stated_in_words_are_the_codes(capsys, where):
    """Help and README retype the thresholds (the CLI does not import the diagnostics to print its help)."""
    if where == "help":
        text = " ".join(_help(capsys=capsys).split() + _help("fit", capsys=capsys).split())
    else:
        text = " ".join(_readme_commands().split())
    t = diagnostics.thresholds()
    assert f"R-hat {'≤' if where == 'README' else '<='} {t['r_hat_max']:g}" in text
    assert f"bulk and tail ESS {'≥' if where == 'README' else '>='} {t['ess_bulk_min']:g}" in text
    assert t["ess_bulk_min"] == t["ess_tail_min"] and t["max_divergences"] == 0
    assert f"E-BFMI {'below' if where == 'README' else '<'} {t['ebfmi_min']:g}" in text
    assert f"raised {'to ' if where == 'README' else '('}{inference.REFIT_TARGET_ACCEPT:g}" in text
    defaults = {o.target_accept for o in OUTCOMES.values()}
    assert defaults == {0.9, 0.99}, "the help and README name 0.9 and edss_change's 0.99: update them"
    if where == "README":
        assert "`Outcome.target_accept`: 0.9;\n" in _readme_commands() or "0.9; `edss_change` 0.99" in text
    assert str(EXIT_UNCONVERGED) in text


def _readme_commands() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_lists_every_option_of_every_command():
    """The reverse of test_readme's synopsis check: no real option is missing from the README's command list."""
    parser = cli._parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public accessor
    section = _readme_commands()
    synopsis = re.search(r"```text\n(.*?)```", section, flags=re.DOTALL).group(1)
    listed = {}
    for line in synopsis.splitlines():
        words = line.split("#")[0].split()
        listed[words[3]] = set(re.findall(r"--[a-z-]+", line.split("#")[0]))
    assert set(listed) == set(commands)
    for name, sub in commands.items():
        real = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        assert real == listed[name], (name, real ^ listed[name])
        for option in real:  # and each is explained below the synopsis
            assert f"`{option}" in section.split("```", 2)[2], option


def test_summary_csv_columns_are_written_with_the_interval(files, stub, tmp_path):
    out = tmp_path / "fit"
    assert fit_cli(files, out) == 0
    header = (out / "summary.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    lower, upper = results.interval_columns()
    assert header[0] == "quantity" and lower in header and upper in header
