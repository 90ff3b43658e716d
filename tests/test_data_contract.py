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
