"""Progress of long work (msc_bayes.progress): concise log lines with counts and time left, the rich bar
on a (fake) terminal, sensitivity refits counted up, nutpie's draws reaching the meter, and the report's
lines in order (fake fits that report draws as nutpie would)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console
from test_diagnostics import fake_fit, write_fixture
from test_report import fake_report_sensitivity

from msc_bayes import inference, progress
from msc_bayes.cli import main
from msc_bayes.progress import LogProgress, TerminalProgress, time_left
from msc_bayes.reporting import sections as report_sections
from msc_bayes.sweep import Scenario, run_scenarios


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_at_most_one_per_period_with_percent_and_time_left():
    lines, clock = [], Clock()
    p = LogProgress(lines.append, every=20, clock=clock)
    with p.about("edss_change"):
        meter = progress.meter()
        for t, done in ((5, 100), (19.9, 300), (20, 400), (30, 500), (40, 600), (50, 1000)):
            clock.now = 100 + t
            meter.update(done, 1000)
        meter.close()
    # at 20 s 400 of 1000 draws: 30 s more at that rate; at 40 s, 600: 26.7 s; 1000 of 1000 is no line
    assert lines == ["    edss_change: sampling 40% (about 30 s left)",
                     "    edss_change: sampling 60% (about 27 s left)"]


def test_time_left_in_words():
    assert time_left(10.0, 0, 100) == "time left not known yet"
    assert time_left(10.0, 50, 100) == "about 10 s left"
    assert time_left(60.0, 25, 100) == "about 3 min left"  # 180 s


def test_nothing_reports_without_an_active_progress():
    assert progress.active() is None and progress.meter() is None
    with progress.scenario(1, 2, "a"):  # no error, nothing to say
        assert progress.meter() is None


def test_a_scenario_that_samples_is_announced_as_a_refit_with_its_count():
    lines = []
    p = LogProgress(lines.append)
    with p.about("edss_change", steps="sensitivity refit"):
        with progress.scenario(2, 11, "carry-over none"):
            pass  # answered without sampling: no line
        with progress.scenario(3, 11, "carry-over\nnone"):  # a name from the data: kept on one line
            progress.meter().close()
        assert p.label == "edss_change" and progress.active() is p
    assert progress.active() is None
    assert lines == [r"    edss_change: sensitivity refit 3/11 (carry-over\nnone) ..."]


def test_the_rich_bar_renders_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system="standard")
    p = TerminalProgress(lambda line: None, console=console)
    with p.about("edss_change"):
        meter = progress.meter()
        meter.update(1500, 8000)
        meter.bar.refresh()
        meter.close()
        meter.close()  # once is enough; again does nothing
        meter.update(8000, 8000)  # after close: ignored
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without terminal escapes
    assert "edss_change" in text and "1500/8000 draws" in text and "left" in text
    assert "\x1b[" in out.getvalue()  # drawn as a live display


@pytest.mark.slow
def test_nutpie_draws_reach_the_meter():
    """sampling.sample with an active progress: nutpie's callback sums the chains' draws."""
    import nutpie
    import pymc as pm

    from msc_bayes.inference import sampling

    class Recording(LogProgress):
        def _meter(self, name):
            self.updates, self.closed = [], False
            recording = self

            class M:
                def update(self, done, total):
                    recording.updates.append((done, total))

                def close(self):
                    recording.closed = True

            return M()

    with pm.Model() as model:
        pm.Normal("x", 0, 1, shape=2)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    settings = {"draws": 3000, "tune": 200, "chains": 2, "seed": 1, "target_accept": 0.8}
    p = Recording(lambda line: None)
    with p.about("toy"):
        tree = sampling.sample(compiled, None, settings, (), progress=False)
    assert tree["posterior"]["x"].shape[:2] == (2, 3000)
    assert p.closed and p.updates
    done, total = zip(*p.updates)
    assert set(total) == {2 * (200 + 3000)}
    assert list(done) == sorted(done) and done[-1] == total[-1]


# --------------------------------------------------------------------------------------
# The report's lines, with fake fits that report their draws
# --------------------------------------------------------------------------------------


@pytest.fixture
def ticking(monkeypatch):
    """`fake_fit` for sampling, reporting 4 x 100 draws to the active meter like nutpie's callback;
    every update of a log is a line (PROGRESS_LINE_SECONDS 0)."""
    monkeypatch.setattr(progress, "PROGRESS_LINE_SECONDS", 0.0)

    def fit(spec, evidence, **kw):
        meter = progress.meter()
        if meter is not None:
            for done in (200, 400):
                meter.update(done, 400)
            meter.close()
        return fake_fit(spec, evidence, **{k: v for k, v in kw.items() if k != "exclude_studies"})

    monkeypatch.setattr(inference.ENGINE, "fit", fit)
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: [])


def test_report_log_shows_fits_progress_and_refits_in_order(ticking, tmp_path, capsys, monkeypatch):
    data, edss_spec, ae_spec = write_fixture(tmp_path)

    def sensitivity(spec, evidence, **kw):  # three scenarios, each a fit: the refits the report counts
        scenarios = [Scenario(name, spec, evidence, {"seed": seed}) for seed, name in
                     enumerate(("rho ~ 0.2", "without <script>", "carry-over none"), 1)]
        run_scenarios(scenarios)
        return fake_report_sensitivity()

    monkeypatch.setattr(report_sections, "sensitivity_for_report", sensitivity)
    code = main(["report", "--data", str(data), "--models", str(edss_spec), str(ae_spec), "--out", str(tmp_path / "r")])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    sampling = r"sampling 50% \(about \d+ s left\)"
    expected = [r"\[1/2\] fitting edss_plain \(.*\) \.\.\.", rf"    edss_plain: {sampling}",
                r"\[1/2\] edss_plain: done in .*", r"\[2/2\] fitting ae_plain \(.*\) \.\.\.",
                rf"    ae_plain: {sampling}", r"\[2/2\] ae_plain: done in .*", "writing tables, figures and report ...",
                r"    edss_plain: sensitivity analyses \.\.\."]
    for i, name in enumerate(("rho ~ 0.2", "without <script>", "carry-over none"), 1):
        refit = re.escape(f"    edss_plain: sensitivity refit {i}/3 ({name})")
        expected += [refit + r" \.\.\.", refit + ": " + sampling]
    expected += [r"    edss_plain: sensitivity analyses done in .*"]
    shown = [line for line in lines if not line.startswith(("    ae_plain: sensitivity", "wrote", "report:"))]
    assert len(shown) >= len(expected), "\n".join(lines)
    for pattern, line in zip(expected, shown):
        assert re.fullmatch(pattern, line), f"{line!r} is not {pattern!r}:\n" + "\n".join(lines)
    assert np.all([not line.startswith("\x1b") for line in lines])  # no terminal bar in a log
