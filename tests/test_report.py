"""Tests for the `report` command: self-contained HTML, escaping, files, the convergence gate, atomicity.

Fast tests replace `inference.fit` (the default engine's) by `fake_fit` (numpy draws in a real fit's layout, see
tests/test_diagnostics.py) and run the whole command through `main`; one slow test samples.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from matplotlib import pyplot
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from test_diagnostics import HOSTILE, fake_fit, write_fixture

from msc_bayes import inference, results, viz
from msc_bayes.cli import main
from msc_bayes.diagnostics import predictive_checks, study_estimates
from msc_bayes.evidence import load_evidence
from msc_bayes.reporting import sections as report_sections
from msc_bayes.sensitivity import ReportSensitivity
from msc_bayes.sensitivity.report_policy import varied_text
from msc_bayes.spec import load_spec
from msc_bayes.viz import common as viz_common
from msc_bayes.viz import courses as viz_courses
from msc_bayes.viz import figures as viz_figures
from msc_bayes.viz import forest as viz_forest
from msc_bayes.viz import palette
from msc_bayes.viz import ppc as viz_ppc
from msc_bayes.viz import prior_posterior as viz_prior_posterior
from msc_bayes.viz import ranks as viz_ranks


class _Collector(HTMLParser):
    """Every start tag with its attributes, every text node, and the text of <p class=...>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.paragraphs: dict[str, list[str]] = {}
        self._p: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "p" and attrs.get("class"):
            self._p = attrs["class"]
            self.paragraphs.setdefault(self._p, []).append("")

    def handle_endtag(self, tag):
        if tag == "p":
            self._p = None

    def handle_data(self, data):
        self.text.append(data)
        if self._p:
            self.paragraphs[self._p][-1] += data


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


@pytest.fixture
def files(tmp_path):
    return write_fixture(tmp_path)


@pytest.fixture
def fake(monkeypatch):
    """Replace sampling by `fake_fit`; `fake.options` sets its keywords per call number, `fake.calls` records."""

    class Fake:
        calls: list[dict] = []
        options = {}  # call index (0-based) or "all" -> fake_fit keywords

        def __call__(self, spec, evidence, *, draws=None, tune=None, chains=None, seed=None, target_accept=None,
                     progress=False):
            kw = dict(self.options.get(len(self.calls), self.options.get("all", {})))
            self.calls.append({"spec": spec.name, "tune": tune, "target_accept": target_accept, "draws": draws})
            return fake_fit(spec, evidence, draws=draws, tune=tune, chains=chains, seed=seed,
                            target_accept=target_accept, progress=progress, **kw)

    f = Fake()
    f.calls, f.options = [], {}
    monkeypatch.setattr(inference.ENGINE, "fit", f)
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: [])  # nothing is compiled either
    f.sensitivity_calls = []

    def fake_sensitivity(spec, evidence, **kw):
        f.sensitivity_calls.append({"spec": spec.name, **kw})
        return fake_report_sensitivity()

    monkeypatch.setattr(report_sections, "sensitivity_for_report", fake_sensitivity)
    return f


def fake_report_sensitivity() -> ReportSensitivity:
    """A small result in the documented layout, with a hostile scenario name."""
    rows = []
    for family, scenario, shift in (("base", "base", 0.0), ("prior", "tau ~ HalfNormal(sigma=0.5)", 0.05),
                                    ("leave-one-out", f"without {HOSTILE}", -0.2)):
        for q, label in (("msc_effect", "pooled MSC effect (MSC minus control)"),
                         ("route_contrast[IT vs IV]", "IT vs IV contrast")):
            rows.append({"family": family, "scenario": scenario, "quantity": q, "label": label,
                         "median": -0.3 + shift, "eti95_lower": -0.9 + shift, "eti95_upper": 0.3 + shift,
                         "prob_below_0": 0.8, "shift": shift, "method": "reweight" if family == "prior" else "mcmc",
                         "notes": ""})
    psense = pd.DataFrame({"scenario": "base", "quantity": ["mu", "tau"], "prior_sensitivity": [0.01, 0.08],
                           "likelihood_sensitivity": [0.09, 0.07],
                           "diagnosis": ["✓", "potential prior-data conflict"], "threshold": 0.05,
                           "power_scaled": "mu, tau"})
    return ReportSensitivity(pd.DataFrame(rows), psense)


def run(files, out, *extra, both: bool = True) -> int:
    """`report` on the fixture: both specs (EDSS, then AE) or only the EDSS spec."""
    data, edss_spec, ae_spec = files
    specs = [str(edss_spec), str(ae_spec)] if both else [str(edss_spec)]
    return main(["report", "--data", str(data), "--models", *specs, "--out", str(out), *extra])


# --------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------


def test_html_is_self_contained_escaped_and_complete(files, fake, tmp_path, capsys):
    out = tmp_path / "reports" / "run-a"
    assert run(files, out) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    doc = parse(html)

    images = [a for t, a in doc.tags if t == "img"]
    assert len(images) >= 10
    for a in images:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [t for t, _ in doc.tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in doc.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("data:") or value.startswith("#"), (tag, name, value)
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html

    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any(HOSTILE in t for t in doc.text)  # shown as text
    assert "b" not in {t for t, _ in doc.tags}  # the spec name "EDSS <b>plain</b>" is text, not markup

    assert len(doc.paragraphs["methods"]) == 2 and len(doc.paragraphs["results"]) == 2
    for text in doc.paragraphs["methods"] + doc.paragraphs["results"]:
        assert "95%" in text and "ETI" in text
    edss_results = doc.paragraphs["results"][0]
    assert "The pooled mean EDSS change in MSC arms (no covariates) was " in edss_results
    assert "P(new-study change < −0.5) = " in edss_results
    assert "MSC minus control difference" in edss_results
    ae_results = doc.paragraphs["results"][1]
    assert "Prediction for a new study's MSC arm (no covariates), typical event type: risk " in ae_results
    assert "P(new-study risk > 5%) = " in ae_results
    assert "mu ~ Normal(mean 0, SD 1), pooled mean EDSS change in MSC arms at reference covariates" in \
        doc.paragraphs["methods"][0]
    assert "All 2 model(s) passed the convergence gate" in html
    assert "@media print" in html
    stdout = capsys.readouterr().out
    assert "[1/2] fitting edss_plain" in stdout and "[2/2] ae_plain: done in" in stdout


def test_run_folder_holds_tables_markdown_posteriors_and_provenance(files, fake, tmp_path):
    out = tmp_path / "run"
    assert run(files, out) == 0
    for key, n_units in (("edss_plain", 5), ("ae_plain", 5)):
        summary = pd.read_csv(out / f"{key}_summary.csv")
        assert {"quantity", "median", "eti95_lower", "eti95_upper", "r_hat", "ess_bulk"} <= set(summary.columns)
        diag = pd.read_csv(out / f"{key}_diagnostics.csv")
        assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(diag.columns)
        est = pd.read_csv(out / f"{key}_study_estimates.csv")
        assert len(est) == n_units and {"observed", "shrunken_median", "shrunken_eti95_lower"} <= set(est.columns)
        assert (out / f"{key}_ppc.csv").exists()
        tree = az.from_netcdf(out / f"{key}.nc")
        assert {"posterior", "derived", "sample_stats"} <= set(tree.children)

    md = (out / "report.md").read_text(encoding="utf-8")
    assert HOSTILE not in md and "\\<script\\>alert(1)\\</script\\>" in md  # backslash-escaped, no entities
    figures = [line.split("](", 1)[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert figures and all((out / f).is_file() for f in figures)
    assert "95% ETI" in md

    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["versions"]["pymc"] and meta["data"]["hash"] and meta["interval"] == "95% ETI"
    assert [m["key"] for m in meta["models"]] == ["edss_plain", "ae_plain"]
    for m in meta["models"]:
        assert m["seed"] == 20261121 and m["spec"]["outcome"] in ("edss_change", "adverse_events")
        assert m["timings"]["fit_seconds"] >= 0 and "report_seconds" in m["timings"]
        assert m["convergence"]["passed"] is True and len(m["attempts"]) == 1


def test_models_folder_is_expanded(files, fake, tmp_path):
    data, edss_spec, _ = files
    out = tmp_path / "run"
    assert main(["report", "--data", str(data), "--models", str(edss_spec.parent), "--out", str(out)]) == 0
    assert [c["spec"] for c in fake.calls] == ["Adverse events", "EDSS <b>plain</b>"]  # sorted file names


def test_default_out_is_a_timestamped_run_folder(files, fake, tmp_path, monkeypatch):
    data, edss_spec, _ = files
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--data", str(data), "--models", str(edss_spec)]) == 0
    assert main(["report", "--data", str(data), "--models", str(edss_spec)]) == 0  # the same second: a new folder
    runs = sorted((tmp_path / "reports").iterdir())
    assert len(runs) == 2 and all(re.fullmatch(r"run-\d{8}T\d{6}Z-[0-9a-f]{6}", r.name) for r in runs)
    assert all((r / "index.html").exists() for r in runs)


def test_bad_models_argument_is_one_clean_error(files, tmp_path, capsys):
    data, _, _ = files
    assert main(["report", "--data", str(data), "--models", str(tmp_path / "nope.toml")]) == 2
    assert "expected a model spec file or a folder of specs" in capsys.readouterr().err


def test_a_spec_that_does_not_fit_the_evidence_fails_before_any_sampling(files, fake, tmp_path, capsys):
    data, edss_spec, _ = files
    bad = tmp_path / "bad.toml"
    bad.write_text('outcome = "edss_change"\ncovariates = ["no_such_column"]\n', encoding="utf-8")
    out = tmp_path / "reports" / "run"
    assert main(["report", "--data", str(data), "--models", str(edss_spec), str(bad), "--out", str(out)]) == 2
    assert fake.calls == [] and not out.parent.exists()
    assert capsys.readouterr().err.startswith("error: ")


# --------------------------------------------------------------------------------------
# Convergence gate
# --------------------------------------------------------------------------------------


def test_refit_settings():
    assert inference.raised_target_accept(0.9) == 0.99
    assert inference.raised_target_accept(0.99) == 0.995


def test_unconverged_model_fails_the_command_but_the_report_says_why(files, fake, tmp_path, capsys):
    fake.options = {"all": {"shift": 1.0}}
    out = tmp_path / "run"
    assert run(files, out, both=False) == 3  # cli.EXIT_UNCONVERGED
    err = capsys.readouterr().err
    assert "did not pass the convergence gate" in err and "--allow-unconverged" in err
    # refit once: tune doubled (the spec's 100), target acceptance raised (edss_change's default 0.99)
    assert len(fake.calls) == 2
    first, second = fake.calls
    assert first["tune"] is None and second["tune"] == 200 and second["target_accept"] == 0.995
    html = (out / "index.html").read_text(encoding="utf-8")
    top = html[: html.index("<section")]
    assert "NOT CONVERGED" in top and "R-hat above 1.01" in top
    assert "EDSS &lt;b&gt;plain&lt;/b&gt; (edss_plain) did not pass the convergence gate" in top
    assert "NOT CONVERGED" in (out / "report.md").read_text(encoding="utf-8").split("## ", 1)[0]
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [len(m["attempts"]) for m in meta["models"]] == [2]
    assert meta["models"][0]["convergence"]["passed"] is False


def test_allow_unconverged_exits_zero(files, fake, tmp_path):
    fake.options = {"all": {"divergences": 2}}
    out = tmp_path / "run"
    assert run(files, out, "--allow-unconverged", both=False) == 0
    top = (out / "index.html").read_text(encoding="utf-8").split("<section", 1)[0]
    assert "NOT CONVERGED" in top and "2 divergent transitions" in top and "--allow-unconverged" in top


def test_a_refit_that_converges_passes(files, fake, tmp_path):
    fake.options = {0: {"divergences": 1}}  # only the very first fit fails
    out = tmp_path / "run"
    assert run(files, out) == 0
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [len(m["attempts"]) for m in meta["models"]] == [2, 1]
    assert meta["models"][0]["attempts"][0]["reasons"] == ["1 divergent transition (of 1000 draws)"]
    methods = parse((out / "index.html").read_text(encoding="utf-8")).paragraphs["methods"][0]
    assert "failed the convergence gate (1 divergent transition" in methods


# --------------------------------------------------------------------------------------
# Atomicity
# --------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_figure_leaves_the_earlier_report_untouched_and_keeps_the_posteriors(files, fake, tmp_path,
                                                                                    monkeypatch):
    out = tmp_path / "reports" / "run-a"
    assert run(files, out) == 0
    before = _snapshot(out)

    def broken(fit, *, estimates=None, evidence=None):
        raise RuntimeError("figure broke")

    monkeypatch.setattr(viz_figures, "forest", broken)
    with pytest.raises(RuntimeError, match="figure broke"):
        run(files, out, "--overwrite")
    assert _snapshot(out) == before
    siblings = sorted(p.name for p in out.parent.iterdir())
    assert siblings == ["run-a", "run-a.failed"]  # no partial folder
    failed = out.parent / "run-a.failed"
    assert sorted(p.name for p in failed.glob("*.nc")) == ["ae_plain.nc", "edss_plain.nc"]
    tree = az.from_netcdf(failed / "edss_plain.nc")  # sampled before plotting: not lost
    assert "posterior" in tree.children
    assert "figure broke" in (failed / "README.txt").read_text(encoding="utf-8")


def test_failure_before_any_sampling_leaves_nothing(files, fake, tmp_path, monkeypatch):
    def broken(spec, evidence, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference.ENGINE, "fit", broken)
    out = tmp_path / "reports" / "run-b"
    assert run(files, out) == 130  # Ctrl-C: one line, the usual exit code
    assert list(out.parent.iterdir()) == []


def test_sensitivity_section_for_the_edss_model(files, fake, tmp_path):
    out = tmp_path / "run"
    assert run(files, out) == 0
    assert [c["spec"] for c in fake.sensitivity_calls] == ["EDSS <b>plain</b>"]  # EDSS only, not AE
    call = fake.sensitivity_calls[0]
    assert call["prior_method"] == "reweight" and call["refit_unreliable"] == "same-family"
    assert call["loo_method"] == "reweight"
    assert "threshold" not in call["families"]
    html = (out / "index.html").read_text(encoding="utf-8")
    doc = parse(html)
    assert "Sensitivity analyses" in doc.text
    figure = [a for t, a in doc.tags if t == "img" and a["alt"].startswith("Sensitivity")]
    assert len(figure) == 1 and figure[0]["src"].startswith("data:image/png;base64,")
    assert f"without {HOSTILE}" in " ".join(doc.text) and HOSTILE not in html  # escaped, shown as text
    assert "potential prior-data conflict" in html and "95% ETI lower" in html
    assert "Varied, each with the base fit" in doc.paragraphs["sensitivity"][0]
    assert len(pd.read_csv(out / "edss_plain_sensitivity.csv")) == 6
    assert list(pd.read_csv(out / "edss_plain_psense.csv")["quantity"]) == ["mu", "tau"]
    assert (out / "figures" / "edss_plain_sensitivity.png").exists()
    assert not (out / "ae_plain_sensitivity.csv").exists()
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "### Sensitivity analyses" in md and "(figures/edss_plain_sensitivity.png)" in md and HOSTILE not in md


def test_varied_text_says_how_studies_were_left_out():
    def table(methods):
        return pd.DataFrame({"family": ["base"] + ["leave-one-out"] * len(methods),
                             "scenario": ["base"] + [f"without s{i}" for i in range(len(methods))],
                             "method": ["mcmc", *methods]})

    text = varied_text(table(["reweight", "mcmc", "reweight"]), [])
    assert "each of 3 studies left out in turn (by importance reweighting of the base fit" in text
    assert "with an exact zero-weight refit where Pareto k > 0.7: 1 study)" in text
    assert "(exact zero-weight refits)" in varied_text(table(["mcmc", "mcmc"]), [])


def test_no_sensitivity_omits_the_section(files, fake, tmp_path):
    out = tmp_path / "run"
    assert run(files, out, "--no-sensitivity") == 0
    assert fake.sensitivity_calls == []
    assert "Sensitivity analyses" not in (out / "index.html").read_text(encoding="utf-8")
    assert "Sensitivity analyses" not in (out / "report.md").read_text(encoding="utf-8")
    assert not (out / "edss_plain_sensitivity.csv").exists()


def test_failed_sensitivity_fails_the_report(files, fake, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("sensitivity broke")

    monkeypatch.setattr(report_sections, "sensitivity_for_report", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="sensitivity broke"):
        run(files, out)
    assert not out.exists() and (tmp_path / "run.failed" / "edss_plain.nc").exists()


# --------------------------------------------------------------------------------------
# End to end, with sampling
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_end_to_end_with_sampling(tmp_path):
    data, edss_spec, _ = write_fixture(tmp_path)
    out = tmp_path / "run"
    code = main(["report", "--data", str(data), "--models", str(edss_spec), "--out", str(out), "--draws", "100",
                 "--tune", "100", "--chains", "2", "--allow-unconverged"])
    assert code == 0
    doc = parse((out / "index.html").read_text(encoding="utf-8"))
    assert len([t for t, _ in doc.tags if t == "img"]) >= 4
    tree = az.from_netcdf(out / "edss_plain.nc")
    assert tree["posterior"].sizes["chain"] == 2 and tree["posterior"].sizes["draw"] == 100
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["models"][0]["attempts"][0]["draws"] == 100
    # the real sensitivity section (no compile: reweighting and refits of the base model)
    sens = pd.read_csv(out / "edss_plain_sensitivity.csv")
    assert {"base", "prior", "leave-one-out"} <= set(sens["family"]) and "threshold" not in set(sens["family"])
    assert (sens.loc[sens["family"] == "prior", "method"] == "reweight").any()
    assert (out / "edss_plain_psense.csv").exists() and "sensitivity_seconds" in meta["models"][0]["timings"]


def test_a_spec_file_named_with_markup_is_escaped_in_every_format(files, fake, tmp_path):
    data, edss_spec, _ = files
    hostile = tmp_path / 'x"><img src=x onerror=alert(8)>.toml'
    hostile.write_text(edss_spec.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["report", "--data", str(data), "--models", str(hostile), "--out", str(out), "--no-sensitivity"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "onerror=alert(8)>" not in html
    assert not re.search(r"(?<!\\)[<>]", md)  # every < and > in report.md backslash-escaped: never HTML
    assert 'x"\\>\\<img src=x onerror=alert(8)\\>.nc' in md  # shown as text
    assert "(figures/x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%288%29%3E_forest.png)" in md  # a path, encoded
    assert (out / 'x"><img src=x onerror=alert(8)>.nc').exists()
    assert not [a for t, a in parse(html).tags if t == "img" and not a["src"].startswith("data:image/png;base64,")]


# --------------------------------------------------------------------------------------
# Figures (fake fits: no MCMC)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_fits(tmp_path_factory):
    """fake_fit of the fixture's two specs (EDSS, adverse events) with their evidence."""
    data, edss_spec, ae_spec = write_fixture(tmp_path_factory.mktemp("figures"))
    evidence = load_evidence(data)
    return {path.stem: (fake_fit(load_spec(path), evidence), evidence) for path in (edss_spec, ae_spec)}


def design_fit(*, risk: bool):
    """A fit-like object whose derived group holds the design quantities (route contrasts, courses, risks)."""
    rng = np.random.default_rng(3)
    C, D = 2, 50
    routes, courses, events = ["IV", "IT", "IV$x"], [1.0, 2.0, 3.0], ["fever", "serious_ae"]
    derived = {"route_contrast": rng.normal(size=(C, D, 2))}
    if risk:
        derived |= {"risk_arm": rng.uniform(size=(C, D, 4)), "risk_new": rng.uniform(size=(C, D)),
                    "risk_new_event": rng.uniform(size=(C, D, 2)), "risk_by_route": rng.uniform(size=(C, D, 3))}
    else:
        derived |= {"change_by_design": rng.normal(size=(C, D, 3, 3)),
                    "new_study_by_design": rng.normal(size=(C, D, 3, 3))}
    tree = from_dict({"posterior": {"mu": rng.normal(size=(C, D))}, "derived": derived},
                     dims={"route_contrast": ["contrast"], "change_by_design": ["route", "courses"],
                           "new_study_by_design": ["route", "courses"], "risk_arm": ["arm"],
                           "risk_new_event": ["event"], "risk_by_route": ["route"]},
                     coords={"contrast": ["IT vs IV", "IV$x vs IV"], "route": routes, "courses": courses,
                             "event": events})
    units = pd.DataFrame({"route": ["IV", "IT", "IV"], "courses": [1, pd.NA, pd.NA], "courses_min": [pd.NA, 1, pd.NA],
                          "courses_max": [pd.NA, 2, pd.NA], "group": ["msc", "msc", "control"]})  # arms for the courses
    return SimpleNamespace(tree=tree, spec=SimpleNamespace(outcome="adverse_events" if risk else "edss_change"),
                           prepared=SimpleNamespace(units=units))


def _panels(fig: Figure) -> int:
    return sum(ax.axison for ax in fig.axes)


def _colours(fig: Figure) -> set[str]:
    """Every colour of the lines, markers and filled shapes of a figure, as hex."""
    out = set()
    for ax in fig.axes:
        for line in ax.lines:
            out.add(to_hex(line.get_color()))
        for c in ax.collections:
            out.update(to_hex(x) for x in c.get_facecolor() if x[3] > 0)
            out.update(to_hex(x) for x in c.get_edgecolor() if x[3] > 0)
        out.update(to_hex(p.get_facecolor()) for p in ax.patches)
    return out


def _expected_panels(fit, key: str, checks: pd.DataFrame) -> int:
    n_hyper = len(viz_common.hyperparameters(fit))
    if key == "prior_posterior":
        return n_hyper
    if key == "ranks":
        return min(n_hyper, 12)
    if key == "courses":
        da = results.variable(fit, "change_by_design")
        return da.sizes["route"] if "route" in da.dims else 1
    if key == "event_risks":
        return 1 + results.has(fit, "risk_by_route")
    if key == "ppc":
        return checks["check"].nunique()
    if key == "forest":  # an event model's MSC-vs-control odds ratio has a panel of its own
        return 1 + (results.has(fit, "risk_arm") and results.has(fit, "msc_effect"))
    return 1


@pytest.mark.parametrize("model, keys", [
    ("edss_plain", ["forest", "tau", "prior_posterior", "ppc", "ranks"]),
    ("ae_plain", ["forest", "tau", "prior_posterior", "event_risks", "ppc", "ranks"]),
])
def test_every_figure_of_a_fit_renders_with_its_panels(plain_fits, model, keys):
    fit, evidence = plain_fits[model]
    checks = predictive_checks(fit, evidence=evidence)
    ctx = {"estimates": study_estimates(fit, evidence=evidence), "checks": checks}
    specs = viz.figures_for(fit, checks=checks)
    assert [s.key for s in specs] == keys
    for spec in specs:
        fig = spec.draw(fit, ctx)
        assert isinstance(fig, Figure), spec.key
        assert _panels(fig) == _expected_panels(fit, spec.key, checks), spec.key
        assert viz.to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
        assert spec.title and spec.caption
    assert pyplot.get_fignums() == []  # nothing left in pyplot's state, nothing shown


@pytest.mark.parametrize("risk, keys, panels", [
    (False, ["route_contrasts", "courses"], {"route_contrasts": 1, "courses": 3}),
    (True, ["route_contrasts", "event_risks"], {"route_contrasts": 1, "event_risks": 2}),
])
def test_design_figures_render_one_panel_per_route_or_table(risk, keys, panels):
    fit = design_fit(risk=risk)
    specs = [s for s in viz_figures.FIGURES if s.key in keys]
    assert [s.key for s in specs if s.applies(fit)] == keys
    for spec in specs:
        fig = spec.draw(fit, {})
        assert isinstance(fig, Figure) and _panels(fig) == panels[spec.key], spec.key
        titles = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
        assert palette.SHRUNK in _colours(fig) and any("95% ETI" in s for s in titles)
        ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()] + titles
        assert not [s for s in ticks if "$" in s and "\\$" not in s]  # a $ in a name stays literal
        viz.to_png(fig)
    if not risk:
        assert {palette.SHRUNK, palette.PREDICTED} <= _colours(viz_courses.courses_curve(fit))


def test_figures_without_a_check_drop_the_ppc(plain_fits):
    fit, _ = plain_fits["edss_plain"]
    assert "ppc" not in [s.key for s in viz.figures_for(fit, checks=pd.DataFrame())]
    with pytest.raises(ValueError, match="no posterior predictive check"):
        viz_ppc.ppc(fit, checks=pd.DataFrame(columns=["check"]))


def test_forest_plot_draws_observed_shrunken_pooled_and_predicted_in_the_one_palette(plain_fits):
    fit, evidence = plain_fits["edss_plain"]
    estimates = study_estimates(fit, evidence=evidence)
    fig = viz_forest.forest(fit, estimates=estimates)
    ax = fig.axes[0]  # the plot; then the text columns (axis off)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[len(estimates):] == ["Pooled: MSC arms", "New study's MSC arm (prediction)",
                                       "MSC minus control (difference)"]
    assert "95% ETI" in ax.get_title()
    assert {palette.OBSERVED, palette.SHRUNK, palette.POOLED, palette.PREDICTED} <= _colours(fig)


def test_rank_plot_is_arviz_plots_per_chain_with_the_package_interval(plain_fits):
    fit, _ = plain_fits["edss_plain"]
    fig = viz_ranks.rank_plot(fit, max_panels=3)
    labels = [label for label, _, _ in viz_common.hyperparameters(fit)[:3]]
    shown = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in shown] == labels
    for ax in shown:
        assert {to_hex(line.get_color()) for line in ax.lines} == set(palette.CHAINS[:4])  # one line per chain
        assert any(t.get_text().startswith("p=") and "α=0.05" in t.get_text() for t in ax.texts)
    one_chain = fake_fit(fit.spec, plain_fits["edss_plain"][1], chains=1)  # no multi-chain test: the band
    assert _panels(viz_ranks.rank_plot(one_chain, max_panels=2)) == 2
    assert pyplot.get_fignums() == []


def test_prior_posterior_panels_are_the_spec_priors_over_the_posteriors(plain_fits):
    fit, _ = plain_fits["ae_plain"]
    items = viz_common.hyperparameters(fit)
    fig = viz_prior_posterior.prior_posterior(fit)
    shown = [ax for ax in fig.axes if ax.axison]
    for ax, (label, x, prior) in zip(shown, items):
        assert ax.get_title().startswith(f"{label}: ") and ax.get_xlabel() == f"prior {prior}"
        assert x.shape == (results.group(fit, "posterior").sizes["chain"], results.group(fit, "posterior").sizes["draw"])
    assert len(shown) == len(items)
    assert {palette.SHRUNK, palette.POOLED} <= _colours(fig)


def test_plain_keeps_dollars_literal():
    assert viz.plain("cost $5 and $x$") == r"cost \$5 and \$x\$"
