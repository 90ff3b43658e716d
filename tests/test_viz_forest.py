"""The figures a meta-analyst expects (#15): the forest plot's rows, text column, summary rows and risk axis;
the courses curve's extrapolation shade; divergence marks in the sensitivity figure; MRI wording.

No MCMC: fake fits (tests/test_diagnostics.py ``fake_fit``) of the small fixture, and fit-like namespaces.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from matplotlib.patches import Rectangle
from test_diagnostics import fake_fit, write_fixture

from msc_bayes import results
from msc_bayes.diagnostics import predictive_checks, study_estimates
from msc_bayes.evidence import load_evidence
from msc_bayes.sensitivity.report_policy import report_table
from msc_bayes.spec import load_spec
from msc_bayes.sweep import Scenario, tag
from msc_bayes.viz import figures_for, plot_sensitivity_grid, to_png
from msc_bayes.viz.common import reference_words
from msc_bayes.viz.courses import EXTRAPOLATED_GID, courses_curve
from msc_bayes.viz.forest import forest
from msc_bayes.viz.sensitivity import DIVERGENT_MARK

MRI = """study,arm,event,timepoint_months,patients_with_event,n_at_risk
alpha2019,all,new_t2,6,3,10
beta2020,msc,gd_enhancing,6,2,12
beta2020,placebo,gd_enhancing,6,4,11
"""
MRI_SPEC = """name = "MRI activity"
outcome = "mri_activity"
covariates = []
"""


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Fake fits of the fixture's EDSS, adverse-event and MRI specs, with the evidence and study estimates."""
    folder = tmp_path_factory.mktemp("forest")
    data, edss_spec, ae_spec = write_fixture(folder)
    (data / "mri.csv").write_text(MRI, encoding="utf-8")
    mri_spec = folder / "specs" / "mri.toml"
    mri_spec.write_text(MRI_SPEC, encoding="utf-8")
    evidence = load_evidence(data)
    out = {}
    for name, path in (("edss", edss_spec), ("ae", ae_spec), ("mri", mri_spec)):
        fit = fake_fit(load_spec(path), evidence)
        out[name] = (fit, study_estimates(fit, evidence=evidence), evidence)
    return out


def minus(x: float) -> str:
    """The expected number text: 2 decimals, a true minus sign."""
    text = f"{x:.2f}"
    return (text if float(text) != 0 else f"{abs(x):.2f}").replace("-", "\u2212")


def pct(p: float) -> str:
    """The expected risk text: percent, 2 significant digits below 1%, else 1 decimal."""
    return "0%" if p == 0 else (f"{100 * p:#.2g}%" if 100 * p < 1 else f"{100 * p:.1f}%")


def row_texts(fig, axes_index: int = 1) -> dict[float, list[str]]:
    """The text column of a forest: y -> its texts, left to right (the header row is left out)."""
    ax = fig.axes[axes_index]
    assert not ax.axison  # the text columns have no axis
    rows: dict[float, list[tuple[float, str]]] = {}
    for t in ax.texts:
        x, y = t.get_position()
        rows.setdefault(round(y, 6), []).append((x, t.get_text()))
    top = max(rows)
    return {y: [s for _, s in sorted(v)] for y, v in rows.items() if y != top}


def labels_by_y(ax) -> dict[float, str]:
    return {round(y, 6): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}


# --------------------------------------------------------------------------------------
# The forest plot
# --------------------------------------------------------------------------------------


def test_forest_rows_name_study_n_and_follow_up(fits):
    fit, est, _ = fits["edss"]
    units = fit.prepared.units
    np.testing.assert_array_equal(est["followup_months"], units["timepoint_months"].astype(float))
    fig = forest(fit, estimates=est)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == len(est) + 3
    for label, r in zip(labels, est.itertuples(index=False)):
        assert f"n={r.n:g}" in label and label.endswith(f"{r.followup_months:g} mo")
        assert (" (control)" in label) == (r.group == "control")
    assert labels[0].startswith("Alpha 2019")  # first author and year from the study id (no citation column)
    assert labels[len(est):] == ["Pooled: MSC arms", "New study's MSC arm (prediction)",
                                 "MSC minus control (difference)"]


def test_forest_text_column_writes_the_study_estimates_and_summary_numbers(fits):
    fit, est, _ = fits["edss"]
    fig = forest(fit, estimates=est)
    texts, labels = row_texts(fig), labels_by_y(fig.axes[0])
    lo, hi = results.interval_columns()
    by_label = {labels[y]: v for y, v in texts.items()}
    unit_labels = [t.get_text() for t in fig.axes[0].get_yticklabels()][:len(est)]
    for label, r in zip(unit_labels, est.to_dict("records")):
        reported, model = by_label[label]
        assert model == f"{minus(r['shrunken_median'])} [{minus(r[f'shrunken_{lo}'])}, {minus(r[f'shrunken_{hi}'])}]"
        if not np.isfinite(r["observed"]):
            assert reported == f"({r['used']})"
        elif np.isfinite(r["observed_lower"]):
            assert reported == f"{minus(r['observed'])} [{minus(r['observed_lower'])}, {minus(r['observed_upper'])}]"
        else:
            assert reported == minus(r["observed"])
    q = results.quantile_probs()
    for name, label in (("mu", "Pooled: MSC arms"), ("msc_effect", "MSC minus control (difference)")):
        x = results.draws(fit, name)
        med, a, b = np.quantile(x, [0.5, *q])
        assert by_label[label] == ["", f"{minus(med)} [{minus(a)}, {minus(b)}]"]
    assert fig.axes[0].get_xscale() == "linear"
    assert "Pooled and prediction: MSC arms (no covariates)" in fig.axes[0].get_title()


def test_risk_forest_is_on_a_logit_axis_in_percent_with_the_odds_ratio_on_its_own_axis(fits):
    fit, est, _ = fits["ae"]
    fig = forest(fit, estimates=est)
    risk_ax, _, odds_ax, _ = fig.axes
    assert risk_ax.get_xscale() == "logit" and odds_ax.get_xscale() == "log"
    ticks = [t.get_text() for t in risk_ax.get_xticklabels()]
    assert ticks and all(t.endswith("%") for t in ticks)
    lo, hi = results.interval_columns()
    by_label = {labels_by_y(risk_ax)[y]: v for y, v in row_texts(fig).items()}
    for label, r in zip([t.get_text() for t in risk_ax.get_yticklabels()], est.to_dict("records")):
        assert by_label[label][1] == f"{pct(r['shrunken_median'])} [{pct(r[f'shrunken_{lo}'])}, {pct(r[f'shrunken_{hi}'])}]"
        assert by_label[label][0] == f"{pct(r['observed'])} [{pct(r['observed_lower'])}, {pct(r['observed_upper'])}]"
    zeros = int((est["observed"] == 0).sum())
    assert zeros and sum(len(line.get_xdata()) for line in risk_ax.lines if line.get_marker() == "<") == zeros
    (odds_label,) = [t.get_text() for t in odds_ax.get_yticklabels()]
    assert odds_label == "MSC vs control (odds ratio)"
    odds = np.quantile(np.exp(results.draws(fit, "msc_effect")), [0.5, *results.quantile_probs()])
    (written,) = row_texts(fig, 3).values()
    assert written == ["", f"{minus(odds[0])} [{minus(odds[1])}, {minus(odds[2])}]"]
    to_png(fig)


def test_reference_covariates_in_words():
    design = {"terms": [
        {"name": "route", "kind": "categorical", "levels": ["IV", "IT"], "transform": "identity", "centre": 0.0},
        {"name": "courses", "kind": "numeric", "levels": [], "transform": "log", "centre": 0.0},
        {"name": "timepoint_months", "kind": "numeric", "levels": [], "transform": "identity", "centre": 12.0}]}
    tree = from_dict({"posterior": {"mu": np.zeros((1, 4))}})
    tree.attrs["design"] = json.dumps(design)
    fit = SimpleNamespace(tree=tree, spec=SimpleNamespace(outcome="edss_change"))
    assert results.reference_text(fit) == "route IV, courses 1, timepoint_months 12"
    assert reference_words(fit) == "route IV, 1 course, 12 months' follow-up"


# --------------------------------------------------------------------------------------
# The courses curve
# --------------------------------------------------------------------------------------


def courses_fit(units: pd.DataFrame, routes=("IV", "IT", "mixed"), courses=(1.0, 2.0, 3.0, 4.0, 5.0)):
    rng = np.random.default_rng(5)
    shape = (2, 30, len(routes), len(courses))
    tree = from_dict({"posterior": {"mu": rng.normal(size=(2, 30))},
                      "derived": {"change_by_design": rng.normal(size=shape),
                                  "new_study_by_design": rng.normal(size=shape)}},
                     dims={"change_by_design": ["route", "courses"], "new_study_by_design": ["route", "courses"]},
                     coords={"route": list(routes), "courses": list(courses)})
    return SimpleNamespace(tree=tree, spec=SimpleNamespace(outcome="edss_change"), prepared=SimpleNamespace(units=units))


def test_courses_curve_shades_beyond_the_largest_modelled_course_count_of_each_route():
    units = pd.DataFrame({"route": ["IV", "IV", "IT", "IT", "IV"],
                          "courses": [1, pd.NA, 2, 1, pd.NA], "courses_min": [pd.NA, 1, pd.NA, pd.NA, pd.NA],
                          "courses_max": [pd.NA, 3, pd.NA, pd.NA, pd.NA],
                          "group": ["msc", "msc", "msc", "msc", "control"]})  # the control arm has no courses
    fig = courses_curve(courses_fit(units))
    starts = {}
    for ax in fig.axes:
        shades = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == EXTRAPOLATED_GID]
        if shades:
            (shade,) = shades
            starts[ax.get_title().split(" (")[0]] = (shade.get_x(), shade.get_x() + shade.get_width())
    # IV: a range 1-3 reaches 3; IT: known 2; mixed: no arm, all of it is extrapolated
    assert starts == {"route IV": (3.0, 5.0), "route IT": (2.0, 5.0), "route mixed": (1.0, 5.0)}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("extrapolated" in s for s in labels)


def test_courses_curve_has_no_shade_where_the_arms_reach_the_last_course_count():
    units = pd.DataFrame({"route": ["IV"], "courses": [pd.NA], "courses_min": [1], "courses_max": [5],
                          "group": ["msc"]})
    fig = courses_curve(courses_fit(units, routes=("IV",)))
    assert not [p for p in fig.axes[0].patches if p.get_gid() == EXTRAPOLATED_GID]


# --------------------------------------------------------------------------------------
# Divergences in the sensitivity figure
# --------------------------------------------------------------------------------------


def sensitivity_rows(divergences: list[int]) -> pd.DataFrame:
    scenarios = ["base", "prior a", "evidence b", "without c"]
    families = ["base", "prior", "evidence", "leave-one-out"]
    rows = []
    for s, f, d in zip(scenarios, families, divergences):
        for q, m in (("msc_effect", -0.3), ("route_contrast[IT vs IV]", 0.1)):
            rows.append({"family": f, "scenario": s, "quantity": q, "median": m, "eti95_lower": m - 0.4,
                         "eti95_upper": m + 0.4, "shift": 0.0, "method": "mcmc", "notes": "", "divergences": d})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("divergences", [[0, 0, 3, 0], [2, 0, 0, 1], [0, 0, 0, 0]])
def test_sensitivity_rows_with_divergent_refits_are_marked(divergences):
    table = sensitivity_rows(divergences)
    fig = plot_sensitivity_grid(table, outcome="edss_change")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    marked = {s.removesuffix(f" {DIVERGENT_MARK}") for s in labels if s.endswith(DIVERGENT_MARK)}
    expected = set(table.loc[table["divergences"] > 0, "scenario"])
    assert marked == expected and sum(DIVERGENT_MARK in s for s in labels) == len(expected)
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any(DIVERGENT_MARK in s for s in legend) == bool(expected)
    assert fig.axes[0].get_xlabel().startswith("EDSS points")


def test_divergences_travel_from_a_refit_to_the_report_table():
    sc = Scenario("refit", None, None, {})
    rows = pd.DataFrame({"quantity": ["msc_effect", "msc_effect"], "median": [0.1, 0.2], "eti95_lower": [0, 0],
                         "eti95_upper": [1, 1], "method": ["mcmc", "reweight"]})
    tagged = tag(rows, sc, "mcmc", "4 divergent transitions", 1.0, 4)
    assert list(tagged["divergences"]) == [4, 0]  # a reweighted row is not the refit
    base = tag(rows.iloc[:1].assign(scenario="base"), Scenario("base", None, None, {}), "mcmc", "", 1.0)
    table = report_table([base, tagged.assign(family="prior")], quantities=["msc_effect"])
    assert list(table["divergences"]) == [0, 4, 0]


# --------------------------------------------------------------------------------------
# MRI wording
# --------------------------------------------------------------------------------------


def test_mri_figures_have_their_own_words(fits):
    fit, _, evidence = fits["mri"]
    specs = figures_for(fit, checks=predictive_checks(fit, evidence=evidence))
    words = " ".join(f"{s.title} {s.caption}" for s in specs)
    for adverse in ("by route", "per administration", "adverse"):
        assert adverse not in words
    assert "MRI measure" in words and "95% ETI" in words
    risks = next(s for s in specs if s.key == "event_risks")
    assert "event type" not in f"{risks.title} {risks.caption}"  # the reference's words are the outcome's
    fig = risks.draw(fit, {})
    assert "MRI activity" in fig.axes[0].get_xlabel() and fig.axes[0].get_xscale() == "logit"
    assert "MRI measure" in fig.axes[0].get_title()
    ae_fit, _, ae_evidence = fits["ae"]
    ae_words = " ".join(s.caption for s in figures_for(ae_fit, checks=predictive_checks(ae_fit, evidence=ae_evidence)))
    assert "event type" in ae_words
