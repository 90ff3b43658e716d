"""The evidence scenarios of #14 (msc_bayes.sensitivity.evidence_scenarios) and the report's choice of them.

Fast tests: each scenario's (spec, evidence) transformation on the bundled evidence (what it
changes is read from the data's own columns, not from row positions), the markers of scenarios
with nothing to fit, and the report policy's list. One slow test fits (a data-only option refits
the base's compiled model; a not-applicable scenario fits nothing).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msc_bayes import inference
from msc_bayes import sensitivity as S
from msc_bayes.evidence import load_evidence
from msc_bayes.sensitivity import report_policy as P
from msc_bayes.sensitivity.base import prepare
from msc_bayes.spec import load_spec

E = importlib.import_module("msc_bayes.sensitivity.evidence_scenarios")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ev():
    return load_evidence(REPO / "data")


@pytest.fixture(scope="module")
def specs():
    return {m: load_spec(REPO / "models" / f"{m}.toml") for m in ("edss_change", "adverse_events", "mri_activity")}


def keys(df, arm="arm"):
    return set(zip(df["study"], df[arm]))


def labels(spec, evidence):
    return set(prepare(spec, evidence).units["label"])


def run(name, spec, evidence):
    return E.EVIDENCE_SCENARIOS[name](spec, evidence)


def test_without_cell_products_leaves_out_their_arms_and_the_controls_of_their_studies(ev, specs):
    arms = ev.arms
    product = arms["cell_source"].isin(E.CELL_PRODUCTS)
    assert product.any()
    spec2, ev2, text = run("without MSC-NP and placenta-derived cells", specs["edss_change"], ev)
    assert spec2 == specs["edss_change"]
    left = ev2.arms
    assert not left["cell_source"].isin(E.CELL_PRODUCTS).any()
    studies = set(arms.loc[product, "study"])
    other_msc = arms[~product & arms["group"].ne("control")]
    whole = studies - set(other_msc["study"])  # studies with no other MSC arm go whole (their controls too)
    assert not set(left["study"]) & whole
    assert keys(left) == keys(arms[~arms["study"].isin(whole) & ~product])
    assert all(s in text for s in whole)
    for table in ("edss", "adverse_events", "mri"):
        assert not set(ev2.table(table)["study"]) & whole


def test_without_secondary_patients_keeps_every_other_value(ev, specs):
    spec = specs["edss_change"]
    spec2, ev2, text = run("without secondary per-patient data", spec, ev)
    secondary = ev.patients["grade"].eq("secondary")
    assert secondary.any() and spec2 == spec
    assert not ev2.patients["grade"].eq("secondary").any()
    assert len(ev2.patients) == (~secondary).sum()
    pd.testing.assert_frame_equal(ev2.edss.reset_index(drop=True), ev.edss.reset_index(drop=True))
    assert "blanks every secondary value" in text
    # unlike "primary sources only", which is an option of the spec (it blanks secondary values everywhere)
    spec3, _, _ = run("primary sources only", spec, ev)
    assert spec3.options["exclude_secondary"] and not spec2.options["exclude_secondary"]
    nothing = ev.with_tables(patients=ev.patients[~secondary])
    assert isinstance(run("without secondary per-patient data", spec, nothing), E.NoRefit)


def test_tehran_bonab2012_put_first_in_its_group(ev, specs):
    spec = specs["edss_change"]
    arms = ev.arms
    made = run("Tehran: Bonab 2012 overlapping the pilots", spec, ev)
    if isinstance(made, E.NoRefit):  # data with Bonab 2012 already first in tehran_it
        assert made.kind == "same as base"
        return
    _, ev2, text = made
    a2 = ev2.arms
    group = a2[a2["overlap_group"] == E.TEHRAN]
    first = group[group["study"] == "bonab2012"]
    others = group[group["study"] != "bonab2012"]
    assert len(first) and (first["overlap_rank"] == 1).all() and (others["overlap_rank"] > 1).all()
    before = arms.set_index(["study", "arm"]).loc[list(keys(others)), "overlap_rank"]
    after = others.set_index(["study", "arm"])["overlap_rank"].loc[before.index]
    assert (before.rank(method="dense").to_numpy() == after.rank(method="dense").to_numpy()).all()  # order kept
    units = prepare(spec, ev2).units
    assert "bonab2012" in set(units["study"]) and not set(units["study"]) & set(others["study"])
    assert E.TEHRAN in text and "rank 1" in text
    ungrouped = ev.with_tables(arms=arms.assign(overlap_group=None, overlap_rank=None))
    nothing = run("Tehran: Bonab 2012 overlapping the pilots", spec, ungrouped)
    assert isinstance(nothing, E.NoRefit) and nothing.kind == "same as base" and E.TEHRAN in nothing.reason


def test_tehran_pilot_and_follow_up_counted_once(ev, specs):
    spec = specs["edss_change"]
    made = run("Tehran: pilot and 5-year follow-up counted once", spec, ev)
    if isinstance(made, E.NoRefit):
        assert made.kind == "same as base"
        return
    spec2, ev2, text = made
    a2 = ev2.arms.set_index(["study", "arm"])["overlap_rank"]
    assert a2.loc["bonab2005"].min() > a2.loc["sahraian2014"].max()
    base, after = labels(spec, ev), labels(spec2, ev2)
    gone = {lab for lab in base - after}
    assert after <= base and gone and all(lab.startswith("bonab2005:") for lab in gone)
    assert S.as_exclusion(spec, ev, spec2, ev2) == ("bonab2005",)  # an exact zero-weight refit
    assert "counted once" in text
    again = run("Tehran: pilot and 5-year follow-up counted once", spec, ev2)  # already below: nothing to do
    assert isinstance(again, E.NoRefit) and again.kind == "same as base"


@pytest.mark.parametrize(("name", "key", "value"), [("Petrou 2020 arms as independent", "shared_patients", False),
                                                    ("carry-over none", "carry_over", "none"),
                                                    ("carry-over full", "carry_over", "full")])
def test_data_options_refit_the_base_model_and_do_not_apply_to_events(ev, specs, name, key, value):
    spec = specs["edss_change"]
    if key not in spec.options:
        pytest.skip(f"the EDSS outcome has no option {key} yet")
    spec2, ev2, text = run(name, spec, ev)
    assert ev2 is ev and spec2.options[key] == value and spec.options[key] != value
    assert f"options.{key}" in text
    assert S.as_exclusion(spec, ev, spec2, ev2) is None
    assert E.reuses_base_model(spec, ev, spec2, ev2)  # pm.Data only: the same compiled model
    for outcome in ("adverse_events", "mri_activity"):
        marker = run(name, specs[outcome], ev)
        assert marker == E.NoRefit("not applicable", f"options.{key} is not an option of {outcome}")
        assert marker.note.startswith("not applicable to this outcome")
    already = spec2
    assert run(name, already, ev).kind == "same as base"


def test_first_period_only_leaves_out_arms_that_pool_crossover_periods(ev, specs):
    spec = specs["edss_change"]
    pooled = E._pooling_arms(ev)
    assert pooled, "the bundled data have a crossover pooled over periods (Petrou 2020)"
    spec2, ev2, text = run("first period only", spec, ev)
    assert not keys(ev2.arms) & pooled
    whole = {s for s, _ in pooled} - set(ev2.arms["study"])
    for s in whole:
        assert f"no first-period-only data for {s}" in text or s in text
    assert "leaves the study out" in text or "leaves those studies out" in text
    assert S.as_exclusion(spec, ev, spec2, ev2) == tuple(sorted(whole & set(prepare(spec, ev).units["study"])))
    assert E._loses_control(spec, ev, spec2, ev2, S.as_exclusion(spec, ev, spec2, ev2))  # Petrou 2020: the only control
    plain = ev.with_tables(shared_patients=ev.shared_patients.iloc[0:0],
                           arms=ev.arms.assign(periods_after_msc=None))
    marker = run("first period only", spec, plain)
    assert isinstance(marker, E.NoRefit) and marker.kind == "same as base"


def test_explicit_statements_only_for_events_not_applicable_to_edss(ev, specs):
    marker = run("explicit safety statements only", specs["edss_change"], ev)
    assert marker.kind == "not applicable" and "statements" in marker.reason
    ae = specs["adverse_events"]
    if "statements" not in ae.options:
        pytest.skip("the events outcomes have no option statements yet")
    spec2, ev2, _ = run("explicit safety statements only", ae, ev)
    assert spec2.options["statements"] == "explicit" and ev2 is ev
    kept = prepare(spec2, ev).units
    if "wording" in kept:
        assert not kept["wording"].eq("vague").any()
    assert len(kept) < len(prepare(ae, ev).units)  # the bundled data have vague statements
    # mri.csv has no wording column: every row counts as explicit, so nothing changes
    planned = E.plan(specs["mri_activity"], ev, E.EVIDENCE_SCENARIOS["explicit safety statements only"])
    assert isinstance(planned, E.NoRefit) and planned.kind == "same as base"


def test_runner_records_scenarios_without_a_fit(ev, specs, monkeypatch):
    spec = specs["edss_change"]
    fitted = []
    monkeypatch.setattr(E, "run_scenarios", lambda todo, **kw: fitted.extend(todo) or [])
    scenarios = {"n/a": lambda s, e: E.not_applicable("no such reading"),
                 "changes nothing": lambda s, e: (s, e.with_tables(mri=e.mri), "the same data again"),
                 "explicit safety statements only": E.EVIDENCE_SCENARIOS["explicit safety statements only"]}
    df = S.evidence_scenarios(spec, ev, scenarios=scenarios, include_base=False)
    assert not fitted
    assert list(df["scenario"]) == list(scenarios)
    assert list(df["method"]) == ["not applicable", "same as base", "not applicable"]
    assert df["quantity"].isna().all()
    assert df["notes"].iloc[0] == "not applicable to this outcome: no such reading"
    assert df["notes"].iloc[1].startswith("same as base: the same data again")
    assert set(df["family"]) == {"evidence"}


def test_unchanged_and_exclusion_look_at_values_not_only_labels(ev, specs):
    spec = specs["edss_change"]
    edss = ev.edss
    i = edss.index[edss["change_mean"].notna()][0]
    moved = ev.with_tables(edss=edss.assign(change_mean=edss["change_mean"].where(edss.index != i,
                                                                                   edss.at[i, "change_mean"] + 0.5)))
    assert labels(spec, moved) == labels(spec, ev)
    assert not E.unchanged(spec, ev, spec, moved)
    assert S.as_exclusion(spec, ev, spec, moved) is None  # a changed value is no zero-weight refit
    assert E.unchanged(spec, ev, spec, ev.with_tables(mri=ev.mri))


def test_report_policy_runs_cheap_scenarios_and_the_named_compiled_ones(ev, specs):
    edss = specs["edss_change"]
    chosen = P.report_evidence(edss, ev)
    assert set(chosen) <= set(P.SENSITIVITY_EVIDENCE["*"]) and chosen
    for name, how in chosen.items():
        planned = E.plan(edss, ev, E.EVIDENCE_SCENARIOS[name])
        assert not isinstance(planned, E.NoRefit)
        spec2, ev2, _, exclude = planned
        assert how == (P.EXCLUSION if exclude else P.SAME_MODEL if E.reuses_base_model(edss, ev, spec2, ev2)
                       else P.OWN_MODEL)
        assert how != P.OWN_MODEL or name in P.SENSITIVITY_COMPILED
    skipped = [n for n in P.SENSITIVITY_EVIDENCE["*"] if n not in chosen]
    for name in skipped:  # skipped: nothing to fit, or a compile not asked for
        planned = E.plan(edss, ev, E.EVIDENCE_SCENARIOS[name])
        assert isinstance(planned, E.NoRefit) or (planned[3] is None and name not in P.SENSITIVITY_COMPILED)
    args = P.report_arguments(edss, ev)
    assert args["evidence_names"] == list(chosen) and "evidence" in args["families"]
    ae = P.report_arguments(specs["adverse_events"], ev)
    assert ae["families"] in (("evidence",), ())
    assert set(ae["evidence_names"]) <= {"explicit safety statements only"}
    assert "mri_activity" not in P.SENSITIVITY_OUTCOMES and "adverse_events" in P.SENSITIVITY_OUTCOMES
    assert P.has_section(edss, ev) and not P.has_section(specs["mri_activity"], ev)
    assert P.has_section(specs["adverse_events"], ev) == ("explicit safety statements only" in ae["evidence_names"])
    settings = P.sensitivity_settings()
    assert settings["evidence"]["adverse_events"] == ["explicit safety statements only"]


def test_varied_text_says_how_each_evidence_scenario_was_fitted():
    table = pd.DataFrame({"family": ["evidence"] * 3, "scenario": ["a", "b", "c"], "method": "mcmc"})
    how = {"a": P.EXCLUSION, "b": P.SAME_MODEL, "c": P.OWN_MODEL}
    text = P.varied_text(table, how)
    assert "a, as exact zero-weight refits of the base model" in text
    assert "b, as refits of the base's compiled model" in text
    assert "c, with a model of its own" in text
    assert "other evidence readings than those listed" in text
    only_cheap = P.varied_text(table[table["scenario"] != "c"], {"a": P.EXCLUSION, "b": P.SAME_MODEL})
    assert "than those listed" not in only_cheap and "other evidence readings) are not run" in only_cheap


@pytest.mark.slow
def test_data_option_scenario_refits_the_compiled_base_model(ev, specs):
    spec = specs["edss_change"]
    if "shared_patients" not in spec.options:
        pytest.skip("the EDSS outcome has no option shared_patients yet")
    fast = {"draws": 200, "tune": 200, "chains": 2}
    before = inference.ENGINE.compiled_models.copy()
    df = S.evidence_scenarios(spec, ev, scenarios=["Petrou 2020 arms as independent",
                                                   "explicit safety statements only"],
                              quantities=["msc_effect"], **fast)
    new = [k for k in inference.ENGINE.compiled_models if k not in before]
    assert len(new) <= 1  # base and the independent-arms scenario share one compiled model
    rows = df.set_index("scenario")
    assert rows.loc["explicit safety statements only", "method"] == "not applicable"
    fit_rows = df[df["scenario"].isin(["base", "Petrou 2020 arms as independent"])]
    assert set(fit_rows["method"]) == {"mcmc"} and np.isfinite(fit_rows["median"]).all()
    # the pooled MSC effect is informed by Petrou 2020's arms either way: both rows differ from its prior's SD 1
    assert (fit_rows["sd"] < 1).all()
