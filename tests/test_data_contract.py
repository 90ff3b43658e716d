"""The data contract: which columns a table needs, which it may leave out, and what an arm's n is.

Event counts without patient counts (adverse_events.csv, mri.csv), exposure with its unit, the
effect_sizes.csv table, and arms.csv with only study and arm (n taken from the outcome tables)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import write_evidence

from msc_bayes.errors import EvidenceError
from msc_bayes.evidence import (
    DEFAULT_CI_LEVEL,
    EXPOSURE_UNITS,
    PATIENT_COUNTS,
    PERSON_YEARS_PER_UNIT,
    ROW_KEYS,
    SCHEMAS,
    TABLES,
    load_evidence,
)
from msc_bayes.evidence.schema import _needed_columns

ARMS = [{"study": "a2001", "arm": "msc", "n": "10"}, {"study": "b2002", "arm": "msc", "n": "20"}]


def problems(folder: Path, **tables) -> list:
    with pytest.raises(EvidenceError) as info:
        write_evidence(folder, **tables)
    return info.value.problems


def only(folder: Path, **tables):
    found = problems(folder, **tables)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def ae(**cells) -> dict:
    return {"study": "a2001", "arm": "msc", "event": "serious_ae", "n_at_risk": "10", **cells}


# --- the vocabulary -------------------------------------------------------------------------


def test_person_time_units_convert_to_person_years():
    assert set(PERSON_YEARS_PER_UNIT) == set(EXPOSURE_UNITS) - {"administrations"}
    assert PERSON_YEARS_PER_UNIT["person_years"] == 1.0
    assert 12 * PERSON_YEARS_PER_UNIT["person_months"] == pytest.approx(1.0, abs=1e-15)
    assert 365.25 * PERSON_YEARS_PER_UNIT["person_days"] == pytest.approx(1.0, abs=1e-15)


# --- event counts and exposure ----------------------------------------------------------------


@pytest.mark.parametrize("table", ["adverse_events", "mri"])
def test_events_only_table_loads(tmp_path, table):
    """A table with `events` and no patients_with_event column: the events are data, the patients not reported."""
    row = ae(events="3", exposure="12.5", exposure_unit="person_months")
    if table == "mri":
        row = {**row, "event": "gd_lesions", "timepoint_months": "6"}
    ev = write_evidence(tmp_path, arms=ARMS, **{table: [row]})
    t = ev.table(table)
    assert t["events"].tolist() == [3] and t["patients_with_event"].isna().all()
    assert t["exposure"].tolist() == [12.5] and t["exposure_unit"].tolist() == ["person_months"]


@pytest.mark.parametrize("table", ["adverse_events", "mri"])
def test_a_table_without_either_count_column(tmp_path, table):
    row = {k: v for k, v in ae().items()} | ({"event": "gd_lesions", "timepoint_months": "6"} if table == "mri" else {})
    p = only(tmp_path, arms=ARMS, **{table: [row]})
    assert (Path(p.file).name, p.column, p.value) == (f"{table}.csv", "patients_with_event/events", "(columns absent)")


def test_a_row_with_neither_count_is_a_problem(tmp_path):
    p = only(tmp_path, arms=ARMS, adverse_events=[ae(patients_with_event="1"), ae(event="infection", events="")])
    assert (Path(p.file).name, p.line, p.column, p.value) == ("adverse_events.csv", 3, "patients_with_event", "")
    assert "patients_with_event or events" in p.expected


@pytest.mark.parametrize("given, missing", [({"exposure": "4.2"}, "exposure_unit"),
                                            ({"exposure_unit": "person_years"}, "exposure")])
def test_exposure_and_its_unit_go_together(tmp_path, given, missing):
    p = only(tmp_path, arms=ARMS, adverse_events=[ae(events="2", **given)])
    assert (Path(p.file).name, p.line, p.column, p.value) == ("adverse_events.csv", 2, missing, "")


def test_unknown_exposure_unit(tmp_path):
    p = only(tmp_path, arms=ARMS, adverse_events=[ae(events="2", exposure="3", exposure_unit="patient_years")])
    assert (p.column, p.value) == ("exposure_unit", "patient_years")
    assert "'person_years'" in p.expected and "did you mean 'person_years'" in p.expected


def test_events_fewer_than_patients_with_event(tmp_path):
    p = only(tmp_path, arms=ARMS, adverse_events=[ae(patients_with_event="4", events="3")])
    assert (p.column, p.value, p.expected) == ("events", 3, "at least patients_with_event (4)")


def test_without_secondary_keeps_a_row_whose_count_is_secondary(tmp_path):
    """A count blanked as secondary leaves the row "not reported" (the models say so), not dropped."""
    ev = write_evidence(tmp_path, arms=ARMS, adverse_events=[
        ae(events="2", secondary_fields="events"), ae(event="infection", patients_with_event="1", events="1",
                                                     secondary_fields="patients_with_event;events")])
    ns = ev.without_secondary()
    assert len(ns.adverse_events) == 2
    assert ns.adverse_events[["patients_with_event", "events"]].isna().all().all()
    assert ("patients_with_event", "events") not in _needed_columns("adverse_events")


# --- effect_sizes.csv -----------------------------------------------------------------------------


def es(**cells) -> dict:
    return {"study": "a2001", "arm": "msc", "y": "-0.4", **cells}


def test_effect_sizes_is_a_table():
    assert "effect_sizes" in TABLES
    assert ROW_KEYS["effect_sizes"] == ("study", "arm", "timepoint_months")
    assert PATIENT_COUNTS["effect_sizes"] == "n"
    schema = SCHEMAS["effect_sizes"]
    assert [c for c, col in schema.items() if col.required] == ["study", "arm", "y"]
    assert DEFAULT_CI_LEVEL == 0.95


def test_effect_sizes_rows_of_each_kind_load(tmp_path):
    rows = [es(se="0.2"), es(study="b2002", y="1e3", sd="2.5", n="12", timepoint_weeks="26"),
            es(arm="ctl", y="-12", ci_lower="-20", ci_upper="-4"),
            es(arm="x", y="0", ci_lower="-1", ci_upper="1.5", ci_level="0.9")]
    ev = write_evidence(tmp_path, effect_sizes=rows)  # no arms.csv: the arms are the rows' study/arm pairs
    t = ev.effect_sizes
    assert t["y"].tolist() == [-0.4, 1000.0, -12.0, 0.0]
    assert t["ci_level"].isna().tolist() == [True, True, True, False]  # blank stays blank: DEFAULT_CI_LEVEL is the reader's
    assert t["timepoint_months"].iloc[1] == pytest.approx(26 * 7 / 30.4375)
    assert set(zip(ev.arms["study"], ev.arms["arm"])) == {("a2001", "msc"), ("b2002", "msc"), ("a2001", "ctl"),
                                                         ("a2001", "x")}


@pytest.mark.parametrize("cells, column, value, expected", [
    ({}, "se", "", "the uncertainty of y: se, or sd with n, or ci_lower and ci_upper"),
    ({"sd": "1.2"}, "n", "", "the arm's n with sd (or se, or a CI)"),
    ({"ci_lower": "-1"}, "ci_upper", "", "both CI limits or neither"),
    ({"ci_upper": "1"}, "ci_lower", "", "both CI limits or neither"),
    ({"ci_lower": "1", "ci_upper": "-1"}, "ci_upper", -1.0, "greater than ci_lower (1.0)"),
    ({"ci_lower": "0", "ci_upper": "1"}, "y", -0.4, "inside its CI [0.0, 1.0]"),
    ({"se": "0.1", "ci_level": "0.95"}, "ci_level", 0.95, "blank when no CI is given"),
])
def test_effect_sizes_row_problems(tmp_path, cells, column, value, expected):
    p = only(tmp_path, effect_sizes=[es(**cells)])
    assert (Path(p.file).name, p.line, p.column, p.value, p.expected) == ("effect_sizes.csv", 2, column, value,
                                                                             expected)


@pytest.mark.parametrize("column, value", [("se", "0"), ("sd", "-1"), ("n", "0"), ("n", "2.5"), ("ci_level", "1"),
                                           ("ci_level", "95"), ("ci_level", "0"), ("y", "")])
def test_effect_sizes_cell_problems(tmp_path, column, value):
    row = es(se="0.2", sd="1", n="5", ci_lower="-1", ci_upper="1") | {column: value}
    p = only(tmp_path, effect_sizes=[row])
    assert (Path(p.file).name, p.line, p.column, p.value) == ("effect_sizes.csv", 2, column, value)
    if column == "ci_level":
        assert p.expected.startswith("a number > 0 and < 1 ")


def test_effect_sizes_duplicates_and_arm_sizes(tmp_path):
    rows = [es(se="0.2", timepoint_months="6"), es(se="0.3", timepoint_weeks=str(6 * 30.4375 / 7)),
            es(study="b2002", se="0.2", n="30")]
    found = problems(tmp_path, arms=[a | {"n": "20"} for a in ARMS], effect_sizes=rows)
    assert sorted((p.line, p.column) for p in found) == [(3, "study,arm,timepoint_months"), (4, "n")]
    assert next(p for p in found if p.column == "n").expected == "at most the arm's n in arms.csv (20)"


def test_effect_sizes_may_be_any_real_and_have_no_edss_checks(tmp_path):
    ev = write_evidence(tmp_path, effect_sizes=[es(y="-37.25", se="11"), es(arm="b", y="0.13", sd="0.5", n="9")])
    assert ev.effect_sizes["y"].tolist() == [-37.25, 0.13]
    assert pd.api.types.is_float_dtype(ev.effect_sizes["y"])


def test_validate_lists_effect_sizes(tmp_path, capsys):
    from msc_bayes.cli import main

    write_evidence(tmp_path, effect_sizes=[es(se="0.2"), es(study="b2002", se="0.1")])
    assert main(["validate", "--data", str(tmp_path)]) == 0
    assert "effect_sizes" in capsys.readouterr().out


def test_bundled_data_still_loads():
    ev = load_evidence(Path(__file__).resolve().parents[1] / "data")
    assert len(ev.adverse_events) and ev.effect_sizes.empty
    assert list(ev.effect_sizes.columns) == list(SCHEMAS["effect_sizes"])


# --- arms.csv n: optional, from the outcome tables ---------------------------------------------

BARE = [{"study": "a2001", "arm": "msc"}, {"study": "b2002", "arm": "msc"}, {"study": "b2002", "arm": "ctl"}]


def edss(study: str, arm: str, n: str, t: str = "6", mean: str = "-0.2") -> dict:
    return {"study": study, "arm": arm, "timepoint_months": t, "n": n, "change_mean": mean, "change_se": "0.1"}


def test_arms_of_only_study_and_arm_take_n_from_the_outcome_tables(tmp_path):
    ev = write_evidence(
        tmp_path, arms=BARE,
        edss=[edss("a2001", "msc", "12"), edss("a2001", "msc", "12", t="12"), edss("b2002", "msc", "8")],
        adverse_events=[ae(patients_with_event="1", n_at_risk="12"), ae(study="b2002", arm="ctl", events="2",
                                                                         n_at_risk="7")],
        effect_sizes=[es(n="12", se="0.3")])
    n = dict(zip(zip(ev.arms["study"], ev.arms["arm"]), ev.arms["n"]))
    assert n == {("a2001", "msc"): 12, ("b2002", "msc"): 8, ("b2002", "ctl"): 7}
    assert ev.n_from_outcomes == {("a2001", "msc"), ("b2002", "msc"), ("b2002", "ctl")}
    assert set(ev.arms["group"]) == {"msc"}  # no group column: MSC arms, as before


def test_a_blank_n_whose_outcome_rows_disagree_is_a_problem(tmp_path):
    arms = [{"study": "a2001", "arm": "msc", "n": ""}, {"study": "b2002", "arm": "msc", "n": "9"}]
    p = only(tmp_path, arms=arms, edss=[edss("a2001", "msc", "12"), edss("a2001", "msc", "10", t="12"),
                                        edss("a2001", "msc", "10", t="18"), edss("b2002", "msc", "8")],
             adverse_events=[ae(patients_with_event="0", n_at_risk="12")])
    assert (Path(p.file).name, p.line, p.column, p.value) == ("arms.csv", 2, "n", "")
    assert p.expected == ("one n for the arm, and its outcome rows count different patients: 10 in edss.csv line 3 (n), "
                          "edss.csv line 4 (n); 12 in edss.csv line 2 (n), adverse_events.csv line 2 (n_at_risk): "
                          "give n in arms.csv")


def test_a_given_n_keeps_the_old_rule(tmp_path):
    """Counts below a given n are fine (drop-outs); above it, a problem; nothing is filled."""
    arms = [{"study": "a2001", "arm": "msc", "n": "15"}, {"study": "b2002", "arm": "msc", "n": "9"}]
    ev = write_evidence(tmp_path / "ok", arms=arms, edss=[edss("a2001", "msc", "12"), edss("a2001", "msc", "10", t="12")])
    assert ev.arms["n"].tolist() == [15, 9] and not ev.n_from_outcomes
    p = only(tmp_path / "bad", arms=arms, edss=[edss("b2002", "msc", "10")])
    assert (Path(p.file).name, p.column, p.value, p.expected) == ("edss.csv", "n", 10, "at most the arm's n in arms.csv (9)")


def test_an_arm_no_row_counts_keeps_n_missing(tmp_path):
    patients = [{"study": "b2002", "arm": "msc", "patient": "p1", "timepoint_months": "0", "edss": "3"},
                {"study": "b2002", "arm": "msc", "patient": "p1", "timepoint_months": "12", "edss": "3.5"}]
    ev = write_evidence(tmp_path, arms=BARE[:2], patients=patients, effect_sizes=[es(se="0.2")])
    assert ev.arms["n"].isna().all() and not ev.n_from_outcomes


def test_without_an_arms_csv_disagreeing_counts_leave_n_missing(tmp_path):
    ev = write_evidence(tmp_path, edss=[edss("a2001", "msc", "12"), edss("a2001", "msc", "10", t="12"),
                                        edss("b2002", "msc", "8")])
    n = dict(zip(ev.arms["study"], ev.arms["n"]))
    assert pd.isna(n["a2001"]) and n["b2002"] == 8
    assert not ev.arms_given
    same = ev.with_tables()  # the arms are derived again, not read as an arms.csv with a blank n
    assert not same.arms_given
    pd.testing.assert_frame_equal(same.arms, ev.arms)


def test_with_tables_derives_a_filled_n_again(tmp_path):
    ev = write_evidence(tmp_path, arms=BARE[:2], edss=[edss("a2001", "msc", "12"), edss("b2002", "msc", "8")])
    table = ev.edss
    table.loc[table["study"] == "a2001", "n"] = 14  # more patients: the arm's n follows (was read as given: a problem)
    new = ev.with_tables(edss=table)
    assert dict(zip(new.arms["study"], new.arms["n"])) == {"a2001": 14, "b2002": 8}
    assert new.n_from_outcomes == ev.n_from_outcomes == {("a2001", "msc"), ("b2002", "msc")}
    assert ev.subset(studies=["a2001"]).n_from_outcomes == ev.n_from_outcomes


def test_a_filled_n_is_checked_like_a_given_one(tmp_path):
    """periods_after_msc and shared_patients are checked against the n taken from the outcome tables."""
    arms = [{"study": "a2001", "arm": "msc", "group": "msc"},
            {"study": "a2001", "arm": "ctl", "group": "control", "periods_after_msc": "9"}]
    found = problems(tmp_path, arms=arms, edss=[edss("a2001", "msc", "8"), edss("a2001", "ctl", "8")],
                     shared_patients=[{"study": "a2001", "arm": "msc", "other_arm": "ctl", "patients": "9"}])
    assert sorted((Path(p.file).name, p.column, p.value) for p in found) == [
        ("arms.csv", "periods_after_msc", 9), ("shared_patients.csv", "patients", 9)]


def test_without_secondary_and_a_blank_n(tmp_path):
    arms = [{"study": "a2001", "arm": "msc", "n": "", "secondary_fields": ""},
            {"study": "b2002", "arm": "msc", "n": "8", "secondary_fields": "n"}]
    ev = write_evidence(tmp_path, arms=arms, edss=[edss("a2001", "msc", "12"), edss("b2002", "msc", "8")])
    ns = ev.without_secondary()
    assert ns.studies == ["a2001"]  # an arm whose given n is secondary leaves with its rows; a blank n does not
    assert ns.arms["n"].tolist() == [12]


# --- every outcome with arms.csv of only study and arm, or none --------------------------------



def small_folder(folder: Path, arms: list[dict] | None):
    rows = [("a2001", "msc", "10"), ("b2002", "msc", "12"), ("c2003", "msc", "6")]
    return write_evidence(
        folder, arms=arms,
        edss=[edss(s, a, n, mean=m) for (s, a, n), m in zip(rows, ("-0.2", "0.1", "0.3"))],
        adverse_events=[ae(study=s, arm=a, n_at_risk=n, patients_with_event=k) for (s, a, n), k in zip(rows, "102")]
        + [ae(study="a2001", event="infection", n_at_risk="10", events="3")],
        mri=[{"study": s, "arm": a, "event": "gd_enhancing", "timepoint_months": "6", "n_at_risk": n, **c}
             for (s, a, n), c in zip(rows, ({"patients_with_event": "2"}, {"events": "4"}, {"patients_with_event": "0"}))])


@pytest.mark.parametrize("outcome", ["edss_change", "adverse_events", "mri_activity"])
@pytest.mark.parametrize("arms", ["bare", "none"])
def test_every_outcome_prepares_and_builds(tmp_path, outcome, arms):
    import numpy as np

    from msc_bayes import outcomes
    from msc_bayes.spec import spec_from_dict

    bare = [{"study": s, "arm": "msc", "route": r} for s, r in (("a2001", "IV"), ("b2002", "IT"), ("c2003", "IV"))]
    ev = small_folder(tmp_path, bare if arms == "bare" else None)  # arms.csv of study, arm and a covariate, or none
    assert ev.arms["n"].tolist() == [10, 12, 6]
    spec = spec_from_dict({"name": "x", "outcome": outcome, "covariates": ["route"] if arms == "bare" else []})
    out = outcomes.get(outcome)
    model, prepared = out.build(spec, ev)
    units = prepared.units
    assert len(units) >= 3 and units["n"].notna().all()
    if outcome == "mri_activity":  # b2002 reports lesions, not patients: a Poisson unit over its 12 patients
        assert units.loc[units["study"] == "b2002", "likelihood"].tolist() == ["poisson"]
    if outcome == "adverse_events":
        assert "poisson" in set(units["likelihood"]) and "binomial" in set(units["likelihood"])
    if "n_arm" in units:  # the arm's n the outcome tables gave
        assert dict(zip(units["study"], units["n_arm"])) == {"a2001": 10, "b2002": 12, "c2003": 6}
    if arms == "bare":
        assert list(model.coords["covariate"]) == ["route[IV]"]  # the default reference route is IT
    # the graph's Python ops (FAST_COMPILE): a numba compile per outcome costs seconds on empty caches, and
    # tests that fit each outcome compile it for nutpie anyway
    logp = model.compile_logp(mode="FAST_COMPILE")(model.initial_point())
    assert np.isfinite(logp)


@pytest.mark.parametrize("outcome", ["event_rates", "effect_size"])
@pytest.mark.parametrize("arms", ["bare", "none"])
def test_the_user_scale_outcomes_prepare_and_build_on_bare_arms_or_none(tmp_path, outcome, arms):
    """The event-rate and effect-size outcomes on an arms.csv of study, arm and route, or without one: n from
    the outcome rows, every row a unit, a finite log density."""
    import numpy as np

    from msc_bayes import outcomes
    from msc_bayes.spec import spec_from_dict

    rows = [("a2001", "IV", "10", "3", "12.5", "person_years"), ("b2002", "IT", "12", "0", "150", "person_months"),
            ("c2003", "IV", "6", "1", "2190", "person_days")]
    bare = [{"study": s, "arm": "msc", "route": r} for s, r, *_ in rows]
    ev = write_evidence(
        tmp_path, arms=bare if arms == "bare" else None,
        adverse_events=[ae(study=s, n_at_risk=n, events=k, exposure=e, exposure_unit=u) for s, _, n, k, e, u in rows],
        effect_sizes=[{"study": s, "arm": "msc", "y": y, "se": "0.2", "n": n}
                      for (s, _, n, *_), y in zip(rows, ("-0.3", "0.1", "-0.2"))])
    assert ev.arms["n"].tolist() == [10, 12, 6]
    priors = {"mu": {"dist": "Normal", "mu": 0, "sigma": 1}, "tau": {"dist": "HalfNormal", "sigma": 0.5}}
    spec = spec_from_dict({"name": "x", "outcome": outcome, "covariates": ["route"] if arms == "bare" else [],
                           **({"priors": priors} if outcome == "effect_size" else {})})
    model, prepared = outcomes.get(outcome).build(spec, ev)
    assert sorted(prepared.units["study"]) == ["a2001", "b2002", "c2003"]
    if outcome == "event_rates":  # 12.5 person-years, 150 months and 2190 days, each in person-years
        years = dict(zip(prepared.units["study"], prepared.units["model_exposure"]))
        assert years == pytest.approx({"a2001": 12.5, "b2002": 12.5, "c2003": 2190 / 365.25}, rel=1e-12)
    if arms == "bare":
        assert list(model.coords["covariate"]) == ["route[IV]"]
    assert np.isfinite(model.compile_logp(mode="FAST_COMPILE")(model.initial_point()))  # as above: Python ops


def test_patients_beyond_a_filled_n(tmp_path):
    patients = [{"study": "a2001", "arm": "msc", "patient": f"p{k}", "timepoint_months": "12", "change": "0.5"}
                for k in range(3)]
    p = only(tmp_path, arms=BARE[:1], edss=[edss("a2001", "msc", "2")], patients=patients)
    assert (Path(p.file).name, p.line, p.column, p.value) == ("patients.csv", 4, "patient", "p2")
    assert p.expected == "at most the arm's n (arms.csv blank: the outcome tables' count) (2) distinct patients"
