"""The summary of findings against the posterior it summarises (issue #15's content tests).

The report runs on the fixture with `fake_fit` draws (tests/test_report.py's `files` and `fake`); every
number of ``summary_of_findings.csv`` is recomputed here straight from the posterior written beside it
(``<key>.nc``), and the pages are checked to show those numbers first, EDSS before adverse events.
"""

from __future__ import annotations

import math
import re

import arviz as az
import numpy as np
import pandas as pd
import pytest
from test_report import fake, files, parse, run  # noqa: F401 - fixtures

from msc_bayes import outcomes, results
from msc_bayes.numbers import fmt


@pytest.fixture
def report(files, fake, tmp_path):  # noqa: F811 - fixtures
    out = tmp_path / "run"
    assert run(files, out) == 0
    return out


def _draws(tree, quantity: str) -> np.ndarray:
    """The (chain × draw) draws of one cell of the written posterior, e.g. route_contrast[IT vs IV]."""
    name = quantity.split("[", 1)[0]
    cells = results.cells(tree, name)
    return np.asarray(cells[quantity]).ravel()


def test_every_number_of_the_summary_is_the_posteriors(report):
    table = pd.read_csv(report / "summary_of_findings.csv")
    assert list(table["outcome"].unique()) == ["edss_change", "adverse_events"]  # the primary outcome first
    keys = {"edss_change": "edss_plain", "adverse_events": "ae_plain"}
    checked = 0
    for r in table.to_dict("records"):
        tree = az.from_netcdf(report / f"{keys[r['outcome']]}.nc")
        x = _draws(tree, r["quantity"])
        if r["quantity"].startswith("beta["):  # a numeric covariate's effect per doubling (log-transformed)
            design = results.attr_json(tree, "design", {})
            term = next(t for t in design["terms"] if r["quantity"] == f"beta[{t['name']}]")
            x = x * (math.log(2) if term["transform"] == "log" else 1.0) / term["scale"]
        lo, med, hi = np.quantile(x, [0.025, 0.5, 0.975])
        assert (r["median"], r["eti95_lower"], r["eti95_upper"]) == pytest.approx((med, lo, hi), rel=1e-12, abs=1e-15)
        row = next(row for row in outcomes.get(r["outcome"]).summary if row.name == r["quantity"])
        if row.direction == "lower_better":
            assert r["p_benefit"] == pytest.approx(np.mean(x < 0), abs=1e-12)
        if r["quantity"] in ("msc_effect", "mu") and r["outcome"] == "edss_change":
            mcid = 0.5  # the fixture's spec does not override the EDSS MCID
            assert r["p_important"] == pytest.approx(np.mean(x <= -mcid), abs=1e-12)
        checked += 1
    assert checked == len(table) >= 4


def test_the_summary_comes_first_and_shows_the_csv_numbers(report):
    html = (report / "index.html").read_text(encoding="utf-8")
    page = parse(html)
    sections = [a.get("id") for tag, a in page.tags if tag == "section"]
    assert sections[0] == "summary"
    summary_html = html[html.index('<section id="summary"'):html.index("</section>", html.index('id="summary"'))]
    text = re.sub(r"<[^>]+>", " ", summary_html)
    assert text.index("EDSS") < text.index("Adverse events")
    table = pd.read_csv(report / "summary_of_findings.csv")
    for r in table[table["scale"] == "num"].to_dict("records"):
        shown = f"{fmt(r['median'])} ({fmt(r['eti95_lower'])} to {fmt(r['eti95_upper'])})"
        assert shown in text, (r["quantity"], shown)
        assert r["certainty"] in text
    md = (report / "report.md").read_text(encoding="utf-8")
    assert md.index("## Summary of findings") < md.index("## EDSS") < md.index("## Adverse events")
    for r in table[table["scale"] == "num"].to_dict("records"):
        assert f"{fmt(r['median'])} ({fmt(r['eti95_lower'])} to {fmt(r['eti95_upper'])})" in md


def test_rows_follow_the_outcomes_declaration(report):
    tree = az.from_netcdf(report / "edss_plain.nc")
    table = pd.read_csv(report / "summary_of_findings.csv")
    declared = [row.name for row in outcomes.get("edss_change").summary]
    shown = list(table.loc[table["outcome"] == "edss_change", "quantity"])
    assert shown == [name for name in declared if name in shown]  # declared order
    assert "msc_effect" in shown and "mu" in shown
    assert all(results.has(tree, q.split("[", 1)[0]) for q in shown)
