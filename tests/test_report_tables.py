"""The report's readable tables and the summary of findings, on fake fits and a fake SummaryOfFindings (no MCMC).

Labels with units, numbers rounded to what they support, one row per distinct quantity, probability indicators as
probabilities, priors as a reader reads them (unused ones not listed), plurals, EDSS first, the summary section
first in both pages, and report.md backslash-escaped (no HTML entities, no markup from data).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import markdown_it
import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from test_diagnostics import HOSTILE, fake_fit, write_fixture

from msc_bayes import outcomes
from msc_bayes.evidence import load_evidence
from msc_bayes.findings.base import (
    Certainty,
    Downgrade,
    Finding,
    Interval,
    LeftOut,
    SummaryOfFindings,
)
from msc_bayes.numbers import interval, plural, prob, risk
from msc_bayes.reporting import render_html, render_markdown
from msc_bayes.reporting.context import report_context
from msc_bayes.reporting.methods import (
    gate_text,
    methods_paragraph,
    prior_text,
    priors_text,
)
from msc_bayes.reporting.views import (
    key_estimates,
    left_out_lines,
    sensitivity_view,
    summary_view,
)
from msc_bayes.results import interval_columns, quantile_probs
from msc_bayes.spec import Prior, load_spec

LO, HI = interval_columns()


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    data, edss_spec, ae_spec = write_fixture(tmp_path_factory.mktemp("tables"))
    evidence = load_evidence(data)
    return {"evidence": evidence, "edss": fake_fit(load_spec(edss_spec), evidence),
            "ae": fake_fit(load_spec(ae_spec), evidence)}


def _rows(table: dict) -> dict[str, list[str]]:
    """Rows of the key table by their variable (the last column)."""
    return {r[-1]: r for r in table["rows"]}


# --------------------------------------------------------------------------------------
# The key-estimates table
# --------------------------------------------------------------------------------------


def test_key_table_labels_every_row_with_unit_and_keeps_the_name_apart(fixture):
    fit = fixture["edss"]
    table = key_estimates(fit.summary(), fit)
    assert table["columns"][0] == "quantity" and table["columns"][-1] == "variable"
    labels = outcomes.get("edss_change").variable_labels
    rows = _rows(table)
    assert rows["mu"][0] == labels["mu"] and "negative = improvement" in rows["mu"][0]
    assert rows["sigma_mu"][0].startswith("Log of the typical within-arm SD")  # not read as a (negative) SD
    for name, row in rows.items():
        assert row[0] != name, f"{name} has no label"


def test_key_table_rounds_to_what_the_numbers_support(fixture):
    edss, ae = fixture["edss"], fixture["ae"]
    summary = edss.summary()
    mu = _rows(key_estimates(edss.summary(), edss))["mu"]
    r = summary.loc["mu"]
    expected = f"{r['median']:.2f} ({r[LO]:.2f} to {r[HI]:.2f})".replace("-", "−")
    assert mu[1] == expected  # EDSS points: 2 decimals
    assert re.fullmatch(r"\d\.\d\d", mu[2]) and re.fullmatch(r"\d+", mu[3]) and re.fullmatch(r"\d+", mu[4])
    ae_rows = _rows(key_estimates(ae.summary(), ae))
    r = ae.summary().loc["risk_pooled"]
    assert ae_rows["risk_pooled"][1] == f"{risk(r['median'])} ({risk(r[LO])} to {risk(r[HI])})"
    assert ae_rows["risk_pooled"][1].count("%") == 3
    r = ae.summary().loc["msc_effect"]
    odds = np.exp(r["median"])
    assert f"odds ratio {odds:.2f}" in ae_rows["msc_effect"][1]  # a log odds ratio also as its odds ratio


def test_number_formats():
    assert risk(0.00996) == "1.0%" and risk(0.0042) == "0.42%" and risk(0.252) == "25.2%"
    assert prob(0.12) == "0.12" and prob(0.995) == "0.995" and prob(0.004) == "0.004"
    assert interval(-0.35, -0.61, -0.01) == "−0.35 (−0.61 to −0.01)"
    assert interval(0.014, -0.0044, 0.038) == "0.014 (−0.0044 to 0.038)"  # every end below 0.1: 2 significant
    assert interval(0.0, -0.004, 0.004) == "0 (−0.004 to 0.004)"
    assert interval(-0.0001, -0.5, 0.5) == "0.00 (−0.50 to 0.50)"  # no "−0.00"


def _route_fit():
    """A fit-like object whose posterior beta[route[IT]] and derived route_contrast[IT vs IV] are the same draws."""
    rng = np.random.default_rng(5)
    C, D = 2, 200
    beta = rng.normal(size=(C, D, 2))
    tree = from_dict({"posterior": {"mu": rng.normal(size=(C, D)), "beta": beta},
                      "derived": {"route_contrast": beta[..., :1].copy(), "p_new_below": (rng.uniform(size=(C, D, 1))
                                                                                          < 0.3).astype(float)}},
                     dims={"beta": ["covariate"], "route_contrast": ["contrast"], "p_new_below": ["threshold"]},
                     coords={"covariate": ["route[IT]", "courses"], "contrast": ["IT vs IV"], "threshold": [-0.5]})
    fit = SimpleNamespace(tree=tree, spec=SimpleNamespace(outcome="edss_change", priors={}))  # no coefficient prior
    rows = []
    lo, hi = quantile_probs()
    for group, name, cells in (("posterior", "mu", {"mu": tree["posterior"]["mu"].values}),
                               ("posterior", "beta", {"beta[route[IT]]": beta[..., 0], "beta[courses]": beta[..., 1]}),
                               ("derived", "route_contrast", {"route_contrast[IT vs IV]": beta[..., 0]}),
                               ("derived", "p_new_below", {"p_new_below[-0.5]":
                                                           tree["derived"]["p_new_below"].values[..., 0]})):
        for q, x in cells.items():
            rows.append({"quantity": q, "group": group, "mean": x.mean(), "median": np.median(x),
                         LO: np.quantile(x, lo), HI: np.quantile(x, hi), "r_hat": 1.0, "ess_bulk": 400.0,
                         "ess_tail": 400.0})
    return fit, pd.DataFrame(rows)


def test_the_same_draws_are_one_row_and_indicators_are_probabilities():
    fit, summary = _route_fit()
    table = key_estimates(summary, fit)
    names = [r[-1] for r in table["rows"]]
    assert names == ["mu", "beta[courses]", "route_contrast[IT vs IV]"]  # beta[route[IT]] is the contrast: once
    assert "Route contrast IT vs IV" in _rows(table)["route_contrast[IT vs IV]"][0]
    assert not [n for n in names if n.startswith("p_")]
    p = summary.set_index("quantity").loc["p_new_below[-0.5]", "mean"]
    assert table["probabilities"] == [f"P(new-study change < −0.5) = {prob(p)}"]


def test_fake_fit_indicators_are_in_words(fixture):
    fit = fixture["edss"]
    table = key_estimates(fit.summary(), fit)
    means = fit.summary()["mean"]
    assert table["probabilities"] == [f"P(new-study change < −0.5) = {prob(means['p_new_below[-0.5]'])}",
                                      f"P(new-study change < 0) = {prob(means['p_new_below[0]'])}"]


# --------------------------------------------------------------------------------------
# Priors, plurals
# --------------------------------------------------------------------------------------


def test_priors_are_readable_with_3_significant_digits():
    assert prior_text(Prior("Normal", {"mu": math.log(0.7), "sigma": 0.5})) == "Normal(mean −0.357, SD 0.5)"
    assert prior_text(Prior("HalfNormal", {"sigma": 1.5})) == "HalfNormal(σ 1.5)"
    assert prior_text(Prior("Beta", {"alpha": 4, "beta": 2})) == "Beta(α 4, β 2)"
    assert (prior_text(Prior("TruncatedNormal", {"mu": 0, "sigma": 0.5, "lower": -1, "upper": 1}))
            == "TruncatedNormal(μ 0, σ 0.5) on [−1, 1]")
    assert prior_text(Prior("Normal", {"mu": 1 / 3, "sigma": 2 / 3})) == "Normal(mean 0.333, SD 0.667)"


def test_unused_priors_are_not_listed(fixture):
    fit = fixture["ae"]  # the fixture's AE model has no covariates: its spec's beta prior sets nothing
    assert "beta" in fit.spec.priors and "beta" not in fit.tree["posterior"]
    text = priors_text(fit)
    assert "beta ~" not in text and "Not used" not in text and "not used" not in text
    assert "mu ~ Normal(mean −2, SD 2), pooled logit probability" in text
    assert not re.search(r"\d{5,}", text)  # no unrounded numbers


def test_plurals():
    assert plural(1, "divergent transition") == "1 divergent transition"
    assert plural(0, "divergent transition") == "0 divergent transitions"
    assert plural(1, "study", "studies") == "1 study" and plural(3, "study", "studies") == "3 studies"
    assert re.search(r"\b0 divergent transitions\b", gate_text())


def test_methods_write_counts_in_the_right_number(fixture):
    fit = fixture["edss"]
    attempt = SimpleNamespace(chains=4, draws=250, tune=250, target_accept=0.9, seconds=1.0, passed=True,
                              reasons=())
    text = methods_paragraph(fit, (attempt,))
    assert not re.search(r"\b1 (arms|studies|modelled units|divergent transitions)\b", text)
    assert not re.search(r"\b([02-9]|\d\d+) (arm|study|modelled unit)\b[^s]", text)


# --------------------------------------------------------------------------------------
# The summary of findings
# --------------------------------------------------------------------------------------


def _finding(outcome: str, label: str, quantity: str, *, scale="num", mostly_prior=False, grade="low") -> Finding:
    certainty = Certainty(grade, "high", "randomised & controlled <evidence>", (
        Downgrade("imprecision", 1, f"interval spans benefit & harm {HOSTILE}"),
        Downgrade("publication bias", 0, "not assessable below 10 studies")))
    return Finding(
        outcome=outcome, outcome_label=label, quantity=quantity, label=f"{quantity} label <x>",
        unit="EDSS points (negative = improvement)" if scale == "num" else "risk", scale=scale,
        estimate=Interval(-0.35, -0.61, -0.01) if scale != "risk" else Interval(0.25, 0.086, 0.5),
        direction="favours MSC (P = 0.98)", p_benefit=0.98 if scale != "risk" else None,
        benefit_text="MSC better than control", p_important=0.31, important_text="benefit > 0.5 points",
        bayes_factor=3.2 if scale != "risk" else None,
        bayes_factor_text="BF10 = 3.2: moderate evidence for an effect" if scale != "risk" else "",
        tau=Interval(0.28, 0.03, 0.67), i2=Interval(0.35, 0.01, 0.8),
        prediction=Interval(-0.07, -0.98, 0.61) if scale != "risk" else None, studies=("petrou2020",), arms=2,
        patients=48, rests_on="1 randomised crossover study, 2 arms, 48 patients",
        dominance="without petrou2020 this is the prior", contraction=0.1 if mostly_prior else 0.8,
        mostly_prior=mostly_prior, certainty=certainty)


def fake_summary() -> SummaryOfFindings:
    """Adverse events listed first: the view puts EDSS first."""
    return SummaryOfFindings(
        findings=(_finding("adverse_events", "Adverse events", "msc_effect", scale="log_odds_ratio",
                           mostly_prior=True, grade="very low"),
                  _finding("edss_change", "EDSS change", "msc_effect"),
                  _finding("mri_activity", "MRI activity", "risk_pooled", scale="risk"),
                  _finding("edss_change", "EDSS change", "mu")),
        text="MSC may reduce EDSS worsening < 0.5 points & more; " + HOSTILE,
        left_out=(LeftOut("alpha2019", "all", "edss_change", "no EDSS numbers in the sources read <b>"),),
        rules="Start high for randomised <designs> & downgrade ...", notes=("publication bias not assessable",))


def test_summary_view_orders_edss_first_and_writes_every_column():
    view = summary_view(fake_summary())
    assert [t["outcome"] for t in view["tables"]] == ["edss_change", "adverse_events", "mri_activity"]
    edss = view["tables"][0]
    assert [f["variable"] for f in edss["findings"]] == ["msc_effect", "mu"]
    f = edss["findings"][0]
    assert f["estimate"] == "−0.35 (−0.61 to −0.01)" and f["direction"] == "favours MSC (P = 0.98)"
    assert f["p_benefit"] == "0.98 (MSC better than control)" and f["p_important"].startswith("0.31")
    assert f["bayes_factor"].startswith("BF10 = 3.2")
    assert f["heterogeneity"] == ["τ 0.28 (0.03 to 0.67)", "I² 35% (1% to 80%)", "new study −0.07 (−0.98 to 0.61)"]
    assert f["grade"] == "low" and f["downgrades"][0]["short"] == "imprecision −1"
    assert f["downgrades"][0]["text"].startswith("imprecision (−1): interval spans benefit")
    assert f["cells"][-1] == "low; imprecision −1"  # the reasons are listed under the table (report.md)
    assert any(c.startswith("publication bias (not downgraded)") for c in f["considered"])
    assert "without petrou2020 this is the prior" in f["rests_on"]
    ae = view["tables"][1]["findings"][0]
    assert ae["mostly_prior"] and "(mostly prior: not a finding)" in ae["cells"][0]
    assert ae["estimate"].startswith(f"OR {math.exp(-0.35):.2f}")  # a log odds ratio as its odds ratio
    mri = view["tables"][2]["findings"][0]
    assert mri["estimate"] == "25.0% (8.6% to 50.0%)" and mri["p_benefit"] == "—" and mri["bayes_factor"] == "—"
    assert len(edss["table"]["rows"][0]) == len(edss["table"]["columns"])
    assert view["left_out"] == ["alpha2019 (all): EDSS change: no EDSS numbers in the sources read <b>"]  # no n
    assert summary_view(None) is None


def test_arms_left_out_are_one_line_per_study_largest_first_without_source_notes():
    rows = (LeftOut("small2010", "all", "edss_change", "no EDSS numbers in the sources read", n=5),
            LeftOut("big2021", "a", "edss_change", "no EDSS numbers in the sources read", n=69, note="EDSS Plus"),
            LeftOut("big2021", "b", "edss_change", "no EDSS numbers in the sources read", n=75, note="crossover"),
            LeftOut("big2021", "b", "mri_activity", "no MRI activity numbers in the sources read", n=75))
    lines = left_out_lines(rows, {"big2021": "Big 2021"}, {"edss_change": "EDSS change", "mri_activity": "MRI"})
    assert lines == [("Big 2021 (a n = 69, b n = 75): EDSS change: no EDSS numbers in the sources read; "
                      "MRI (b): no MRI activity numbers in the sources read"),
                     "small2010 (all n = 5): EDSS change: no EDSS numbers in the sources read"]


def test_outcome_order():
    names = ["zeta", "mri_activity", "adverse_events", "alpha", "edss_change"]
    assert sorted(names, key=outcomes.order) == ["edss_change", "adverse_events", "mri_activity", "alpha", "zeta"]


class _Sections(HTMLParser):
    """The ids of <section>s and the text of <h3>s in document order, and whether a <header> came first."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.order: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self._h3 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag in ("header", "section", "nav"):
            self.order.append((tag, attrs.get("id", "")))
        if tag == "span" and "prior" in attrs.get("class", ""):
            self.order.append(("badge", "mostly prior"))
        self._h3 = tag == "h3"

    def handle_endtag(self, tag):
        self._h3 = False

    def handle_data(self, data):
        if self._h3:
            self.order.append(("h3", data))


@pytest.fixture(scope="module")
def pages(fixture):
    """report_context from an AE section listed before an EDSS one, with the fake summary; both pages."""

    def section(key, name, outcome):
        return {"key": key, "name": name, "outcome": outcome, "spec_path": f"{key}.toml", "converged": True,
                "reasons": [], "warnings": [], "attempts": ["a"], "results": "R", "methods": "M",
                "key_estimates": {"columns": ["quantity"], "rows": [], "probabilities": []},
                "study_estimates": {"columns": ["arm"], "rows": []}, "diagnostics": [], "figures": [],
                "notes": [], "files": [], "sensitivity": None}

    sections = [section("ae", "Adverse events", "adverse_events"), section("edss", "EDSS change", "edss_change")]
    runs = [SimpleNamespace(key="edss", fit=fixture["edss"]), SimpleNamespace(key="ae", fit=fixture["ae"])]
    ctx = report_context(sections, runs, fixture["evidence"], created=dt.datetime(2026, 1, 1), run_name="r",
                         allow_unconverged=False, summary=fake_summary())
    return ctx, render_html(ctx), render_markdown(ctx)


def test_html_opens_on_the_summary_edss_first(pages):
    ctx, html, _ = pages
    assert [m["outcome"] for m in ctx["models"]] == ["edss_change", "adverse_events"]
    doc = _Sections()
    doc.feed(html)
    sections = [x for x in doc.order if x[0] in ("header", "section", "nav")]
    assert sections[0] == ("header", "") and sections[1] == ("section", "summary")
    assert sections[2][0] == "nav"  # the contents after the summary
    h3 = [t for k, t in doc.order if k == "h3"]
    assert h3.index("EDSS change") < h3.index("Adverse events") < h3.index("MRI activity")
    assert h3[:4] == ["EDSS change", "Adverse events", "MRI activity", "What the evidence can and cannot say"]
    assert ("badge", "mostly prior") in doc.order
    models = [s for s in sections if s[1].startswith("model-")]
    assert [s[1] for s in models] == ["model-1", "model-2"]
    assert html.index('id="model-1"') < html.index("<h2>EDSS change <span") < html.index('id="model-2"')
    assert HOSTILE not in html and "script" not in doc.tags and "b" not in doc.tags
    assert "Methods of the summary" in html and 'id="summary-methods"' in html
    assert "no EDSS numbers in the sources read &lt;b&gt;" in html


def test_markdown_holds_the_same_summary_first_and_no_entities(pages):
    _, _, md = pages
    first_model = md.index("\n## EDSS change (edss)")
    assert md.index("## Summary of findings") < first_model < md.index("\n## Adverse events (ae)")
    assert md.index("### EDSS change") < md.index("### Adverse events") < md.index("### MRI activity")
    assert "### What the evidence can and cannot say" in md and "## Methods of the summary" in md
    for entity in ("&gt;", "&lt;", "&amp;"):
        assert entity not in md
    assert "reduce EDSS worsening \\< 0.5 points \\& more" in md  # backslash-escaped: reads and renders right
    assert "(mostly prior: not a finding)" in md
    assert not re.search(r"(?<!\\)[<>&]", md)
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in html and "<b>" not in html and "<img" not in html  # no HTML from data
    assert "reduce EDSS worsening &lt; 0.5 points &amp; more" in html  # renders as the text


def test_evidence_table_has_notes_crossover_and_what_each_arm_contributes(pages, fixture):
    ctx, html, _ = pages
    table = ctx["evidence"]
    for column in ("notes", "crossover", "contributes"):
        assert column in table["columns"]
    rows = {(r[0], r[1]): dict(zip(table["columns"], r)) for r in table["rows"]}
    assert "not in edss_change: no EDSS numbers in the sources read <b>" in rows[("alpha2019", "all")]["contributes"]
    assert 'class="evidence"' in html and '<td class="text">' in html and "overflow-wrap: anywhere" in html
    plain = report_context([], [], fixture["evidence"], created=dt.datetime(2026, 1, 1),
                           run_name="r", allow_unconverged=False)
    assert plain["summary"] is None
    assert {dict(zip(plain["evidence"]["columns"], r))["contributes"] for r in plain["evidence"]["rows"]} == {"—"}
    assert "Summary of findings" not in render_markdown(plain) and 'id="summary"' not in render_html(plain)


# --------------------------------------------------------------------------------------
# MRI activity in its own words
# --------------------------------------------------------------------------------------


def test_mri_has_its_own_statements_labels_and_thresholds(fixture):
    from msc_bayes.outcomes.events.model import MRI_RISK_THRESHOLDS, RISK_THRESHOLDS

    mri, ae = outcomes.get("mri_activity"), outcomes.get("adverse_events")
    words = " ".join(s.text for s in mri.statements) + " ".join(w for _, w in mri.reference_suffixes)
    assert "administration" not in words and "event type" not in words and "MRI measure" in words
    assert any("administration" in s.text for s in ae.statements)  # adverse events keep theirs
    assert mri.thresholds == MRI_RISK_THRESHOLDS and ae.thresholds == RISK_THRESHOLDS
    assert "MRI activity" in mri.variable_labels["mu"] and "MRI measure" in mri.variable_labels["event_effect"]
    fit = fixture["ae"]  # the same binomial-logit model: MRI's derive on its posterior
    posterior = fit.tree["posterior"].to_dataset()
    derived = mri.derive(posterior, fit.prepared, fit.spec)
    assert list(derived["p_risk_above"]["threshold"].values) == list(MRI_RISK_THRESHOLDS)
    np.testing.assert_array_equal(derived["p_risk_above"].sel(threshold=0.25).values,
                                  (derived["risk_new"] > 0.25).values.astype(float))
    assert list(ae.derive(posterior, fit.prepared, fit.spec)["p_risk_above"]["threshold"].values) == \
        list(RISK_THRESHOLDS)


def test_sensitivity_rows_of_refits_with_divergences_are_marked():
    rows = [{"family": f, "scenario": sc, "label": "q", "median": 0.1, LO: -0.1, HI: 0.3, "shift": 0.0,
             "method": m, "notes": note, "divergences": d}
            for f, sc, m, note, d in (("base", "base", "mcmc", "", 0), ("prior", "a", "mcmc", "", 1),
                                      ("prior", "b", "mcmc", "n", 3), ("prior", "c", "reweight", "", 0))]
    notes = [r[-1] for r in sensitivity_view(pd.DataFrame(rows))["rows"]]
    assert notes == ["", "refit had 1 divergent transition: not reliable",
                     "refit had 3 divergent transitions: not reliable; n", ""]
