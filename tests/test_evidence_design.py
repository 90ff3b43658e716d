"""Tests for the crossover-design evidence: shared_patients.csv, arms.csv `periods_after_msc`, and the
adverse-event statement columns `timing` and `wording` (no sampling)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from msc_bayes.cli import main
from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import AE_TIMINGS, AE_WORDINGS, SCHEMAS, Evidence, load_evidence
from msc_bayes.evidence.describe import describe

ARMS = (["study", "arm", "design", "group", "n", "periods_after_msc", "location"],
        [["x", "msc_it", "randomised-crossover", "msc", "32", "", "Table 1"],
         ["x", "msc_iv", "randomised-crossover", "msc", "32", "", "Table 1"],
         ["x", "sham", "randomised-crossover", "control", "32", "16", "Table 1"],
         ["y", "all", "single-arm", "msc", "10", "", "abstract"],
         ["y", "sham", "single-arm", "control", "10", "", "abstract"]])
# msc_it: 16 shared with sham + 2 x 8 twice = 32 periods; sham: 16 + 16 = 32 periods.
SHARED = (["study", "arm", "other_arm", "patients", "location", "grade", "secondary_fields"],
          [["x", "msc_it", "sham", "16", "Fig 1", "primary", ""],
           ["x", "sham", "msc_iv", "16", "Fig 1", "primary", ""],
           ["x", "msc_it", "msc_it", "8", "registry", "secondary", "patients"]])
AES = (["study", "arm", "event", "serious", "attribution", "patients_with_event", "n_at_risk", "timing", "wording",
        "location"],
       [["x", "msc_it", "serious_ae", "true", "related", "0", "32", "whole", "none", "abstract"],
        ["x", "msc_it", "major_ae", "", "any", "0", "32", "delayed", "vague", "abstract"],
        ["x", "msc_it", "major_ae", "", "any", "0", "32", "acute", "vague", "abstract"],
        ["x", "msc_iv", "significant_ae", "", "any", "0", "32", "", "vague", "abstract"],
        ["x", "sham", "intolerable_ae", "", "any", "0", "32", "whole", "", "abstract"],
        ["y", "all", "infection", "false", "any", "2", "10", "", "count", "Table 2"]])


def write(folder: Path, name: str, table: tuple[list[str], list[list[str]]]) -> Path:
    file = folder / f"{name}.csv"
    with open(file, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([table[0], *table[1]])
    return file


def with_cell(table, row: int, column: str, value: str):
    """`table` with one cell changed (row 0-based among the data rows)."""
    header, rows = table
    rows = [list(r) for r in rows]
    rows[row][header.index(column)] = value
    return header, rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, "arms", ARMS)
    write(tmp_path, "shared_patients", SHARED)
    write(tmp_path, "adverse_events", AES)
    return tmp_path


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(EvidenceError) as info:
        load_evidence(folder)
    return info.value.problems


def only_problem(folder: Path) -> Problem:
    problems = problems_of(folder)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --- reading -------------------------------------------------------------------------------


def test_the_table_is_read(folder):
    ev = load_evidence(folder)
    sp = ev.shared_patients
    assert list(zip(sp.arm, sp.other_arm, sp.patients)) == [("msc_it", "sham", 16), ("sham", "msc_iv", 16),
                                                           ("msc_it", "msc_it", 8)]
    assert str(sp.patients.dtype) == "Int64" and set(SCHEMAS["shared_patients"]) == set(sp.columns)
    assert ev.table("shared_patients").equals(sp)
    assert ev.arms.set_index(["study", "arm"]).loc[("x", "sham"), "periods_after_msc"] == 16
    assert ev.arms["periods_after_msc"].isna().sum() == 4  # blank = no period after MSC, not 0 invented


def test_absent_table_is_empty_with_its_columns(folder):
    (folder / "shared_patients.csv").unlink()
    sp = load_evidence(folder).shared_patients
    assert sp.empty and list(sp.columns) == list(SCHEMAS["shared_patients"])


def test_never_a_source_of_arms(tmp_path):
    write(tmp_path, "adverse_events", AES)  # no arms.csv: arms come from the outcome tables
    write(tmp_path, "shared_patients", with_cell(SHARED, 0, "other_arm", "placebo"))
    ev = load_evidence(tmp_path)
    assert ("x", "placebo") not in set(zip(ev.arms.study, ev.arms.arm))
    assert len(ev.shared_patients) == 3  # arms and sizes are checked against an arms.csv only


@pytest.mark.parametrize("name", ["shared_patient.csv", "Shared_patients.csv", "shared-patients.CSV"])
def test_near_miss_file_name(folder, name):
    (folder / "shared_patients.csv").rename(folder / name)
    p = only_problem(folder)
    assert (Path(p.file).name, p.value) == (name, name)
    assert "did you mean 'shared_patients.csv'?" in p.expected


def test_missing_required_column(folder):
    header, rows = SHARED
    write(folder, "shared_patients", (header[:2] + header[3:], [r[:2] + r[3:] for r in rows]))
    p = only_problem(folder)
    assert (Path(p.file).name, p.column, p.value) == ("shared_patients.csv", "other_arm", "(column absent)")


# --- validation rules: each names file, line, column, value --------------------------------


def _where(p: Problem) -> tuple:
    return Path(p.file).name, p.line, p.column, p.value


@pytest.mark.parametrize("row, column, value, where, expected", [
    (0, "arm", "msc_itt", ("study/arm", "x/msc_itt"), "did you mean 'msc_it'?"),
    (1, "other_arm", "msc_ivv", ("study/other_arm", "x/msc_ivv"), "did you mean 'msc_iv'?"),
    (1, "other_arm", "all", ("study/other_arm", "x/all"), "an arm of the same study"),  # an arm of study y
    (0, "study", "z", ("study/arm", "z/msc_it"), "listed in arms.csv"),
    (0, "patients", "0", ("patients", "0"), "a whole number >= 1"),
    (0, "patients", "1.5", ("patients", "1.5"), "a whole number >= 1"),
    (0, "patients", "", ("patients", ""), "this column is required"),
    (2, "patients", "17", ("patients", 17), "at most half the arm's n (32)"),
])
def test_a_bad_row_is_named(folder, row, column, value, where, expected):
    write(folder, "shared_patients", with_cell(SHARED, row, column, value))
    problems = problems_of(folder)
    assert problems[0].line == row + 2 and (problems[0].column, problems[0].value) == where, problems
    assert expected in problems[0].expected
    assert all(Path(p.file).name == "shared_patients.csv" for p in problems)


def test_patients_at_most_the_smaller_arm(folder):
    write(folder, "arms", with_cell(ARMS, 1, "n", "12"))  # msc_iv has 12 periods
    write(folder, "adverse_events", with_cell(AES, 3, "n_at_risk", "12"))
    p = only_problem(folder)
    assert _where(p) == ("shared_patients.csv", 3, "patients", 16)
    assert "at most the smaller n of the two arms (12)" in p.expected


def test_periods_of_an_arm_over_all_its_rows(folder):
    write(folder, "shared_patients", with_cell(SHARED, 2, "patients", "9"))  # msc_it: 16 + 2 x 9 = 34 > 32
    p = only_problem(folder)
    assert _where(p) == ("shared_patients.csv", 4, "patients", 34)
    assert "x/msc_it (32) periods over all its rows" in p.expected


@pytest.mark.parametrize("arm, other", [("msc_it", "sham"), ("sham", "msc_it")])
def test_a_pair_given_twice(folder, arm, other):
    header, rows = SHARED
    write(folder, "shared_patients", (header, rows + [["x", arm, other, "1", "", "", ""]]))
    p = only_problem(folder)
    assert _where(p) == ("shared_patients.csv", 5, "study,arm,other_arm", ("x", arm, other))
    assert ("as (other_arm, arm)" in p.expected) == (arm == "sham")


def test_every_problem_is_collected(folder):
    rows = with_cell(with_cell(SHARED, 0, "arm", "msc_ti"), 2, "patients", "20")
    write(folder, "shared_patients", rows)
    write(folder, "arms", with_cell(ARMS, 2, "periods_after_msc", "33"))
    found = {(Path(p.file).name, p.line, p.column) for p in problems_of(folder)}
    assert found == {("shared_patients.csv", 2, "study/arm"), ("shared_patients.csv", 4, "patients"),
                     ("arms.csv", 4, "periods_after_msc")}


def test_cli_validate_exits_2_with_one_clean_message(folder, capsys):
    write(folder, "shared_patients", with_cell(SHARED, 1, "other_arm", "msc_ivv"))
    assert main(["validate", "--data", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and err.startswith("error: 1 problem(s) in the evidence")
    assert f"{folder / 'shared_patients.csv'}, line 3, column 'study/other_arm': found 'x/msc_ivv'" in err


def test_cli_validate_and_describe_name_the_table(folder, capsys):
    assert main(["validate", "--data", str(folder)]) == 0
    assert "3 shared_patients rows" in capsys.readouterr().out
    assert main(["describe", "--data", str(folder)]) == 0
    assert "crossover: 32 periods; shares 16 patients with sham; 8 patients twice" in capsys.readouterr().out


# --- arms.csv periods_after_msc ------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("33", "at most the arm's n (32) periods"), ("-1", "a whole number >= 0"),
                                             ("2.5", "a whole number >= 0"), ("many", "a whole number >= 0")])
def test_periods_after_msc_bad_values(folder, value, expected):
    write(folder, "arms", with_cell(ARMS, 2, "periods_after_msc", value))
    p = only_problem(folder)
    assert (Path(p.file).name, p.line, p.column) == ("arms.csv", 4, "periods_after_msc")
    assert expected in p.expected


def test_periods_after_msc_zero_and_its_bound(folder):
    write(folder, "arms", with_cell(with_cell(ARMS, 0, "periods_after_msc", "0"), 2, "periods_after_msc", "32"))
    after = load_evidence(folder).arms.set_index(["study", "arm"])["periods_after_msc"]
    assert (after["x", "msc_it"], after["x", "sham"]) == (0, 32)


@pytest.mark.parametrize("name", ["period_after_msc", "Periods_after_MSC", "periods_afer_msc"])
def test_periods_after_msc_near_miss_is_no_covariate(folder, name):
    header, rows = ARMS
    write(folder, "arms", ([name if c == "periods_after_msc" else c for c in header], rows))
    p = only_problem(folder)
    assert (p.column, p.value) == (name, "(unknown column)")
    assert "did you mean 'periods_after_msc'?" in p.expected


# --- subset, without_secondary, with_tables, data hash ------------------------------------


def test_subset_drops_rows_of_dropped_arms(folder):
    ev = load_evidence(folder)
    sp = ev.subset(arms_where=lambda a: a.arm != "msc_iv").shared_patients
    assert list(zip(sp.arm, sp.other_arm)) == [("msc_it", "sham"), ("msc_it", "msc_it")]  # msc_iv as other_arm
    assert ev.subset(exclude_studies=["x"]).shared_patients.empty
    assert len(ev.subset(studies=["x"]).shared_patients) == 3


def test_without_secondary_drops_a_row_whose_patients_are_secondary(folder):
    sp = load_evidence(folder).without_secondary().shared_patients
    assert list(zip(sp.arm, sp.other_arm)) == [("msc_it", "sham"), ("sham", "msc_iv")]


def test_with_tables_carries_and_revalidates_it(folder):
    ev = load_evidence(folder)
    again = ev.with_tables(shared_patients=ev.shared_patients)
    assert again.shared_patients.equals(ev.shared_patients)
    twice = ev.shared_patients.assign(patients=ev.shared_patients.patients * 3)
    with pytest.raises(EvidenceError) as info:
        ev.with_tables(shared_patients=twice)
    assert {(p.file, p.row, p.column) for p in info.value.problems} >= {("shared_patients.csv", 1, "patients")}


def test_data_hash_changes_with_it(folder):
    before = load_evidence(folder).data_hash
    write(folder, "shared_patients", with_cell(SHARED, 0, "patients", "15"))
    changed = load_evidence(folder)
    assert changed.data_hash != before
    (folder / "shared_patients.csv").unlink()
    assert load_evidence(folder).data_hash not in (before, changed.data_hash)
    ev = load_evidence(folder)
    modified = ev.with_tables(shared_patients=pd.DataFrame({"study": ["x"], "arm": ["sham"], "other_arm": ["msc_it"],
                                                            "patients": ["4"]}))
    assert modified.data_hash != ev.with_tables().data_hash


# --- adverse-event statements ----------------------------------------------------------------


def test_ae_statement_columns_are_read(folder):
    ae = load_evidence(folder).adverse_events
    assert list(ae.timing.fillna("")) == ["whole", "delayed", "acute", "", "whole", ""]
    assert list(ae.wording.fillna("")) == ["none", "vague", "vague", "vague", "", "count"]
    assert ae.serious.isna().sum() == 4  # blank: the words do not say
    assert {"major_ae", "significant_ae", "intolerable_ae"} <= set(ae.event)  # event codes are free text
    assert set(AE_TIMINGS) == {"acute", "delayed", "whole"} and set(AE_WORDINGS) == {"count", "none", "vague"}


@pytest.mark.parametrize("column, value, hint", [("timing", "Acute", "did you mean 'acute'?"),
                                                 ("timing", "late", "one of 'acute', 'delayed', 'whole'"),
                                                 ("wording", "vauge", "did you mean 'vague'?"),
                                                 ("wording", "explicit", "one of 'count', 'none', 'vague'")])
def test_ae_vocabularies(folder, column, value, hint):
    write(folder, "adverse_events", with_cell(AES, 1, column, value))
    p = only_problem(folder)
    assert _where(p) == ("adverse_events.csv", 3, column, value) and hint in p.expected


def test_ae_statement_that_says_none_counts_no_patient(folder):
    write(folder, "adverse_events", with_cell(AES, 0, "patients_with_event", "1"))
    p = only_problem(folder)
    assert _where(p) == ("adverse_events.csv", 2, "patients_with_event", 1) and "worded 'none'" in p.expected


def test_an_ae_row_differing_only_in_timing_is_no_duplicate(folder):
    assert len(load_evidence(folder).adverse_events) == 6  # rows 2 and 3: major_ae delayed and acute
    write(folder, "adverse_events", with_cell(AES, 2, "timing", "delayed"))
    p = only_problem(folder)
    assert (p.line, p.column) == (4, "study,arm,event,attribution,timing,timepoint_months")


def test_ae_tables_without_the_new_columns_still_load(tmp_path):
    header, rows = AES
    keep = [i for i, c in enumerate(header) if c not in ("timing", "wording")]
    write(tmp_path, "arms", ARMS)
    rows = rows[:2] + rows[3:]  # without timing, the acute and delayed major_ae rows would be one key
    write(tmp_path, "adverse_events", ([header[i] for i in keep], [[r[i] for i in keep] for r in rows]))
    ae = load_evidence(tmp_path).adverse_events
    assert ae.timing.isna().all() and ae.wording.isna().all()


# --- describe ----------------------------------------------------------------------------------


def test_describe_says_which_arms_share_patients(folder):
    t = describe(load_evidence(folder)).set_index(["study", "arm"])["crossover"]
    assert t["x", "msc_it"] == "32 periods; shares 16 patients with sham; 8 patients twice"
    assert t["x", "sham"] == "32 periods; shares 16 patients with msc_it; shares 16 patients with msc_iv; " \
                             "16 periods after MSC"
    assert t["x", "msc_iv"] == "32 periods; shares 16 patients with sham"
    assert t["y", "all"] == "" and t["y", "sham"] == ""


def test_describe_shows_timing_and_vague_wording(folder):
    t = describe(load_evidence(folder)).set_index(["study", "arm"])["adverse_events"]
    assert t["x", "msc_it"] == "serious_ae (related) 0/32; major_ae (delayed, vague words) 0/32; " \
                               "major_ae (acute, vague words) 0/32"
    assert t["y", "all"] == "infection 2/10"


def test_evidence_is_still_immutable(folder):
    ev = load_evidence(folder)
    sp = ev.shared_patients
    sp.loc[0, "patients"] = 99
    assert ev.shared_patients.loc[0, "patients"] == 16
    assert isinstance(ev, Evidence)
