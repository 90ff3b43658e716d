"""Tests for msc_bayes.evidence: loading, validation, provenance and immutability (no sampling)."""

from __future__ import annotations

import csv
import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import (
    DAYS_PER_MONTH,
    GRADES,
    SCHEMAS,
    TABLES,
    Evidence,
    load_evidence,
)
from msc_bayes.evidence.checks import _partition_exists
from msc_bayes.evidence.describe import describe

DATA = Path(__file__).resolve().parents[1] / "data"
TABLES = tuple(t for t in TABLES if (DATA / f"{t}.csv").exists())  # the bundled ones (not effect_sizes.csv)
WEEK = 7 / DAYS_PER_MONTH  # months per week


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return load_evidence(DATA)


def raw_table(name: str, folder: Path = DATA) -> tuple[list[str], list[list[str]]]:
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def write_table(folder: Path, name: str, header: list[str], rows: list[list[str]]) -> None:
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(EvidenceError) as info:
        load_evidence(folder)
    problems = info.value.problems
    assert problems and all(isinstance(p, Problem) for p in problems)
    assert str(info.value).startswith(f"{len(problems)} problem(s)")
    return problems


def only_problem(folder: Path) -> Problem:
    problems = problems_of(folder)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def where(df: pd.DataFrame, **match) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    for k, v in match.items():
        keep &= (df[k] == v).to_numpy(dtype=bool, na_value=False)
    return df[keep]


def one(df: pd.DataFrame, **match):
    rows = where(df, **match)
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --- the bundled evidence ------------------------------------------------------------


def test_bundled_data_loads_with_every_row(ev):
    assert isinstance(ev, Evidence)
    _, arm_rows = raw_table("arms")
    assert ev.studies == sorted({r[0] for r in arm_rows})
    assert len(ev.studies) >= 25 and len(ev.arms) >= 38
    for name in TABLES:
        assert len(ev.table(name)) == len(raw_table(name)[1]), name
    assert {"petrou2021", "iacobaeus2019", "lu2020"} <= set(ev.studies)
    assert len(ev.data_hash) == 16 and ev.data_hash == load_evidence(DATA).data_hash


@pytest.mark.parametrize("name", TABLES)
def test_every_row_has_provenance(ev, name):
    df = ev.table(name)
    assert len(df)
    for col in ("location", "confidence") + (("source",) if name == "arms" else ()):
        blank = df[col].isna() | (df[col].astype(str).str.strip() == "")
        assert not blank.any(), f"{name}.{col} blank in rows {list(np.flatnonzero(blank) + 1)}"
    assert set(df["grade"]) <= set(GRADES), set(df["grade"])


def _derived_columns(text: str) -> list[str]:
    """'worsened: 5 - 3 ...; threshold: ...' -> ['worsened', 'threshold']; 'a/b: ...' -> ['a', 'b']."""
    names = []
    for entry in text.split(";"):
        if ":" in entry:
            names += [c.strip() for c in entry.split(":", 1)[0].split("/")]
    return names


@pytest.mark.parametrize("name", TABLES)
def test_derived_values_name_real_columns(ev, name):
    df = ev.table(name)
    flagged = df["derived"].dropna()
    flagged = flagged[flagged.str.strip() != ""]
    for i, text in flagged.items():
        named = _derived_columns(text)
        assert named, f"{name} row {i + 1}: derived text names no column: {text!r}"
        assert set(named) <= set(df.columns), f"{name} row {i + 1}: {named} not all columns"


def test_known_derived_values_are_flagged(ev):
    assert "worsened" in _derived_columns(one(ev.edss, study="bonab2005")["derived"])
    assert "patients_with_event" in _derived_columns(one(ev.mri, study="iacobaeus2019", timepoint_weeks=12.0)["derived"])
    for arm in ("nmo", "rrms"):
        assert "patients_with_event" in _derived_columns(one(ev.adverse_events, study="lu2020", arm=arm,
                                                             event="intolerable_ae")["derived"])
    assert "threshold" in _derived_columns(one(ev.edss, study="petrou2021")["derived"])


@pytest.mark.parametrize("name", TABLES)
def test_secondary_fields_name_real_columns(ev, name):
    df = ev.table(name)
    for i, text in df["secondary_fields"].dropna().items():
        fields = [f.strip() for f in text.split(";") if f.strip()]
        assert fields and set(fields) <= set(df.columns), (name, i + 1, text)
    secondary = where(df, grade="secondary")
    if name != "patients":  # a secondary-grade row says which values are secondary
        assert secondary["secondary_fields"].notna().all(), secondary


# --- the headline numbers ------------------------------------------------------------


def test_petrou2021_headline_numbers(ev):
    arm = one(ev.arms, study="petrou2021", arm="all")
    assert (arm.n, arm.courses_min, arm.courses_max, arm.route) == (24, 1, 9, "IT+IV")
    assert pd.isna(arm.courses)
    e = one(ev.edss, study="petrou2021", arm="all")
    assert e.n == 24
    assert (e.baseline_mean, e.baseline_sd, e.followup_mean, e.followup_sd) == (6.75, 0.68, 6.42, 0.84)
    assert e.timepoint_months == 27.8
    assert (e.improved, e.stable_or_improved) == (10, 22)
    assert pd.isna(e.stable) and pd.isna(e.worsened)  # not reported, not zero
    ae = one(ev.adverse_events, study="petrou2021", arm="all")
    assert (ae.event, ae.attribution, ae.patients_with_event, ae.n_at_risk) == ("serious_ae", "related", 0, 24)
    assert ae.serious is True or ae.serious == True


def test_iacobaeus2019_headline_numbers(ev):
    arm = one(ev.arms, study="iacobaeus2019", arm="all")
    assert (arm.route, arm.courses, arm.n) == ("IV", 1, 7)
    wk12 = one(ev.edss, study="iacobaeus2019", timepoint_weeks=12.0)
    assert (wk12.n, wk12.stable) == (6, 6)
    assert pd.isna(wk12.improved) and pd.isna(wk12.worsened)
    wk48 = one(ev.edss, study="iacobaeus2019", timepoint_weeks=48.0)
    assert (wk48.n, wk48.worsened) == (5, 3)
    assert pd.isna(wk48.improved) and pd.isna(wk48.stable)
    mri = where(ev.mri, study="iacobaeus2019", event="new_t2").sort_values("timepoint_weeks")
    assert list(zip(mri.timepoint_weeks, mri.patients_with_event, mri.n_at_risk)) == [(12, 1, 6), (48, 3, 5)]


def test_lu2020_headline_numbers(ev):
    arms = where(ev.arms, study="lu2020").set_index("arm")
    assert sorted(arms.index) == ["nmo", "rrms"]
    for arm in ("nmo", "rrms"):
        a = arms.loc[arm]
        assert (a.n, a.administrations, a.followup_months, a.route) == (5, 7, 120, "IT+IV")
        ae = one(ev.adverse_events, study="lu2020", arm=arm, event="intolerable_ae")
        assert (ae.event, ae.patients_with_event, ae.n_at_risk) == ("intolerable_ae", 0, 5)
    assert (arms.loc["nmo", "disease"], arms.loc["rrms", "disease"]) == ("NMO", "RRMS")


def test_zero_is_not_missing(ev):
    # Lu 2020 reports no EDSS: no rows (not reported), rather than zeros
    assert where(ev.edss, study="lu2020").empty
    assert where(ev.patients, study="lu2020").empty
    # Petrou 2021 reports zero related serious AEs: a 0, not NaN
    pwe = one(ev.adverse_events, study="petrou2021")["patients_with_event"]
    assert not pd.isna(pwe) and pwe == 0
    # a reported (derived) zero count stays zero
    assert one(ev.edss, study="bonab2005").worsened == 0
    assert ev.adverse_events["patients_with_event"].dtype == "Int64"


def test_weeks_converted_to_months(ev):
    assert 12 * WEEK == pytest.approx(12 * 7 / 30.4375)
    for table in (ev.edss, ev.mri):
        rows = where(table, study="iacobaeus2019")
        assert set(rows.timepoint_weeks) == {12.0, 48.0}
        for r in rows.itertuples():
            assert r.timepoint_months == pytest.approx(r.timepoint_weeks * 7 / 30.4375, rel=1e-12)
    assert one(ev.edss, study="iacobaeus2019", timepoint_weeks=12.0).timepoint_months == pytest.approx(2.7598, abs=1e-4)
    assert one(ev.arms, study="iacobaeus2019").followup_months == pytest.approx(48 * 7 / 30.4375)
    # a months-only row is untouched
    assert one(ev.edss, study="petrou2021").timepoint_months == 27.8
    assert pd.isna(one(ev.edss, study="petrou2021").timepoint_weeks)
    assert ev.edss["timepoint_months"].notna().all()


# --- immutability --------------------------------------------------------------------


def test_returned_tables_are_copies(ev):
    arms = ev.arms
    arms.loc[0, "n"] = 999
    arms["extra"] = 1
    del arms["label"]
    edss = ev.table("edss")
    edss.loc[:, "baseline_mean"] = 0.0
    edss.iloc[0, 0] = "someone_else"
    try:  # a raw array is read-only, or at least a private copy
        ev.edss["baseline_mean"].to_numpy()[0] = -1.0
    except ValueError:
        pass
    fresh = ev.arms
    assert fresh.loc[0, "n"] == 24 and "extra" not in fresh and "label" in fresh
    assert ev.table("edss").loc[0, "baseline_mean"] == 6.75
    assert ev.edss.loc[0, "study"] == "petrou2021"


def test_evidence_attributes_cannot_be_assigned(ev):
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.path = "elsewhere"
    with pytest.raises(AttributeError):
        ev.arms = ev.arms.iloc[:1]
    with pytest.raises(AttributeError):
        ev.data_hash = "0" * 16
    assert len(ev.arms) > 1 and ev.path == str(DATA)
    with pytest.raises(AttributeError):
        ev.no_such_table  # noqa: B018
    with pytest.raises(KeyError, match="no table"):
        ev.table("edsss")


def test_arms_where_cannot_change_the_evidence(ev):
    def predicate(arms):
        arms["n"] = 0  # a careless predicate writing to its argument
        return arms["disease"] != "NMO"

    sub = ev.subset(arms_where=predicate)
    assert "NMO" not in set(sub.arms["disease"])
    assert one(ev.arms, study="petrou2021").n == 24
    assert one(sub.arms, study="petrou2021").n == 24


# --- validation: one problem at a time -------------------------------------------------


def test_edss_out_of_range(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021", "arm": "all"}, "baseline_mean", "12.5")
    p = only_problem(data_copy)
    assert Path(p.file).name == "edss.csv" and Path(p.file).parent == data_copy
    assert (p.row, p.column, p.value) == (row, "baseline_mean", "12.5") == (1, "baseline_mean", "12.5")
    assert p.line == 2  # the first data row is the file's line 2: messages name the line
    assert "between 0 and 10" in p.expected and "EDSS" in p.expected
    assert str(p) == (f"{data_copy / 'edss.csv'}, line 2, column 'baseline_mean': found '12.5'; "
                      "expected a number between 0 and 10 (EDSS)")


def test_patients_with_event_above_n_at_risk(data_copy, edit_cell):
    row = edit_cell(data_copy / "adverse_events.csv", {"study": "petrou2021"}, "patients_with_event", "30")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("adverse_events.csv", row, "patients_with_event", 30)
    assert p.expected == "at most n_at_risk (24)"


def test_negative_count(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "bonab2012"}, "improved", "-1")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", row, "improved", "-1")
    assert p.expected == "a whole number >= 0"


@pytest.mark.parametrize("file, match, column", [
    ("arms.csv", {"study": "lu2020", "arm": "nmo"}, "n"),
    ("edss.csv", {"study": "petrou2021"}, "n"),
    ("mri.csv", {"study": "yamout2010", "event": "gd_enhancing"}, "n_at_risk"),
])
def test_zero_patients(data_copy, edit_cell, file, match, column):
    row = edit_cell(data_copy / file, match, column, "0")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == (file, row, column, "0")
    assert p.expected == "a whole number >= 1"


@pytest.mark.parametrize("value", ["0", "-0.68"])
def test_sd_not_positive(data_copy, edit_cell, value):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "baseline_sd", value)
    p = only_problem(data_copy)
    assert (p.row, p.column, p.value) == (row, "baseline_sd", value)
    assert p.expected == "a number > 0"


def test_counts_sum_above_n(data_copy, edit_cell):
    edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "improved", "20")
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "stable", "10")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column) == ("edss.csv", row, "improved/stable/worsened")
    assert "improved=20" in p.value and "stable=10" in p.value
    assert "n = 24" in p.expected


def test_count_above_n(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "bonab2012"}, "stable", "23")
    problems = problems_of(data_copy)
    assert any((p.row, p.column, p.value, p.expected) == (row, "stable", 23, "at most n (22)") for p in problems)


def test_stable_or_improved_below_improved(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "stable_or_improved", "8")
    p = only_problem(data_copy)
    assert (p.row, p.column) == (row, "improved/stable/worsened")
    assert "improved=10" in p.value and "stable_or_improved=8" in p.value


def test_unknown_route_suggests_the_code(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "iacobaeus2019"}, "route", "iv")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("arms.csv", row, "route", "iv")
    assert "did you mean 'IV'" in p.expected and "'IT+IV'" in p.expected
    assert "did you mean 'IV'" in str(EvidenceError([p]))


def test_unknown_disease_suggests_the_code(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "connick2012"}, "disease", "SPSM")
    p = only_problem(data_copy)
    assert (p.row, p.column, p.value) == (row, "disease", "SPSM")
    assert "did you mean 'SPMS'" in p.expected


def test_study_arm_missing_from_arms(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "arm", "al")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", row, "study/arm", "petrou2021/al")
    assert "arms.csv" in p.expected and "did you mean 'all'" in p.expected


def test_unknown_study(data_copy, edit_cell):
    row = edit_cell(data_copy / "mri.csv", {"study": "riordan2018"}, "study", "nobody1999")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("mri.csv", row, "study/arm", "nobody1999/all")


def test_duplicate_row(data_copy):
    header, rows = raw_table("edss", data_copy)
    rows.append(list(rows[0]))  # petrou2021 again
    write_table(data_copy, "edss", header, rows)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column) == ("edss.csv", len(rows), "study,arm,timepoint_months")
    assert p.value == ("petrou2021", "all", 27.8)
    assert "unique" in p.expected


def test_duplicate_row_in_weeks(data_copy, edit_cell):
    # 12 weeks in one row and the same time in months in another is the same timepoint
    header, rows = raw_table("mri", data_copy)
    copy = list(rows[0])
    copy[header.index("timepoint_weeks")] = ""
    copy[header.index("timepoint_months")] = repr(12 * 7 / DAYS_PER_MONTH)
    write_table(data_copy, "mri", header, rows + [copy])
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row) == ("mri.csv", len(rows) + 1)


def test_non_numeric_value(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "karussis2010", "timepoint_months": "1"}, "baseline_mean", "6.7a")
    p = only_problem(data_copy)  # no follow-on complaint about the blanked mean
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", row, "baseline_mean", "6.7a")
    assert p.expected.startswith("a number")


def test_unknown_column_suggests_the_name(data_copy):
    header, rows = raw_table("edss", data_copy)
    header[header.index("change_mean")] = "chnage_mean"
    write_table(data_copy, "edss", header, rows)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column) == ("edss.csv", None, "chnage_mean")
    assert "did you mean 'change_mean'" in p.expected


def test_extra_arms_column_is_a_covariate(data_copy):
    header, rows = raw_table("arms", data_copy)
    write_table(data_copy, "arms", header + ["age_mean"], [r + [str(40 + i)] for i, r in enumerate(rows)])
    ev = load_evidence(data_copy)
    assert ev.arms["age_mean"].dtype == "float64" and ev.arms["age_mean"].iloc[0] == 40


@pytest.mark.parametrize("file, column", [("edss.csv", "n"), ("adverse_events.csv", "n_at_risk"), ("arms.csv", "study")])
def test_missing_required_column(data_copy, file, column):
    header, rows = raw_table(file[:-4], data_copy)
    k = header.index(column)
    write_table(data_copy, file[:-4], header[:k] + header[k + 1:], [r[:k] + r[k + 1:] for r in rows])
    problems = problems_of(data_copy)
    absent = [p for p in problems if p.value == "(column absent)"]
    assert len(absent) == 1
    p = absent[0]
    assert (Path(p.file).name, p.row, p.column) == (file, None, column)
    assert f"'{column}'" in p.expected


def test_required_value_blank(data_copy, edit_cell):
    row = edit_cell(data_copy / "patients.csv", {"study": "bonab2005", "patient": "p2"}, "patient", "NA")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column) == ("patients.csv", row, "patient")
    assert "required" in p.expected


def test_both_months_and_weeks(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "iacobaeus2019", "timepoint_weeks": "12"}, "timepoint_months", "3")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", row, "timepoint_weeks", 12.0)
    assert "not both" in p.expected


def test_no_timepoint(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "iacobaeus2019", "timepoint_weeks": "48"}, "timepoint_weeks", "")
    p = only_problem(data_copy)
    assert (p.row, p.column) == (row, "timepoint_months")


@pytest.mark.parametrize("column, value", [("edss", "6.3"), ("change", "-1.3")])
def test_patient_edss_off_the_half_point_grid(data_copy, edit_cell, column, value):
    path, match = data_copy / "patients.csv", {"study": "bonab2005", "patient": "p4"}
    if column == "edss":
        edit_cell(path, match, "change", "")
    row = edit_cell(path, match, column, value)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("patients.csv", row, column, float(value))
    assert "multiple of 0.5" in p.expected


def test_patient_with_both_edss_and_change(data_copy, edit_cell):
    row = edit_cell(data_copy / "patients.csv", {"study": "sahraian2014"}, "edss", "5")
    p = only_problem(data_copy)
    assert (p.row, p.column) == (row, "edss/change")


def test_ci_checks(data_copy, edit_cell):
    path = data_copy / "edss.csv"
    row = edit_cell(path, {"study": "petrou2020", "arm": "msc_it", "timepoint_months": "6"}, "change_ci_lower", "-0.5")
    problems = problems_of(data_copy)
    assert {(p.row, p.column) for p in problems} == {(row, "change_ci_upper")}  # one limit without the other
    edit_cell(path, {"study": "petrou2020", "arm": "msc_it", "timepoint_months": "6"}, "change_ci_upper", "-0.3")
    problems = problems_of(data_copy)  # -0.20 outside [-0.5, -0.3]; and no level
    assert {(p.row, p.column) for p in problems} == {(row, "change_mean"), (row, "change_ci_level")}


def test_courses_min_above_max(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "odinak2012"}, "courses_min", "9")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("arms.csv", row, "courses_max", 8)


def test_secondary_field_that_is_no_column(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "bonab2007"}, "secondary_fields", "disease;folowup_months")
    p = only_problem(data_copy)
    assert (p.row, p.column, p.value) == (row, "secondary_fields", "folowup_months")
    assert "did you mean 'followup_months'" in p.expected


# --- validation: every problem at once ---------------------------------------------------


def test_problems_in_several_files_reported_together(data_copy, edit_cell):
    r_edss = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "baseline_mean", "12.5")
    r_ae = edit_cell(data_copy / "adverse_events.csv", {"study": "petrou2021"}, "patients_with_event", "30")
    r_arms = edit_cell(data_copy / "arms.csv", {"study": "iacobaeus2019"}, "route", "iv")
    r_mri = edit_cell(data_copy / "mri.csv", {"study": "yamout2010", "event": "gd_enhancing"}, "n_at_risk", "-7")
    problems = problems_of(data_copy)
    assert len(problems) >= 3
    found = {(Path(p.file).name, p.row, p.column) for p in problems}
    assert found == {("edss.csv", r_edss, "baseline_mean"), ("adverse_events.csv", r_ae, "patients_with_event"),
                     ("arms.csv", r_arms, "route"), ("mri.csv", r_mri, "n_at_risk")}


def test_malformed_row_reported_with_its_row(data_copy, edit_cell):
    header, rows = raw_table("patients", data_copy)
    rows[2] = rows[2] + ["surplus"]
    write_table(data_copy, "patients", header, rows)
    edss_row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "baseline_mean", "12.5")
    problems = problems_of(data_copy)
    by_file = {Path(p.file).name: p for p in problems}
    assert set(by_file) == {"patients.csv", "edss.csv"}  # the well-formed file is still checked
    p = by_file["patients.csv"]
    assert (p.row, p.column, p.value) == (3, None, f"{len(header) + 1} fields")
    assert f"{len(header)} fields" in p.expected
    assert (by_file["edss.csv"].row, by_file["edss.csv"].value) == (edss_row, "12.5")


def test_short_row(data_copy):
    header, rows = raw_table("mri", data_copy)
    rows[4] = rows[4][:-3]
    write_table(data_copy, "mri", header, rows)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.value) == ("mri.csv", 5, f"{len(header) - 3} fields")


def test_repeated_header_column(data_copy):
    header, rows = raw_table("mri", data_copy)
    header[header.index("note")] = "event"
    write_table(data_copy, "mri", header, rows)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.column, p.value) == ("mri.csv", "event", "repeated column")


def test_missing_folder_and_empty_folder(tmp_path):
    p = only_problem(tmp_path / "nowhere")
    assert "folder" in p.expected
    p = only_problem(tmp_path)
    assert p.value == "no tables"


def test_empty_file(data_copy):
    (data_copy / "mri.csv").write_text("")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.expected) == ("mri.csv", "a header row")


def test_not_utf8(data_copy):
    raw = (data_copy / "mri.csv").read_bytes()
    line = raw[: raw.index(b"Cutter")].count(b"\n") + 1
    (data_copy / "mri.csv").write_bytes(raw.replace(b"Cutter", b"Cutt\xe9r"))
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.value, p.line) == ("mri.csv", b"\xe9", line)  # the bad byte and its line
    assert p.expected.startswith("UTF-8 text") and f"line {line}" in str(p)


# --- regressions: bugs found while writing these tests -----------------------------------------


def test_folder_name_with_parenthesis(tmp_path, data_copy, edit_cell):
    folder = data_copy.rename(tmp_path / "data (copy)")
    row = edit_cell(folder / "patients.csv", {"study": "bonab2005", "patient": "p1"}, "change", "-1.5x")
    p = only_problem(folder)  # was: a second, spurious 'exactly one of edss or change' under another file name
    assert (p.file, p.row, p.column) == (str(folder / "patients.csv"), row, "change")


def test_whole_number_beyond_int64_is_a_problem(data_copy, edit_cell):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "n", "1e20")  # was: OverflowError
    p = only_problem(data_copy)
    assert (p.row, p.column, p.value) == (row, "n", "1e20")


def test_large_n_checks_counts_without_a_grid(data_copy, edit_cell):
    # the count check used an (n+1) x (n+1) array: n = 10**6 needed terabytes
    edit_cell(data_copy / "arms.csv", {"study": "petrou2021"}, "n", "1000000")  # (an outcome's n is at most its arm's)
    edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "n", "1000000")
    assert one(load_evidence(data_copy).edss, study="petrou2021").n == 10**6
    edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "stable", "999995")
    p = only_problem(data_copy)
    assert p.column == "improved/stable/worsened"


def _partition_brute_force(n, counts):
    for i in range(n + 1):
        for s in range(n + 1 - i):
            w = n - i - s
            got = {"improved": i, "stable": s, "worsened": w, "stable_or_improved": i + s, "stable_or_worsened": s + w}
            if all(pd.isna(v) or got[k] == v for k, v in counts.items()):
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(n=hs.integers(0, 8), data=hs.data())
def test_partition_check_matches_brute_force(n, data):
    count = hs.one_of(hs.just(pd.NA), hs.integers(-2, 10))
    counts = {c: data.draw(count, label=c)
              for c in ("improved", "stable", "worsened", "stable_or_improved", "stable_or_worsened")}
    assert _partition_exists(n, counts) == _partition_brute_force(n, counts)


def test_line_break_inside_a_quoted_cell_is_kept(data_copy, edit_cell):
    edit_cell(data_copy / "arms.csv", {"study": "petrou2021"}, "note", "line one\nline two\r\nline three")
    edit_cell(data_copy / "mri.csv", {"study": "riordan2018"}, "note", "a\u2028b")
    ev = load_evidence(data_copy)
    assert one(ev.arms, study="petrou2021").note == "line one\nline two\r\nline three"
    assert one(ev.mri, study="riordan2018").note == "a\u2028b"


def test_data_hash_identifies_the_content(ev, data_copy, edit_cell):
    a, b = ev.subset(exclude_studies=["lu2020"]), ev.subset(exclude_studies=["lu2013"])
    assert len({ev.data_hash, a.data_hash, b.data_hash, ev.without_secondary().data_hash}) == 4
    assert a.data_hash == ev.subset(exclude_studies=["lu2020"]).data_hash
    edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "followup_sd", "0.85")
    assert load_evidence(data_copy).data_hash != ev.data_hash


def test_with_tables_round_trip_and_revalidation(ev):
    same = ev.with_tables()  # was: 'not both' problems for every row given in weeks
    for name in TABLES:
        pd.testing.assert_frame_equal(same.table(name), ev.table(name))
    edss = ev.edss
    edss.loc[0, "baseline_mean"] = 12.5
    with pytest.raises(EvidenceError) as info:
        ev.with_tables(edss=edss)
    [p] = info.value.problems
    assert (p.file, p.row, p.column, p.value) == ("edss.csv", 1, "baseline_mean", "12.5")
    edss = ev.edss
    edss.loc[edss.study == "iacobaeus2019", "timepoint_months"] = 3.0  # months that contradict the weeks
    with pytest.raises(EvidenceError, match="not both"):
        ev.with_tables(edss=edss)
    with pytest.raises(KeyError):
        ev.with_tables(edsss=edss)


def test_with_tables_keeps_covariates_with_their_arms(ev):
    arms = ev.arms.assign(age_mean=[40.0 + i for i in range(len(ev.arms))]).iloc[::-1]  # index not 0..n-1
    got = ev.with_tables(arms=arms).arms  # was: covariates aligned by index, the other columns by position
    assert list(zip(got.study, got.arm, got.age_mean)) == list(zip(arms.study, arms.arm, arms.age_mean))


# --- a plain effect-size table -------------------------------------------------------------


PLAIN = """study,arm,timepoint_months,n,change_mean,change_se
alpha2001,treated,6,20,-0.20,0.10
beta2005,treated,12,15,0.10,0.15
gamma2010,treated,6,30,-0.05,0.08
delta2015,treated,12,12,0.30,0.20
epsilon2020,treated,24,40,-0.10,0.05
"""


def test_plain_effect_size_table(tmp_path):
    (tmp_path / "edss.csv").write_text(PLAIN)
    ev = load_evidence(tmp_path)
    assert ev.studies == sorted(["alpha2001", "beta2005", "gamma2010", "delta2015", "epsilon2020"])
    assert len(ev.arms) == 5 and set(ev.arms["group"]) == {"msc"} and set(ev.arms["arm"]) == {"treated"}
    assert dict(zip(ev.arms.study, ev.arms.n)) == {"alpha2001": 20, "beta2005": 15, "gamma2010": 30,
                                                    "delta2015": 12, "epsilon2020": 40}
    assert list(ev.edss["change_se"]) == [0.10, 0.15, 0.08, 0.20, 0.05]
    assert ev.edss["change_mean"].iloc[3] == 0.30
    for name in ("patients", "adverse_events", "mri"):
        assert ev.table(name).empty and "study" in ev.table(name)
    assert not describe(ev).empty


def test_plain_effect_size_table_is_validated(tmp_path):
    (tmp_path / "edss.csv").write_text(PLAIN.replace("0.15", "-0.15"))
    p = only_problem(tmp_path)
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", 2, "change_se", "-0.15")


# --- subset and without_secondary ------------------------------------------------------------


def test_without_secondary(ev):
    ns = ev.without_secondary()
    six = one(ns.edss, study="karussis2010", timepoint_months=6.0)
    assert pd.isna(six.followup_mean) and pd.isna(six.improved) and pd.isna(six.stable) and pd.isna(six.threshold)
    assert six.baseline_mean == 6.7 and six.n == 15  # primary values stay
    assert one(ev.edss, study="karussis2010", timepoint_months=6.0).improved == 11  # the original is unchanged
    assert ns.edss["improved"].dtype == "Int64"
    assert where(ns.patients, study="karussis2010").empty
    assert len(ns.patients) == len(where(ev.patients, grade="primary")) == 6
    assert (ns.patients["grade"] == "primary").all()
    assert pd.isna(one(ns.arms, study="yamout2010").disease)
    assert pd.isna(one(ns.adverse_events, study="karussis2010").patients_with_event)
    for name in TABLES:  # rows without secondary values are untouched
        untouched = ev.table(name)
        untouched = untouched[untouched["secondary_fields"].isna() & (untouched["grade"] == "primary")]
        after = ns.table(name)
        pd.testing.assert_frame_equal(after.loc[untouched.index], untouched)
    pet = one(ns.edss, study="petrou2021")
    assert (pet.baseline_mean, pet.improved) == (6.75, 10)


def test_subset_excludes_a_study_everywhere(ev):
    sub = ev.subset(exclude_studies=["petrou2020"])
    assert "petrou2020" not in sub.studies and len(sub.studies) == len(ev.studies) - 1
    for name in TABLES:
        before, after = ev.table(name), sub.table(name)
        assert "petrou2020" not in set(after["study"]), name
        assert len(after) == len(before) - (before["study"] == "petrou2020").sum(), name
    assert len(sub.arms) == len(ev.arms) - 3 and len(sub.edss) == len(ev.edss) - 6
    assert list(sub.arms.index) == list(range(len(sub.arms)))
    assert one(sub.edss, study="petrou2021").baseline_mean == 6.75


def test_subset_keeps_studies_and_filters_arms(ev):
    sub = ev.subset(studies=["lu2020", "petrou2021"])
    assert sub.studies == ["lu2020", "petrou2021"]
    assert len(sub.adverse_events) == 5 and len(sub.edss) == 1 and sub.mri.empty  # Lu 2020: intolerable_ae, neoplasm
    no_nmo = ev.subset(arms_where=lambda a: ~a["disease"].isin(["NMO", "NMOSD"]))
    assert not no_nmo.arms["disease"].isin(["NMO", "NMOSD"]).any()
    assert where(no_nmo.adverse_events, study="lu2020", arm="nmo").empty
    assert len(where(no_nmo.adverse_events, study="lu2020", arm="rrms")) == 2  # intolerable_ae, neoplasm
    assert "fu2016" not in no_nmo.studies and "sahraian2014" in no_nmo.studies
    assert where(no_nmo.patients, study="sahraian2014").empty  # the NMO patient's row went with the arm


# --- property: any mangled input is an Evidence or an EvidenceError -------------------------------

BUNDLED = {name: raw_table(name) for name in TABLES}
ALL_CELLS = sorted({c for header, rows in BUNDLED.values() for r in rows for c in r} | {
    c for header, _ in BUNDLED.values() for c in header})
STUDIES = sorted({r[0] for r in BUNDLED["arms"][1]})

_text = hs.text(alphabet=hs.characters(exclude_categories=("Cs",)), max_size=12)
_specials = hs.sampled_from([
    "", " ", "NA", "N/A", "NR", "nan", "NaN", "NAN", "none", "inf", "-inf", "Infinity", "1e308", "1e400", "-1e400",
    "1e20", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e-320", "-0", "0", "0.0",
    "1_000", "0x10", "1,5", "true", "FALSE", "yes", "\u00a0", "\"", "\n", "12.5", "0.5", "-0.5", "100000", "24",
])
_numbers = hs.one_of(
    hs.integers(-(10**25), 10**25).map(str),
    hs.floats(allow_nan=True, allow_infinity=True).map(repr),
    hs.floats(-12, 12).map(lambda x: f"{x:.2f}"),
    hs.integers(-3, 40).map(str),
)
CELL_VALUES = hs.one_of(_text, _specials, _numbers, hs.sampled_from(ALL_CELLS))
MUTATIONS = ("cell", "cell", "cell", "drop_column", "duplicate_row", "drop_row", "swap_studies", "rename_column",
             "drop_table", "ragged_row")


def _mutate(tables: dict, data) -> None:
    kind = data.draw(hs.sampled_from(MUTATIONS), label="mutation")
    names = [n for n in tables if tables[n] is not None]
    if not names:
        return
    name = data.draw(hs.sampled_from(names), label="table")
    header, rows = tables[name]
    if kind == "drop_table":
        tables[name] = None
        return
    if kind in ("cell", "duplicate_row", "drop_row", "ragged_row") and not rows:
        return
    r = data.draw(hs.integers(0, len(rows) - 1), label="row") if rows else 0
    c = data.draw(hs.integers(0, len(header) - 1), label="column")
    if kind == "cell":
        if c < len(rows[r]):  # (an earlier ragged_row may have shortened it)
            rows[r][c] = data.draw(CELL_VALUES, label="value")
    elif kind == "drop_column":
        del header[c]
        for row in rows:
            if c < len(row):
                del row[c]
    elif kind == "duplicate_row":
        rows.insert(data.draw(hs.integers(0, len(rows)), label="at"), list(rows[r]))
    elif kind == "drop_row":
        del rows[r]
    elif kind == "rename_column":
        header[c] = data.draw(hs.one_of(_text, hs.sampled_from(header)), label="name")
    elif kind == "ragged_row":
        rows[r] = rows[r][:-1] if data.draw(hs.booleans(), label="shorter") else rows[r] + ["x"]
    elif kind == "swap_studies":
        a, b = data.draw(hs.lists(hs.sampled_from(STUDIES), min_size=2, max_size=2, unique=True), label="studies")
        everywhere = data.draw(hs.booleans(), label="everywhere")
        for n in (names if everywhere else [name]):
            h, rs = tables[n]
            if "study" in h:
                k = h.index("study")
                for row in rs:
                    row[k] = {a: b, b: a}.get(row[k], row[k])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=hs.data())
def test_mangled_input_gives_evidence_or_evidence_error(data):
    tables = {n: ([*h], [[*r] for r in rows]) for n, (h, rows) in BUNDLED.items()}
    for _ in range(data.draw(hs.integers(1, 3), label="mutations")):
        _mutate(tables, data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, table in tables.items():
            if table is not None:
                write_table(folder, name, *table)
        try:
            ev = load_evidence(folder)
        except EvidenceError as exc:
            assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
            assert str(exc)  # every problem can be shown
        else:
            assert isinstance(ev, Evidence)
            # (describe() on every valid case was run over 2000 examples while writing this; it
            # costs ~0.2 s a call, so it is left to test_describe.py here)
            assert set(zip(ev.edss.study, ev.edss.arm)) <= set(zip(ev.arms.study, ev.arms.arm))
            for name in TABLES:
                t = ev.table(name)
                if "n" in t and len(t):
                    assert (t["n"].dropna() >= 1).all()
                if "timepoint_months" in t and name != "arms" and len(t):
                    assert all(math.isfinite(x) and x > 0 for x in t["timepoint_months"].dropna())


# --- adversarial acceptances (E99, E47, E65, E75, E62, F19, F16/F17) ---------------------------


def test_blank_group_in_arms_is_a_problem(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "fernandez2018", "arm": "placebo"}, "group", "")
    p = only_problem(data_copy)  # was: valid, and the models then took the placebo arm for MSC
    assert (Path(p.file).name, p.row, p.column) == ("arms.csv", row, "group")
    assert "required" in p.expected


def test_arms_without_a_group_column_are_msc_arms(data_copy):
    header, rows = raw_table("arms", data_copy)
    k = header.index("group")
    write_table(data_copy, "arms", header[:k] + header[k + 1:], [r[:k] + r[k + 1:] for r in rows])
    assert set(load_evidence(data_copy).arms["group"]) == {"msc"}  # as a folder without arms.csv; was None


@pytest.mark.parametrize("value", ["0.3", "1.25"])
def test_threshold_off_the_half_point_grid(data_copy, edit_cell, value):
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "threshold", value)
    p = only_problem(data_copy)  # was: valid
    assert (Path(p.file).name, p.row, p.column, p.value) == ("edss.csv", row, "threshold", float(value))
    assert "multiple of 0.5" in p.expected


def test_arm_with_both_followup_months_and_weeks(data_copy, edit_cell):
    row = edit_cell(data_copy / "arms.csv", {"study": "petrou2021"}, "followup_weeks", "120")
    p = only_problem(data_copy)  # was: valid, the weeks silently ignored
    assert (Path(p.file).name, p.row, p.column, p.value) == ("arms.csv", row, "followup_weeks", 120.0)
    assert "not both" in p.expected


def test_baseline_visit_at_time_zero(data_copy, edit_cell):
    path, match = data_copy / "patients.csv", {"study": "bonab2005", "patient": "p4"}
    edit_cell(path, match, "change", "")
    edit_cell(path, match, "edss", "6.5")
    edit_cell(path, match, "timepoint_months", "0")
    ev = load_evidence(data_copy)  # was: "expected a number > 0" for the baseline EDSS the README describes
    row = one(ev.patients, study="bonab2005", patient="p4")
    assert (row.timepoint_months, row.edss) == (0.0, 6.5) and pd.isna(row.change)


@pytest.mark.parametrize("column", ["timepoint_months", "timepoint_weeks"])
def test_change_at_time_zero_is_a_problem(data_copy, edit_cell, column):
    path, match = data_copy / "patients.csv", {"study": "bonab2005", "patient": "p4"}
    if column == "timepoint_weeks":
        edit_cell(path, match, "timepoint_months", "")
    row = edit_cell(path, match, column, "0")
    p = only_problem(data_copy)  # was "a number > 0": the check of a change at baseline could never run
    assert (Path(p.file).name, p.row, p.column, p.value) == ("patients.csv", row, column, 0)
    assert p.expected == "a follow-up time > 0 for a change from baseline"


def test_plain_effect_size_folder_checks_no_arm_sizes_against_an_absent_arms_csv(tmp_path):
    (tmp_path / "edss.csv").write_text(PLAIN)
    (tmp_path / "adverse_events.csv").write_text(
        "study,arm,event,patients_with_event,n_at_risk\nalpha2001,treated,serious_ae,1,25\n"
        "zeta2022,treated,serious_ae,1,25\n")
    ev = load_evidence(tmp_path)  # was: "at most the arm's n in arms.csv (20)", with no arms.csv
    assert one(ev.adverse_events, study="alpha2001").n_at_risk == 25
    assert pd.isna(one(ev.arms, study="alpha2001").n)  # edss n 20, n_at_risk 25: no one n (was 20, edss's)
    assert one(ev.arms, study="zeta2022").n == 25  # its one count (was missing: no edss row)
    ns = ev.without_secondary()  # alpha2001's derived arm has no n: kept, nothing was blanked
    assert len(ns.adverse_events) == 2 and "zeta2022" in ns.studies


@pytest.mark.parametrize("file, match, fields", [
    ("edss.csv", {"study": "petrou2021"}, "study"), ("arms.csv", {"study": "petrou2021"}, "arm"),
    ("adverse_events.csv", {"study": "petrou2021"}, "n_at_risk;event"),
    ("adverse_events.csv", {"study": "petrou2021"}, "attribution"), ("mri.csv", {"study": "yamout2010"}, "timepoint_months"),
    ("edss.csv", {"study": "iacobaeus2019"}, "timepoint_weeks"),
])
def test_secondary_fields_may_not_name_a_row_key(data_copy, edit_cell, file, match, fields):
    row = edit_cell(data_copy / file, match, "secondary_fields", fields)
    p = only_problem(data_copy)  # was: valid, and without_secondary() blanked the key (the row vanished)
    assert (Path(p.file).name, p.row, p.column, p.value) == (file, row, "secondary_fields", fields.split(";")[-1])
    assert p.expected.startswith("a column of this table that does not identify the row (not study, arm")


@pytest.mark.parametrize("file, match, column", [
    ("edss.csv", {"study": "petrou2021"}, "n"), ("adverse_events.csv", {"study": "petrou2021"}, "n_at_risk"),
    ("mri.csv", {"study": "yamout2010"}, "n_at_risk"),
])
def test_without_secondary_drops_a_row_whose_required_value_is_secondary(data_copy, edit_cell, file, match, column):
    edit_cell(data_copy / file, match, "secondary_fields", column)
    ev = load_evidence(data_copy)
    name = file[:-4]
    ns = ev.without_secondary()  # was: the row kept with a NaN n_at_risk (a crash in pm.Data later)
    assert len(ns.table(name)) == len(ev.table(name)) - 1
    assert where(ns.table(name), **match).shape[0] == where(ev.table(name), **match).shape[0] - 1
    for t in TABLES:
        for c, col in SCHEMAS[t].items():
            if col.required and c != "patients_with_event":  # a blank event count is "not reported"
                assert ns.table(t)[c].notna().all(), (t, c)


def test_without_secondary_drops_a_patient_row_left_without_edss_or_change(data_copy, edit_cell):
    edit_cell(data_copy / "patients.csv", {"study": "bonab2005", "patient": "p4"}, "change", "-0.5")
    header, rows = raw_table("patients", data_copy)
    write_table(data_copy, "patients", header + ["secondary_fields"],
                [r + ["change" if (r[0], r[2]) == ("bonab2005", "p4") else ""] for r in rows])
    ev = load_evidence(data_copy)
    ns = ev.without_secondary()
    assert where(ns.patients, study="bonab2005", patient="p4").empty
    assert (ns.patients["edss"].notna() | ns.patients["change"].notna()).all()


def test_without_secondary_drops_an_arm_whose_n_is_secondary_with_its_rows(data_copy, edit_cell):
    edit_cell(data_copy / "arms.csv", {"study": "petrou2021"}, "secondary_fields", "n")
    ns = load_evidence(data_copy).without_secondary()
    for name in TABLES:
        assert where(ns.table(name), study="petrou2021").empty, name
    assert ns.arms["n"].notna().all()

