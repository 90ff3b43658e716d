"""Bad evidence input always ends in one EvidenceError (issue 12): files that are no regular files,
near-miss file and column names, knock-on problems, arm sizes, line numbers, CSV dialects and
encodings, how numbers are written; and a property test over mangled bytes and files."""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import read_csv_table, write_csv_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import (
    MAX_FILE_BYTES,
    SCHEMAS,
    TABLES,
    Evidence,
    load_evidence,
    reading,
)
from msc_bayes.evidence.reading import _near_known_column

DATA = Path(__file__).resolve().parents[1] / "data"
TABLES = tuple(t for t in TABLES if (DATA / f"{t}.csv").exists())  # the bundled ones (not effect_sizes.csv)


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(EvidenceError) as info:
        load_evidence(folder)
    assert all(isinstance(p, Problem) for p in info.value.problems)
    return info.value.problems


def only_problem(folder: Path) -> Problem:
    problems = problems_of(folder)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


@contextmanager
def at_most(seconds: int):
    """Fail, rather than hang, if the block takes longer (a blocking open of a FIFO, an endless read)."""
    def timeout(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- 1. files that are not regular files ------------------------------------------------


def test_folder_named_like_a_table(data_copy):
    (data_copy / "edss.csv").unlink()
    (data_copy / "edss.csv").mkdir()
    p = only_problem(data_copy)  # was: IsADirectoryError
    assert (p.file, p.row, p.value) == (str(data_copy / "edss.csv"), None, "a folder")
    assert p.expected == f"a readable regular file of at most {MAX_FILE_BYTES // 2**20} MB"


def test_unreadable_file(data_copy, monkeypatch):
    real_open = os.open
    target = str(data_copy / "edss.csv")

    def refuse_edss(path, flags, *args, **kwargs):  # as root, chmod 000 would not stop the read
        if os.fspath(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_edss)
    p = only_problem(data_copy)
    assert (p.file, p.value) == (target, "Permission denied") and "readable regular file" in p.expected


def test_fifo_is_refused_without_waiting(data_copy):
    (data_copy / "mri.csv").unlink()
    os.mkfifo(data_copy / "mri.csv")
    with at_most(10):  # was: open() waited for a writer, for ever
        p = only_problem(data_copy)
    assert (Path(p.file).name, p.value) == ("mri.csv", "a FIFO (named pipe)")


def test_link_to_a_device_is_refused(data_copy):
    (data_copy / "edss.csv").unlink()
    (data_copy / "edss.csv").symlink_to("/dev/null")
    p = only_problem(data_copy)  # was: an empty table ('a header row'): the device was read
    assert (Path(p.file).name, p.value) == ("edss.csv", "a character device (a symbolic link to '/dev/null')")
    # (a link to /dev/zero, which the old code read until memory ran out: tests/test_cli_evidence.py)


def test_symbolic_links(data_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(data_copy / "mri.csv", elsewhere / "mri.csv")
    (data_copy / "mri.csv").symlink_to(elsewhere / "mri.csv")  # a link to a regular file is read
    assert len(load_evidence(data_copy).mri) == len(read_csv_table(elsewhere / "mri.csv")[1])
    (data_copy / "edss.csv").unlink()
    (data_copy / "edss.csv").symlink_to(data_copy / "gone.csv")
    (data_copy / "arms.csv").unlink()
    (data_copy / "arms.csv").symlink_to(data_copy / "arms.csv")  # a loop
    problems = {Path(p.file).name: p for p in problems_of(data_copy)}  # was: both silently absent
    assert set(problems) == {"edss.csv", "arms.csv"}
    assert problems["edss.csv"].value == f"a symbolic link to {str(data_copy / 'gone.csv')!r}, which does not exist"
    assert problems["arms.csv"].value == "a symbolic link loop"


def test_file_over_the_size_limit_is_not_read(data_copy, monkeypatch):
    with open(data_copy / "patients.csv", "r+b") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    real_open, opened = os.open, []
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(Path(path).name) or real_open(path, *a, **k))
    p = only_problem(data_copy)  # was: read whole, then 'field larger than field limit'
    assert (Path(p.file).name, p.value) == ("patients.csv", f"{MAX_FILE_BYTES + 1:,} bytes, more than {MAX_FILE_BYTES:,}")
    assert "at most 50 MB" in p.expected and "patients.csv" not in opened  # refused before opening


def test_too_many_cells(data_copy, monkeypatch):
    monkeypatch.setattr(reading, "MAX_CELLS", 40)  # shared_patients.csv, the smallest table, has over 40
    problems = problems_of(data_copy)
    assert sorted(Path(p.file).name for p in problems) == sorted(f"{t}.csv" for t in TABLES)
    assert all(p.value == "more than 40 cells" and p.line > 1 for p in problems)


# --- 2. near-miss file names -----------------------------------------------------------------


@pytest.mark.parametrize("table, name", [
    ("edss", "EDSS.csv"), ("adverse_events", "adverse_event.csv"), ("arms", "arm.csv"), ("mri", "mri.CSV"),
    ("patients", "Patients.csv"), ("edss", "edss.csv.txt"), ("adverse_events", "adverse-events.csv"),
])
def test_table_under_a_near_miss_name(data_copy, table, name):
    (data_copy / f"{table}.csv").rename(data_copy / name)
    for unrelated in ("README.md", "notes.txt", "covariates.csv", "trial_extraction.csv"):
        (data_copy / unrelated).write_text("anything\n")  # files not named like a table stay allowed
    p = only_problem(data_copy)  # was: the table silently absent
    assert (p.file, p.value) == (str(data_copy / name), name)
    assert f"did you mean '{table}.csv'?" in p.expected


# --- 3. near-miss column names ---------------------------------------------------------------


@pytest.mark.parametrize("column, near", [
    ("Group", "group"), ("grup", "group"), ("Route", "route"), ("Disease", "disease"), ("DISEASE", "disease"),
    ("folowup_months", "followup_months"), ("Dose Per Kg Million", "dose_per_kg_million"), ("course", "courses"),
    ("dieases", "disease"), ("diesase", "disease"), ("desing", "design"), ("sorce", "source"),
])
def test_near_miss_arms_column_is_not_a_covariate(data_copy, column, near):
    header, rows = read_csv_table(data_copy / "arms.csv")
    header[header.index(near)] = column
    new = ["age_mean", "edss_baseline_mean", "female_percent", "disease_duration_years"]
    write_csv_table(data_copy / "arms.csv", header + new, [r + [str(40 + i), "6", "55.5", ""] for i, r in enumerate(rows)])
    p = only_problem(data_copy)  # was: accepted as a covariate, and the column it meant left blank
    assert (Path(p.file).name, p.column, p.value) == ("arms.csv", column, "(unknown column)")
    assert f"did you mean '{near}'?" in p.expected


def test_closeness_rule():
    known = SCHEMAS["arms"]
    assert set(read_csv_table(DATA / "arms.csv")[0]) <= set(known)  # the bundled columns never meet the rule
    for new in ("age_mean", "edss_baseline_mean", "female_percent", "disease_duration_years", "age_median",
                "n_female", "followup_years", "dose_total_million", "route_iv", "sex", "x", "age_sd", "female",
                "weight", "edss_sd", "relapse", "cohort", "country", "subtype", "onset", "dose", "disease_type"):
        assert _near_known_column(new, known) is None, new
    for near, meant in (("Group", "group"), ("grup", "group"), (" route ", "route"), ("N", "n"),
                        ("dose_per_kg_milion", "dose_per_kg_million"), ("corses_max", "courses_max"),
                        ("administration", "administrations"), ("follow-up_months", "followup_months"),
                        ("dieases", "disease"), ("Dieases", "disease"), ("diseases", "disease"),
                        ("dervied", "derived"), ("desing", "design"), ("sources", "source")):
        assert _near_known_column(near, known) == meant, near


def test_header_whitespace_is_stripped(data_copy):
    header, rows = read_csv_table(data_copy / "arms.csv")
    header = [f" {h} " if h in ("group", "n") else h for h in header]
    write_csv_table(data_copy / "arms.csv", header, rows)
    header, rows = read_csv_table(data_copy / "edss.csv")
    write_csv_table(data_copy / "edss.csv", [h + "\t" if h == "n" else h for h in header], rows)
    ev = load_evidence(data_copy)  # was: ' n ' unknown (n absent) and ' group ' a covariate
    bundled = load_evidence(DATA)
    assert list(ev.arms["group"]) == list(bundled.arms["group"]) and " group " not in ev.arms
    assert list(ev.edss["n"]) == list(bundled.edss["n"])


def test_blank_and_repeated_header_names(data_copy):
    header, rows = read_csv_table(data_copy / "arms.csv")
    write_csv_table(data_copy / "arms.csv", header + [""], [r + ["1"] for r in rows])
    p = only_problem(data_copy)  # was: a covariate named ''
    assert (p.line, p.value, p.expected) == (1, "", f"a name for column {len(header) + 1} of the header")
    write_csv_table(data_copy / "arms.csv", header + [" n"], [r + ["1"] for r in rows])
    p = only_problem(data_copy)
    assert (p.line, p.column, p.value) == (1, "n", "repeated column")


def test_open_covariate_with_a_wrongly_written_number(data_copy):
    header, rows = read_csv_table(data_copy / "arms.csv")
    values = [str(40 + i) for i in range(len(rows))]
    values[3], values[5] = "1_000", "inf"
    write_csv_table(data_copy / "arms.csv", header + ["age_mean"], [r + [v] for r, v in zip(rows, values)])
    problems = problems_of(data_copy)  # was: the column read as text (categories) because of '1_000'
    assert [(p.row, p.line, p.column, p.value) for p in problems] == [(4, 5, "age_mean", "1_000"),
                                                                     (6, 7, "age_mean", "inf")]
    assert all("ASCII digits" in p.expected for p in problems)
    values[3], values[5] = "40.5", ""
    values[7] = "1-2"  # a value that is no number at all: a text covariate, as before
    write_csv_table(data_copy / "arms.csv", header + ["age_mean"], [r + [v] for r, v in zip(rows, values)])
    assert load_evidence(data_copy).arms["age_mean"].iloc[7] == "1-2"


# --- 4. one missing column, one message ------------------------------------------------------------


@pytest.mark.parametrize("table, columns", [
    ("edss", ["study"]), ("edss", ["arm"]), ("arms", ["study"]), ("arms", ["arm"]), ("patients", ["patient"]),
    ("mri", ["timepoint_months", "timepoint_weeks"]), ("patients", ["edss", "change"]),
    ("adverse_events", ["arm"]), ("edss", ["timepoint_months", "timepoint_weeks"]),
])
def test_one_missing_column_gives_one_problem(data_copy, table, columns):
    header, rows = read_csv_table(data_copy / f"{table}.csv")
    keep = [k for k, h in enumerate(header) if h not in columns]
    write_csv_table(data_copy / f"{table}.csv", [header[k] for k in keep], [[r[k] for k in keep] for r in rows])
    p = only_problem(data_copy)  # was: the absent column, then one problem per row (and per row elsewhere)
    assert (Path(p.file).name, p.row, p.column) == (f"{table}.csv", None, "/".join(columns))
    assert p.value in ("(column absent)", "(columns absent)")


# --- 5. an outcome counts at most its arm's patients ---------------------------------------------------


@pytest.mark.parametrize("table, match, column, value, arm_n", [
    ("edss", {"study": "petrou2021"}, "n", "25", 24),
    ("adverse_events", {"study": "petrou2021"}, "n_at_risk", "25", 24),
    ("mri", {"study": "iacobaeus2019", "timepoint_weeks": "12"}, "n_at_risk", "8", 7),
])
def test_outcome_n_above_the_arm_n(data_copy, edit_cell, table, match, column, value, arm_n):
    row = edit_cell(data_copy / f"{table}.csv", match, column, value)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.row, p.line, p.column, p.value) == (f"{table}.csv", row, row + 1, column, int(value))
    assert p.expected == f"at most the arm's n in arms.csv ({arm_n})"


def test_more_patients_than_the_arm_n(data_copy):
    header, rows = read_csv_table(data_copy / "patients.csv")
    k = header.index("patient")
    extra = [list(r) for r in rows if r[0] == "bonab2005"][:2]
    extra[0][k], extra[1][k] = "p6", "p7"  # bonab2005's pilot arm has n = 5: p1..p5
    write_csv_table(data_copy / "patients.csv", header, rows + extra)
    p = only_problem(data_copy)
    assert (p.row, p.column, p.value) == (len(rows) + 1, "patient", "p6")
    assert "at most the arm's n in arms.csv (5)" in p.expected


def test_bundled_outcomes_within_their_arms():
    ev = load_evidence(DATA)
    arm_n = {(s, a): n for s, a, n in zip(ev.arms.study, ev.arms.arm, ev.arms.n)}
    for table, column in (("edss", "n"), ("adverse_events", "n_at_risk"), ("mri", "n_at_risk")):
        t = ev.table(table)
        assert all(n <= arm_n[s, a] for s, a, n in zip(t.study, t.arm, t[column])), table
    # and the check is live: the arm of the largest outcome shrunk below it is refused
    t = ev.edss.sort_values("n").iloc[-1]
    arms = ev.arms
    arms.loc[(arms.study == t.study) & (arms.arm == t.arm), "n"] = t.n - 1
    with pytest.raises(EvidenceError, match=r"at most the arm's n in arms.csv"):
        ev.with_tables(arms=arms)


# --- 6. line numbers ----------------------------------------------------------------------------


def test_problems_name_the_line_an_editor_shows(data_copy):
    header, rows = read_csv_table(data_copy / "edss.csv")
    rows[0][header.index("note")] = "one\ntwo\r\nthree"  # row 1: lines 2-4
    rows[2][header.index("baseline_mean")] = "12.5"  # row 3, after a blank line
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([header, rows[0], rows[1]])
    buffer.write("\r\n")
    writer.writerows(rows[2:])
    (data_copy / "edss.csv").write_bytes(buffer.getvalue().encode())
    p = only_problem(data_copy)
    assert (p.row, p.line, p.column) == (3, 7, "baseline_mean")  # header 1, row 1 2-4, row 2 5, blank 6
    assert ", line 7, column 'baseline_mean'" in str(p)


def test_tables_in_memory_keep_row_numbers():
    ev = load_evidence(DATA)
    edss = ev.edss
    edss.loc[2, "baseline_mean"] = 12.5
    with pytest.raises(EvidenceError) as info:
        ev.with_tables(edss=edss)
    [p] = info.value.problems
    assert (p.file, p.row, p.line) == ("edss.csv", 3, None) and "edss.csv, row 3, column" in str(p)


def test_ragged_row_names_its_line(data_copy):
    header, rows = read_csv_table(data_copy / "mri.csv")
    text = (data_copy / "mri.csv").read_text()
    lines = text.splitlines()
    lines.insert(2, "")  # a blank line before data row 2
    lines[4] += ",surplus"  # data row 3, on line 5
    (data_copy / "mri.csv").write_text("\n".join(lines) + "\n")
    p = only_problem(data_copy)
    assert (p.row, p.line, p.value) == (3, 5, f"{len(header) + 1} fields")
    assert "line 5" in str(p)


def test_quote_left_open(data_copy):
    text = (data_copy / "mri.csv").read_text().splitlines()
    assert '"' not in text[-1]
    text[-2] = text[-2].replace(",abstract,", ',"abstract,', 1)  # the last row but one opens a quote: to the end
    (data_copy / "mri.csv").write_text("\n".join(text) + "\n")
    p = only_problem(data_copy)
    n = len(text)
    assert (p.row, p.line) == (n - 2, n - 1)
    assert p.expected.endswith(f"fields as in the header (this row spans lines {n - 1}-{n}: is a quote left open?)")


# --- 7. dialect, encoding, field size ---------------------------------------------------------------


@pytest.mark.parametrize("delimiter, name", [(";", "';'"), ("\t", "tab")])
def test_not_comma_separated(data_copy, delimiter, name):
    header, rows = read_csv_table(data_copy / "edss.csv")
    with open(data_copy / "edss.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows([header, *rows])
    p = only_problem(data_copy)  # was: the header as one unknown column, then every column absent
    assert (Path(p.file).name, p.line) == ("edss.csv", 1)
    assert p.expected == f"comma-separated fields; this looks {name}-separated"
    assert len(p.value) <= 80


def test_utf16_file(data_copy):
    text = (data_copy / "patients.csv").read_text(encoding="utf-8")
    (data_copy / "patients.csv").write_text(text, encoding="utf-16")
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.line) == ("patients.csv", 1) and "looks UTF-16" in p.expected


def test_field_over_the_csv_limit_names_its_line(data_copy, edit_cell):
    long_note = "x" * (csv.field_size_limit() + 1)
    row = edit_cell(data_copy / "arms.csv", {"study": "lu2020", "arm": "nmo"}, "note", long_note)
    p = only_problem(data_copy)
    assert (Path(p.file).name, p.line) == ("arms.csv", row + 1) and "field larger than field limit" in p.value
    assert f"line {row + 1}" in str(p)


# --- 8. how numbers are written ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0662", "\uff11\uff12", "0x10", "inf", "-Infinity", "1,5",
                                   "1 000", "12abc", "NAN", "1e3.5", "++5"])
def test_number_not_plainly_written(data_copy, edit_cell, value):
    column = "baseline_sd"
    row = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, column, value)
    edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "followup_sd", " +8.4e-1 ")  # plainly written
    edit_cell(data_copy / "edss.csv", {"study": "karussis2010", "timepoint_months": "1"}, "baseline_sd", ".5")
    p = only_problem(data_copy)  # was: '1_000' and non-ASCII digits read as numbers; no hint for the rest
    assert (p.row, p.column, p.value) == (row, column, value)
    assert p.expected == ("a number > 0, written as a plain decimal such as 12, -0.5 or 1e3 "
                          "(ASCII digits; no '_', ',' or spaces)")


def test_whole_numbers_and_not_reported(data_copy, edit_cell):
    r_nan = edit_cell(data_copy / "edss.csv", {"study": "petrou2021"}, "n", "nan")  # 'nan' is "not reported"
    r_sep = edit_cell(data_copy / "edss.csv", {"study": "bonab2012"}, "n", "2_2")
    edit_cell(data_copy / "arms.csv", {"study": "bonab2012"}, "n", "2.5e1")  # 25, as before: a whole number
    problems = problems_of(data_copy)  # was: '2_2' read as 22
    assert [(p.row, p.value) for p in problems] == [(r_nan, "nan"), (r_sep, "2_2")]
    assert problems[0].expected == "a value (this column is required)"
    assert problems[1].expected.endswith("written in ASCII digits such as 12 or 1e3 (no '_', ',' or spaces)")


# --- 9. property: mangled bytes and files give Evidence or EvidenceError ---------------------------------

RAW = {name: (DATA / f"{name}.csv").read_bytes() for name in TABLES}
_BYTES = hs.sampled_from([b"", b",", b";", b"\t", b'"', b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xe9", b"\xc3",
                          b"\xef\xbb\xbf", b" ", b"nan", b"1_000", "\u0661".encode(), "\u2028".encode(), b"-", b"e"])
BYTE_MUTATIONS = ("insert", "insert", "replace", "delete", "truncate", "duplicate_line", "header_byte")
FILE_MUTATIONS = ("folder", "dangling_link", "link_loop", "device_link", "near_miss_name")


def _mutate_bytes(raw: bytes, data) -> bytes:
    kind = data.draw(hs.sampled_from(BYTE_MUTATIONS), label="bytes")
    at = data.draw(hs.integers(0, len(raw)), label="at")
    chunk = data.draw(hs.one_of(_BYTES, hs.binary(max_size=6)), label="chunk")
    if kind == "insert":
        return raw[:at] + chunk + raw[at:]
    if kind == "replace":
        return raw[:at] + chunk + raw[at + len(chunk):]
    if kind == "delete":
        return raw[:at] + raw[at + data.draw(hs.integers(1, 40), label="length"):]
    if kind == "truncate":
        return raw[:at]
    if kind == "header_byte":
        k = data.draw(hs.integers(0, max(raw.find(b"\n"), 0)), label="in header")
        return raw[:k] + chunk + raw[k:]
    lines = raw.split(b"\n")
    k = data.draw(hs.integers(0, len(lines) - 1), label="line")
    return b"\n".join(lines[: k + 1] + lines[k:])


def _break_file(folder: Path, name: str, kind: str) -> None:
    file = folder / f"{name}.csv"
    file.unlink()
    if kind == "folder":
        file.mkdir()
    elif kind == "dangling_link":
        file.symlink_to(folder / "nowhere.csv")
    elif kind == "link_loop":
        file.symlink_to(file)
    elif kind == "device_link":
        file.symlink_to("/dev/zero")
    else:
        (folder / f"{name.upper()}.csv").write_bytes(RAW[name])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hs.data())
def test_mangled_bytes_and_files_give_evidence_or_evidence_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, raw in RAW.items():
            (folder / f"{name}.csv").write_bytes(raw)
        for _ in range(data.draw(hs.integers(1, 3), label="byte mutations")):
            name = data.draw(hs.sampled_from(TABLES), label="table")
            (folder / f"{name}.csv").write_bytes(_mutate_bytes((folder / f"{name}.csv").read_bytes(), data))
        broken = data.draw(hs.one_of(hs.none(), hs.tuples(hs.sampled_from(TABLES), hs.sampled_from(FILE_MUTATIONS))),
                           label="broken file")
        if broken:
            _break_file(folder, *broken)
        try:
            with at_most(20):
                ev = load_evidence(folder)
        except EvidenceError as exc:
            assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
            assert str(exc).startswith(f"{len(exc.problems)} problem(s) in the evidence:")
            if broken:  # a table that cannot be read is named, never silently absent
                assert any(Path(p.file).name.lower() == f"{broken[0]}.csv" for p in exc.problems)
        else:
            assert broken is None, broken  # an unreadable or misnamed table is never silently absent
            assert isinstance(ev, Evidence)
            for name in TABLES:
                t = ev.table(name)
                for column in ("n", "n_at_risk", "patients_with_event"):
                    if column in t and len(t):
                        assert np.isfinite(t[column].dropna().to_numpy(dtype=float)).all()


def test_a_column_name_with_a_line_break_stays_on_one_line_of_the_message():
    from msc_bayes.errors import Problem

    text = str(Problem("arms.csv", None, "Gro\nup\x1b[31m", "(unknown column)", "a known column", line=1))
    assert "\n" not in text and "\x1b" not in text and "Gro\\nup\\x1b[31m" in text
