"""The evidence base: CSV tables in data/ -> one validated, immutable `Evidence`.

Validation collects every problem in every table and raises one `EvidenceError`
naming file, line, column, value and what was expected; bad evidence never raises
anything else. Missing ("not reported") is NaN/None; a reported zero is 0. Nothing is
filled in here.

What is read, and how:

* **Files.** A table is the file named exactly ``<table>.csv`` in the folder (``edss.csv``).
  It must be a readable regular file (a symbolic link to one is fine) of at most
  :data:`MAX_FILE_BYTES` (50 MB) and :data:`MAX_CELLS` cells: a folder, FIFO, device,
  socket, dangling link or link loop under a table's name is a problem, and a FIFO or
  device is never opened. A table whose file is absent is empty.
* **Near-miss file names.** When a table's file is absent, a file whose name, cut at its
  first '.', lower-cased and with spaces/'-' as '_', is that table's name or close to it
  (difflib ratio >= 0.8: ``EDSS.csv``, ``mri.CSV``, ``arm.csv``, ``adverse_event.csv``,
  ``edss.csv.txt``) is a problem with a "did you mean". Every other file (``README.md``,
  ``notes.txt``, CSV files not named like a table, such as ``covariates.csv``) is ignored.
* **Text.** UTF-8 (a BOM is allowed), comma-separated, as the csv module reads it.
  A header cell's surrounding whitespace is stripped (as every cell's is); an empty or
  repeated header name is a problem. Blank lines are skipped.
* **Lines.** Problems of rows read from a file name the row's line as an editor shows it:
  the header is line 1, blank lines count, and a quoted field's line breaks count; a row
  is named by the line it starts on. Tables built in memory (`Evidence.with_tables`) have
  no lines: their problems name the 1-based row.
* **Columns.** An unknown column is a problem, except in ``arms.csv``, where any further
  column is a candidate covariate unless it is a near-miss of a known column (see
  `_near_known_column`: equal ignoring case, spaces and '-', or an edit away from a name of
  4-5 letters, two from a longer one, a swap of neighbouring letters counting as one edit:
  ``Group``, ``grup``, ``Route``, ``dieases``, ``folowup_months``). A table without a
  column it needs gets that one problem, and its rows are not checked further.
* **Numbers** are written as plain decimals in ASCII digits (:data:`NUMBER`): an optional
  sign, digits with an optional decimal point, an optional exponent (``12``, ``+5``,
  ``-0.5``, ``.5``, ``1e3``), surrounding spaces ignored. ``1_000``, ``1,5``, ``0x10``,
  ``inf``, non-ASCII digits (``١٢``, ``１２``) and values beyond the float range are
  problems (``nan``, like ``NA``, is "not reported").
* **Arm sizes.** An outcome row counts patients of one arm: its ``n`` (``edss.csv``) or
  ``n_at_risk`` (``adverse_events.csv``, ``mri.csv``), and the distinct patients of an arm
  in ``patients.csv``, are at most that arm's ``n`` in ``arms.csv`` (when there is one: arms
  derived from the outcome tables take their ``n`` from ``edss.csv``).
"""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import difflib
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem, did_you_mean
from msc_bayes.input_files import NotReadable, read_bytes

# --- vocabulary -------------------------------------------------------------------
ROUTES = ("IV", "IT", "IT+IV", "mixed")
DISEASES = ("RRMS", "SPMS", "PPMS", "progressive", "MS", "mixed", "NMO", "NMOSD")
GROUPS = ("msc", "control")
DESIGNS = ("single-arm", "randomised", "randomised-crossover", "non-randomised-controlled")
CELL_SOURCES = ("bone_marrow", "umbilical_cord", "adipose", "msc_np", "placenta", "unspecified", "none")
CELL_ORIGINS = ("autologous", "allogeneic")
GRADES = ("primary", "secondary")
ATTRIBUTIONS = ("any", "related")
EXPOSURE_UNITS = ("administrations", "person_years")
#: EDSS moves in steps of 0.5 (0 to 10).
EDSS_STEP = 0.5
#: Weeks to months: mean Gregorian month of 30.4375 days.
DAYS_PER_MONTH = 30.4375

TABLES = ("arms", "edss", "patients", "adverse_events", "mri")
COUNT_COLUMNS = ("improved", "stable", "worsened", "stable_or_improved", "stable_or_worsened")


@dataclass(frozen=True)
class Column:
    kind: str  # "str" | "float" | "int" | "bool" | "cat"
    required: bool = False
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive bounds
    high: float | None = None
    positive: bool = False  # strictly > 0
    what: str = ""

    def expected(self) -> str:
        if self.kind == "cat":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = "a whole number" if self.kind == "int" else "a number"
        if self.positive:
            noun += " > 0"
        if self.low is not None and self.high is not None:
            noun += f" between {self.low:g} and {self.high:g}"
        elif self.low is not None:
            noun += f" >= {self.low:g}"
        return noun + (f" ({self.what})" if self.what else "")


_S, _F, _I = Column("str"), Column("float"), Column("int")
PROVENANCE = {
    "location": _S, "grade": Column("cat", choices=GRADES), "secondary_fields": _S,
    "derived": _S, "confidence": _S, "extraction_row": _S, "note": _S,
}
_KEYS = {"study": Column("str", required=True), "arm": Column("str", required=True)}
_TIME = {
    "timepoint_months": Column("float", positive=True, what="months since treatment"),
    "timepoint_weeks": Column("float", positive=True, what="weeks since treatment"),
    "timepoint_text": _S,
}
_EDSS_VALUE = Column("float", low=0, high=10, what="EDSS")
_CHANGE = Column("float", low=-10, high=10, what="EDSS change")
_SD = Column("float", positive=True)
_COUNT = Column("int", low=0)

SCHEMAS: dict[str, dict[str, Column]] = {
    "arms": {
        **_KEYS, "label": _S, "citation": _S, "source": _S,
        "design": Column("cat", choices=DESIGNS), "disease": Column("cat", choices=DISEASES),
        "group": Column("cat", choices=GROUPS), "cell_source": Column("cat", choices=CELL_SOURCES),
        "cell_origin": Column("cat", choices=CELL_ORIGINS), "route": Column("cat", choices=ROUTES),
        "dose_per_kg_million": Column("float", positive=True), "dose_cells_million": Column("float", positive=True),
        "dose_text": _S, "courses": Column("int", low=1), "courses_min": Column("int", low=1),
        "courses_max": Column("int", low=1), "administrations": Column("int", low=1),
        "n": Column("int", required=True, low=1), "followup_months": Column("float", positive=True),
        "followup_weeks": Column("float", positive=True), "overlap_group": _S,
        "overlap_rank": Column("int", low=1), **PROVENANCE,
    },
    "edss": {
        **_KEYS, **_TIME, "n": Column("int", required=True, low=1),
        "change_mean": _CHANGE, "change_sd": _SD, "change_se": _SD,
        "change_ci_lower": _CHANGE, "change_ci_upper": _CHANGE,
        "change_ci_level": Column("float", positive=True, high=0.999, what="e.g. 0.95"),
        "baseline_mean": _EDSS_VALUE, "baseline_sd": _SD, "followup_mean": _EDSS_VALUE, "followup_sd": _SD,
        **{c: _COUNT for c in COUNT_COLUMNS},
        "threshold": Column("float", positive=True, high=10, what="EDSS points"), "threshold_basis": _S,
        **PROVENANCE,
    },
    "patients": {  # a visit at time 0 is the baseline EDSS (a change at 0 is a problem: _check_patients)
        **_KEYS, "patient": Column("str", required=True),
        "timepoint_months": Column("float", low=0, what="months since treatment; 0 = baseline"),
        "timepoint_weeks": Column("float", low=0, what="weeks since treatment; 0 = baseline"),
        "timepoint_text": _S,
        "edss": _EDSS_VALUE, "change": _CHANGE, **PROVENANCE,
    },
    "adverse_events": {
        **_KEYS, "event": Column("str", required=True), "event_text": _S, "serious": Column("bool"),
        "attribution": Column("cat", choices=ATTRIBUTIONS),
        "patients_with_event": Column("int", required=True, low=0),
        "n_at_risk": Column("int", required=True, low=1), "events": _COUNT,
        "exposure": Column("float", positive=True), "exposure_unit": Column("cat", choices=EXPOSURE_UNITS),
        **_TIME, **PROVENANCE,
    },
    "mri": {
        **_KEYS, "event": Column("str", required=True), "event_text": _S, **_TIME,
        "patients_with_event": Column("int", required=True, low=0),
        "n_at_risk": Column("int", required=True, low=1), **PROVENANCE,
    },
}
#: Columns that identify a row; a repeat is a duplicate.
ROW_KEYS = {
    "arms": ("study", "arm"),
    "edss": ("study", "arm", "timepoint_months"),
    "patients": ("study", "arm", "patient", "timepoint_months"),
    "adverse_events": ("study", "arm", "event", "attribution", "timepoint_months"),
    "mri": ("study", "arm", "event", "timepoint_months"),
}
MISSING = {"", "NA", "N/A", "NR", "nan", "NaN"}
#: Groups of columns of which a table needs at least one (beyond its required columns).
ONE_OF = {
    "edss": (("timepoint_months", "timepoint_weeks"),),
    "patients": (("timepoint_months", "timepoint_weeks"), ("edss", "change")),
    "mri": (("timepoint_months", "timepoint_weeks"),),
}
#: Required outcome values that `Evidence.without_secondary` may leave blank (the models skip them).
OUTCOME_VALUES = ("patients_with_event",)
#: Columns a table may leave out (every row then gets the default) but, when present, needs on
#: every row: an arms.csv without `group` is a table of MSC arms, as a folder without arms.csv
#: is; a blank `group` (a placebo arm left blank) is a problem, never taken for MSC.
REQUIRED_WHEN_PRESENT = {"arms": {"group": "msc"}}
#: The column of an outcome table that counts patients of one arm: at most the arm's n.
PATIENT_COUNTS = {"edss": "n", "adverse_events": "n_at_risk", "mri": "n_at_risk"}

#: Largest table file read (bytes). The bundled tables are a few kB; a larger file, or a link
#: to an endless device, is refused before it is read.
MAX_FILE_BYTES = 50 * 2**20
#: Most cells (fields of non-blank records, header included) read from one table file:
#: bounds memory where a 50 MB file of short fields would expand many times over.
MAX_CELLS = 2_000_000
#: A number as the tables write it: sign, ASCII digits, decimal point, exponent (no '_', no
#: hexadecimal, no inf/nan, no non-ASCII digits, all of which float() alone would accept).
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_FORMAT = "written as a plain decimal such as 12, -0.5 or 1e3 (ASCII digits; no '_', ',' or spaces)"
_WHOLE_FORMAT = "written in ASCII digits such as 12 or 1e3 (no '_', ',' or spaces)"


@dataclass(frozen=True)
class Evidence:
    """Validated evidence tables. Tables are returned as copies: the object cannot change."""

    path: str
    data_hash: str
    _tables: dict[str, pd.DataFrame] = field(repr=False)

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name in TABLES:
            return self._tables[name].copy(deep=False)
        raise AttributeError(name)

    def table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(f"no table {name!r}; tables are {TABLES}")
        return self._tables[name].copy(deep=False)

    @property
    def studies(self) -> list[str]:
        return sorted(self._tables["arms"]["study"].unique())

    def with_tables(self, **tables: pd.DataFrame) -> "Evidence":
        """A new Evidence with some tables replaced (re-validated)."""
        new = dict(self._tables)
        for name, df in tables.items():
            if name not in TABLES:
                raise KeyError(f"no table {name!r}; tables are {TABLES}")
            new[name] = df
        for name, df in new.items():  # months that loading derived from weeks are not input: blank them again
            for what in ("timepoint", "followup"):
                if f"{what}_weeks" in df and f"{what}_months" in df:
                    weeks = pd.to_numeric(df[f"{what}_weeks"], errors="coerce")
                    months = pd.to_numeric(df[f"{what}_months"], errors="coerce")
                    derived = np.isclose(months, weeks * 7 / DAYS_PER_MONTH)
                    df = df.assign(**{f"{what}_months": df[f"{what}_months"].mask(derived)})
            new[name] = df
        frames = {k: _to_text(v).reset_index(drop=True) for k, v in new.items()}  # rows align by position
        return _build(frames, f"{self.path} (modified)")

    def subset(self, *, studies=None, exclude_studies=(), arms_where=None) -> "Evidence":
        """Keep some studies/arms (e.g. `arms_where=lambda a: a.disease != "NMO"`)."""
        arms = self._tables["arms"]
        keep = np.ones(len(arms), dtype=bool)
        if studies is not None:
            keep &= arms["study"].isin(list(studies)).to_numpy()
        keep &= ~arms["study"].isin(list(exclude_studies)).to_numpy()
        if arms_where is not None:
            keep &= np.asarray(arms_where(arms.copy()), dtype=bool)
        kept = arms.loc[keep, ["study", "arm"]]
        tables = {"arms": arms.loc[keep].reset_index(drop=True)}
        for name in TABLES[1:]:
            df = self._tables[name]
            tables[name] = df.merge(kept, on=["study", "arm"], how="inner") if len(df) else df
        return Evidence(self.path, f"{self.data_hash}+subset-{_hash_tables(tables)[:8]}", tables)

    def without_secondary(self) -> "Evidence":
        """Blank every value that a row marks as coming from a secondary source.

        A row that this leaves without a value it needs (a required column such as ``n``,
        ``n_at_risk`` or arms' ``group``; both of patients' ``edss`` and ``change``; not an
        event count, see OUTCOME_VALUES) cannot be used and is dropped; an arm dropped so takes its outcome rows with it."""
        tables = {}
        for name, before in self._tables.items():
            df = before.copy()
            if "secondary_fields" in df:
                for i, fields in df["secondary_fields"].items():
                    for col in _split(fields):
                        df.loc[i, col] = None if df[col].dtype == object else np.nan
            usable = np.ones(len(df), dtype=bool)
            for group in _needed_columns(name):  # blanked here (not blank already, as a derived arm's n can be)
                usable &= df[list(group)].notna().any(axis=1).to_numpy() | before[list(group)].isna().all(axis=1).to_numpy()
            tables[name] = df[usable]
        tables["patients"] = tables["patients"][tables["patients"].get("grade", "primary") != "secondary"]
        arms = set(zip(tables["arms"]["study"], tables["arms"]["arm"]))
        for name in TABLES[1:]:
            df = tables[name]
            tables[name] = df[np.array([key in arms for key in zip(df["study"], df["arm"])], dtype=bool)]
        return Evidence(self.path, f"{self.data_hash}-secondary-{_hash_tables(tables)[:8]}", tables)


def _needed_columns(name: str) -> list[tuple[str, ...]]:
    """Groups of columns of which a row of table `name` needs a value in at least one to be used:
    each required column alone, each ONE_OF group, and REQUIRED_WHEN_PRESENT columns. A blank
    count of patients with an event (OUTCOME_VALUES) leaves the row: its model reads it as "not
    reported" and says that exclude_secondary blanked it."""
    needed = [(c,) for c, col in SCHEMAS[name].items() if col.required and c not in OUTCOME_VALUES]
    return needed + [(c,) for c in REQUIRED_WHEN_PRESENT.get(name, ())] + list(ONE_OF.get(name, ()))


def _key_columns(name: str) -> tuple[str, ...]:
    """The columns that identify a row of table `name` (ROW_KEYS; a timepoint in months or weeks)."""
    keys = ROW_KEYS[name]
    return keys + ("timepoint_weeks",) if "timepoint_months" in keys else keys


def _split(value) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [v.strip() for v in str(value).split(";") if v.strip()]


def _to_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.astype(object).where(df.notna(), "")
    return out.map(lambda v: "true" if v is True else "false" if v is False else str(v))


def load_evidence(path: str | Path = "data") -> Evidence:
    """Read and validate the evidence tables in `path` (a folder of CSV files).

    `arms.csv` is optional only when the outcome tables carry no arm characteristics
    (a plain effect-size table): arms are then the study/arm pairs found. What is read,
    and how, is in the module docstring.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise EvidenceError([Problem(str(folder), None, None, str(folder), "a folder of evidence CSV files")])
    problems: list[Problem] = []
    entries = _folder_entries(folder, problems)
    problems += _misnamed_tables(folder, entries)
    frames: dict[str, pd.DataFrame] = {}
    lines: dict[str, list[int]] = {}
    digest = hashlib.sha256()
    for name in TABLES:
        file = folder / f"{name}.csv"
        if file.name not in entries:
            continue
        raw = _read_file(file, problems)
        if raw is None:
            continue
        digest.update(name.encode() + b"\0" + raw)
        table = _read_csv(raw, str(file), problems)
        if table is not None:
            frames[name], lines[str(file)] = table
    if not frames and not problems:
        problems.append(Problem(str(folder), None, None, "no tables",
                                "at least one of " + ", ".join(f"{t}.csv" for t in TABLES)))
    if problems:  # still report the cell-level problems of the tables that could be read
        for name, df in frames.items():
            _parse_table(name, df, str(folder / f"{name}.csv"), problems)
        raise EvidenceError(_located(problems, lines))
    return _build(frames, str(folder), digest.hexdigest()[:16], lines)


# --- reading files -------------------------------------------------------------------


def _folder_entries(folder: Path, problems: list[Problem]) -> set[str]:
    """The names in `folder`. A table is present when its exact name is listed (on every file system)."""
    try:
        return set(os.listdir(folder))
    except OSError as exc:
        problems.append(Problem(str(folder), None, None, exc.strerror or str(exc), "a readable folder"))
        return set()


def _misnamed_tables(folder: Path, entries: set[str]) -> list[Problem]:
    """A file that looks like an absent table under another name ('EDSS.csv', 'arm.csv', 'mri.CSV')."""
    problems = []
    for entry in sorted(entries):
        table = _resembled_table(entry)
        if table is None or f"{table}.csv" in entries or (folder / entry).is_dir():
            continue
        problems.append(Problem(str(folder / entry), None, None, entry,
                                f"a table named exactly '{table}.csv' (did you mean '{table}.csv'?); "
                                "files not named like a table are ignored"))
    return problems


def _resembled_table(entry: str) -> str | None:
    """The table whose name `entry`'s (first '.'-separated part, squashed) is or is close to."""
    stem = _squash(entry.split(".", 1)[0])
    if not stem or entry in {f"{t}.csv" for t in TABLES}:
        return None
    matches = difflib.get_close_matches(stem, TABLES, n=1, cutoff=0.8)
    return matches[0] if matches else None


def _read_file(file: Path, problems: list[Problem]) -> bytes | None:
    """The bytes of `file`, or None (problem added) if it is not a readable regular file of at most MAX_FILE_BYTES."""
    try:
        return read_bytes(file, MAX_FILE_BYTES)
    except NotReadable as exc:
        found = str(exc)
    if os.path.islink(file) and "symbolic link" not in found:
        found += f" (a symbolic link to {os.readlink(file)!r})"
    problems.append(Problem(str(file), None, None, found,
                            f"a readable regular file of at most {MAX_FILE_BYTES // 2**20} MB"))
    return None


def _read_csv(raw: bytes, file: str, problems: list[Problem]) -> tuple[pd.DataFrame, list[int]] | None:
    """A table's cells as text and the line each data row starts on; None (problems added) if it
    is not a well-formed comma-separated UTF-8 table."""
    text = _decode(raw, file, problems)
    records = None if text is None else _records(text, file, problems)
    if records is None:
        return None
    if not records:
        problems.append(Problem(file, None, None, "", "a header row"))
        return None
    (header_line, _, header), body = records[0], records[1:]
    found = _header_problems(header, file, header_line)
    if not found:
        found = _ragged_rows(body, len(header), file)
    problems += found
    if found:
        return None
    frame = pd.DataFrame([fields for _, _, fields in body], columns=[h.strip() for h in header], dtype=object)
    return frame, [line for line, _, _ in body]


def _decode(raw: bytes, file: str, problems: list[Problem]) -> str | None:
    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            expected = "UTF-8 text (this file looks UTF-16: save it as UTF-8)"
        else:
            byte = exc.start + len(raw) - len(body) + 1
            expected = f"UTF-8 text (byte {byte:,} of the file is not UTF-8: save it as UTF-8)"
        line = 1 + len(re.findall(rb"\r\n|\r|\n", body[: exc.start]))
        problems.append(Problem(file, None, None, body[exc.start : exc.end], expected, line=line))
        return None


def _records(text: str, file: str, problems: list[Problem]) -> list[tuple[int, int, list[str]]] | None:
    """Each non-blank record with its first and last line (lines as csv.reader counts them: a
    quoted line break is a line); None (problem added) if the csv module cannot read it."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records, start, cells = [], 1, 0
    try:
        for fields in reader:
            if any(c.strip() for c in fields):
                records.append((start, reader.line_num, fields))
                cells += len(fields)
                if cells > MAX_CELLS:
                    problems.append(Problem(file, None, None, f"more than {MAX_CELLS:,} cells",
                                            f"at most {MAX_CELLS:,} cells in one table", line=start))
                    return None
            start = reader.line_num + 1
    except csv.Error as exc:
        hint = "is a quote left open?" if "field limit" in str(exc) else "a well-formed CSV record"
        problems.append(Problem(file, None, None, str(exc), f"CSV fields of at most {csv.field_size_limit():,} "
                                f"characters ({hint})", line=start))
        return None
    return records


def _header_problems(header: list[str], file: str, line: int) -> list[Problem]:
    separator = _foreign_separator(header)
    if separator:
        shown = ",".join(header)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        expected = f"comma-separated fields; this looks {separator}-separated"
        return [Problem(file, None, None, shown, expected, line=line)]
    names = [h.strip() for h in header]
    problems = [Problem(file, None, None, h, f"a name for column {k} of the header", line=line)
                for k, h in enumerate(names, 1) if not h]
    repeated = sorted(h for h, count in collections.Counter(names).items() if h and count > 1)
    if repeated:
        problems.append(Problem(file, None, ", ".join(repeated), "repeated column", "unique column names", line=line))
    return problems


def _foreign_separator(header: list[str]) -> str | None:
    """"';'", "tab" or "'|'" when the header has at least as many of those as fields: not comma-separated."""
    for separator, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
        if sum(h.count(separator) for h in header) >= len(header):
            return name
    return None


def _ragged_rows(body: list[tuple[int, int, list[str]]], width: int, file: str) -> list[Problem]:
    problems = []
    for i, (line, last, fields) in enumerate(body, 1):
        if len(fields) != width:
            hint = f" (this row spans lines {line}-{last}: is a quote left open?)" if last > line else ""
            problems.append(Problem(file, i, None, f"{len(fields)} fields", f"{width} fields as in the header" + hint,
                                    line=line))
    return problems


def _located(problems: list[Problem], lines: dict[str, list[int]]) -> list[Problem]:
    """Each problem of a row read from a file, with the line that row starts on."""
    out = []
    for p in problems:
        rows = lines.get(p.file, ())
        if p.line is None and p.row is not None and 0 < p.row <= len(rows):
            p = dataclasses.replace(p, line=rows[p.row - 1])
        out.append(p)
    return out


# --- parsing and checking ------------------------------------------------------------


def _build(frames: dict[str, pd.DataFrame], path: str, data_hash: str | None = None,
           lines: dict[str, list[int]] | None = None) -> Evidence:
    """Parse and check the tables. `lines` (file -> line of each row) is None for tables built in
    memory; their problems then name the file alone ('edss.csv') and the row."""
    def label(name: str) -> str:
        return f"{name}.csv" if lines is None else str(Path(path) / f"{name}.csv")

    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    broken: set[str] = set()  # tables without a column they need: their rows are not checked
    for name in TABLES:
        if name in frames:
            tables[name], ok = _parse_table(name, frames[name], label(name), problems)
            broken |= set() if ok else {name}
        else:
            tables[name] = pd.DataFrame({c: pd.Series(dtype=_dtype(col)) for c, col in SCHEMAS[name].items()})
    if "arms" not in frames:
        tables["arms"] = _arms_from_outcomes(tables)
    # Row-level checks run on every row whose values all parsed (a cell that failed to
    # parse is already reported; checks on its blank would only repeat it).
    unparsed = {(p.file, p.row) for p in problems}
    row_problems: list[Problem] = []
    _check_rows(tables, label, broken, row_problems, arms_given="arms" in frames)
    problems += [p for p in row_problems if (p.file, p.row) not in unparsed]
    if problems:
        raise EvidenceError(_located(problems, lines or {}))
    for df in tables.values():
        if "timepoint_weeks" in df and "timepoint_months" in df:
            weeks = df["timepoint_weeks"] * 7 / DAYS_PER_MONTH
            df["timepoint_months"] = df["timepoint_months"].fillna(weeks)
    arms = tables["arms"]
    arms["followup_months"] = arms["followup_months"].fillna(arms["followup_weeks"] * 7 / DAYS_PER_MONTH)
    if data_hash is None:
        data_hash = _hash_tables(tables)[:16]
    return Evidence(path, data_hash, tables)


def _hash_tables(tables: dict[str, pd.DataFrame]) -> str:
    return hashlib.sha256(
        b"".join(pd.util.hash_pandas_object(t, index=False).to_numpy().tobytes() for t in tables.values())
    ).hexdigest()


def _dtype(col: Column) -> str:
    return {"float": "float64", "int": "Int64", "bool": "boolean"}.get(col.kind, "object")


def _parse_table(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> tuple[pd.DataFrame, bool]:
    """The parsed table, and whether it has every column it needs."""
    absent = _absent_columns(name, set(df.columns), file)
    problems += absent
    schema = SCHEMAS[name]
    present = [c for c in REQUIRED_WHEN_PRESENT.get(name, ()) if c in df.columns]
    schema = {**schema, **{c: dataclasses.replace(schema[c], required=True) for c in present}}
    parsed = _parse(df, schema, file, problems, open_columns=name == "arms")
    for c, default in REQUIRED_WHEN_PRESENT.get(name, {}).items():
        if c not in df.columns:
            parsed[c] = pd.Series([default] * len(df), dtype=parsed[c].dtype)
    return parsed, not absent


def _absent_columns(name: str, columns: set, file: str) -> list[Problem]:
    problems = [Problem(file, None, c, "(column absent)", f"a column '{c}'")
                for c, col in SCHEMAS[name].items() if col.required and c not in columns]
    for group in ONE_OF.get(name, ()):
        if not columns & set(group):
            problems.append(Problem(file, None, "/".join(group), "(columns absent)",
                                    "a column " + " or ".join(f"'{c}'" for c in group)))
    return problems


def _parse(df: pd.DataFrame, schema: dict[str, Column], file: str, problems: list[Problem], open_columns: bool):
    out = {}
    for name in df.columns:
        col = schema.get(name)
        if col is not None:
            out[name] = _parse_column(df[name], name, col, file, problems)
            continue
        near = _near_known_column(str(name), schema) if open_columns else None
        if open_columns and near is None:  # any further arms.csv column is a candidate covariate
            out[name] = _parse_open(df[name], name, file, problems)
            continue
        hint = f" (did you mean '{near}'?); a covariate needs a name unlike every known column" if near else \
            did_you_mean(name, schema)
        problems.append(Problem(file, None, name, "(unknown column)", "a known column" + hint))
    for name, col in schema.items():
        if name not in out:
            out[name] = pd.Series([None] * len(df), dtype=_dtype(col)) if col.kind != "float" else pd.Series(
                np.full(len(df), np.nan))
    return pd.DataFrame(out)


def _parse_column(series: pd.Series, name: str, col: Column, file: str, problems: list[Problem]) -> pd.Series:
    values = []
    for i, raw in enumerate(series, 1):
        text = str(raw).strip()
        if text in MISSING:
            if col.required:
                problems.append(Problem(file, i, name, raw, "a value (this column is required)"))
            values.append(None)
            continue
        value, ok = _convert(text, col)
        if not ok:
            problems.append(Problem(file, i, name, raw, col.expected() + _hint(text, col)))
        values.append(value if ok else None)
    if col.kind == "float":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    return pd.Series(values, dtype=_dtype(col))


def _hint(text: str, col: Column) -> str:
    if col.kind == "cat":
        return did_you_mean(text, col.choices)
    if col.kind in ("int", "float") and not NUMBER.fullmatch(text):
        return ", " + (_WHOLE_FORMAT if col.kind == "int" else _NUMBER_FORMAT)
    return ""


def _convert(text: str, col: Column):
    if col.kind == "str":
        return text, True
    if col.kind == "cat":
        return text, text in col.choices
    if col.kind == "bool":
        low = text.lower()
        return (low in ("true", "yes", "1")), low in ("true", "yes", "1", "false", "no", "0")
    number = _number(text)
    if number is None:
        return None, False
    if col.kind == "int":
        if number != int(number) or abs(number) >= 2**63:
            return None, False
        number = int(number)
    if col.positive and number <= 0:
        return None, False
    if col.low is not None and number < col.low or col.high is not None and number > col.high:
        return None, False
    return number, True


def _number(text: str) -> float | None:
    """The value of a number written as :data:`NUMBER` allows and within the float range, else None."""
    if not NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _parse_open(series: pd.Series, name: str, file: str, problems: list[Problem]) -> pd.Series:
    """A covariate column: numbers if every reported value is one, else text. A column that
    float() would read whole ('1_000', '١٢', 'inf' among numbers) is numbers written wrongly."""
    text = [str(v).strip() for v in series]
    numbers = [np.nan if t in MISSING else _number(t) for t in text]
    if all(v is not None for v in numbers):
        return pd.Series(numbers, dtype="float64")
    if all(v is not None or _loose_number(t) for t, v in zip(text, numbers)):
        for i, (raw, v) in enumerate(zip(series, numbers), 1):
            if v is None:
                problems.append(Problem(file, i, name, raw, f"a finite number {_NUMBER_FORMAT} (the other values "
                                        "of this covariate are numbers)"))
        return pd.Series([np.nan if v is None else v for v in numbers], dtype="float64")
    return pd.Series([None if t in MISSING else t for t in text], dtype=object)


def _loose_number(text: str) -> bool:
    """Would float() take it (as it takes '1_000', 'inf' and non-ASCII digits)?"""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _squash(name: str) -> str:
    """'  Follow-up Months ' -> 'follow_up_months': lower case, spaces and '-' as '_'."""
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def _near_known_column(name: str, known) -> str | None:
    """The known column `name` is a near-miss of, else None.

    Near: the squashed name (`_squash`) is within an edit distance (insertions, deletions,
    substitutions and swaps of neighbours, each costing 1: `_edit_distance`) of 0 for known
    names of 1-3 characters, 1 for 4-5 and 2 for 6 or more. 'Group', 'grup', 'Route',
    'disease ', 'dieases', 'folowup_month' are near; 'age_mean', 'edss_baseline_mean',
    'female_percent', 'disease_duration_years' are new columns.
    """
    squashed = _squash(name)
    best = None
    for k in known:
        slack = 0 if len(k) <= 3 else 1 if len(k) <= 5 else 2
        if abs(len(squashed) - len(k)) <= slack:
            distance = _edit_distance(squashed, k)
            if distance <= slack and (best is None or distance < best[0]):
                best = (distance, k)
    return best[1] if best else None


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus swaps of neighbouring characters)."""
    previous, current = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        before, previous, current = previous, current, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
    return current[len(b)]


def _arms_from_outcomes(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [t[["study", "arm"]] for n, t in tables.items() if n != "arms" and len(t)]
    keys = pd.concat(parts).dropna().drop_duplicates() if parts else pd.DataFrame(columns=["study", "arm"])
    arms = pd.DataFrame({c: pd.Series([None] * len(keys), dtype=_dtype(col)) for c, col in SCHEMAS["arms"].items()})
    arms["study"], arms["arm"] = keys["study"].to_numpy(), keys["arm"].to_numpy()
    arms["group"] = "msc"  # a plain effect-size table: every arm is the treated arm
    edss = tables["edss"]
    n = edss.groupby(["study", "arm"])["n"].max() if len(edss) else pd.Series(dtype=float)
    arms["n"] = [n.get((s, a), pd.NA) for s, a in zip(arms["study"], arms["arm"])]
    arms["n"] = arms["n"].astype("Int64")
    return arms


def _check_rows(tables: dict[str, pd.DataFrame], label, broken: set[str], problems: list[Problem],
                arms_given: bool = True) -> None:
    """Checks across rows and tables, skipping tables without a column they need (`broken`). Arm
    sizes are checked only against an arms.csv that was given (`arms_given`), not against arms
    derived from the outcome tables (whose n is edss.csv's)."""
    arms = tables["arms"]
    for name, df in tables.items():
        if not len(df) or name in broken:
            continue
        if name != "arms" and "arms" not in broken:
            _check_known_arms(df, arms, label(name), problems)
            if arms_given:
                _check_arm_sizes(name, df, arms, label(name), problems)
        if "timepoint_months" in df and name != "arms":
            _check_timepoints(name, df, label(name), problems)
        _check_duplicates(name, df, label(name), problems)
        _check_secondary_fields(name, df, label(name), problems)
    checks = {"arms": _check_arms, "edss": _check_edss, "patients": _check_patients,
              "adverse_events": _check_events, "mri": _check_events}
    for name, check in checks.items():
        if name not in broken:
            check(tables[name], label(name), problems)


def _check_known_arms(df: pd.DataFrame, arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    by_study: dict[object, list] = collections.defaultdict(list)
    for s, a in zip(arms["study"], arms["arm"]):
        if pd.notna(s) and pd.notna(a):
            by_study[s].append(a)
    for i, (s, a) in enumerate(zip(df["study"], df["arm"]), 1):
        if a in by_study.get(s, ()):
            continue
        hint = did_you_mean(a, sorted(by_study[s])) if s in by_study else did_you_mean(s, sorted(by_study))
        problems.append(Problem(file, i, "study/arm", f"{s}/{a}", "a study/arm listed in arms.csv" + hint))


def _check_arm_sizes(name: str, df: pd.DataFrame, arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    """A row counts patients of one arm: at most the arm's n (distinct patients, in patients.csv)."""
    arm_n = {(s, a): n for s, a, n in zip(arms["study"], arms["arm"], arms["n"]) if pd.notna(n)}
    if name == "patients":
        seen: dict[tuple, set] = collections.defaultdict(set)
        for i, (s, a, patient) in enumerate(zip(df["study"], df["arm"], df["patient"]), 1):
            seen[s, a].add(patient)
            if (s, a) in arm_n and len(seen[s, a]) == arm_n[s, a] + 1:
                problems.append(Problem(file, i, "patient", patient,
                                        f"at most the arm's n in arms.csv ({arm_n[s, a]}) distinct patients"))
        return
    column = PATIENT_COUNTS[name]
    for i, (s, a, n) in enumerate(zip(df["study"], df["arm"], df[column]), 1):
        if (s, a) in arm_n and pd.notna(n) and n > arm_n[s, a]:
            problems.append(Problem(file, i, column, n, f"at most the arm's n in arms.csv ({arm_n[s, a]})"))


def _check_timepoints(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    both = df["timepoint_months"].notna() & df["timepoint_weeks"].notna()
    for i in np.flatnonzero(both.to_numpy()):
        problems.append(Problem(file, i + 1, "timepoint_weeks", df["timepoint_weeks"].iloc[i],
                                "either timepoint_months or timepoint_weeks, not both"))
    if name in ("edss", "patients", "mri"):
        neither = df["timepoint_months"].isna() & df["timepoint_weeks"].isna()
        for i in np.flatnonzero(neither.to_numpy()):
            problems.append(Problem(file, i + 1, "timepoint_months", "", "a timepoint (months or weeks)"))


def _check_duplicates(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    keys = [k if k != "timepoint_months" else "_t" for k in ROW_KEYS[name]]
    keyed = df.assign(_t=df["timepoint_months"].fillna(df["timepoint_weeks"] * 7 / DAYS_PER_MONTH)) \
        if "timepoint_weeks" in df else df
    dup = keyed.astype(object).where(keyed.notna(), None).duplicated(subset=keys, keep="first")
    for i in np.flatnonzero(dup.to_numpy()):
        problems.append(Problem(file, i + 1, ",".join(ROW_KEYS[name]), tuple(keyed[k].iloc[i] for k in keys),
                                "a unique row (the same key appears earlier)"))


def _check_secondary_fields(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    """Each named column is one of the table's, and not one that identifies the row (blanking a key
    would make the row another row, or none)."""
    if "secondary_fields" not in df:
        return
    keys = _key_columns(name)
    for i, fields in enumerate(df["secondary_fields"], 1):
        for col in _split(fields):
            if col not in df.columns:
                problems.append(Problem(file, i, "secondary_fields", col,
                                        "a column of this table" + did_you_mean(col, df.columns)))
            elif col in keys:
                problems.append(Problem(file, i, "secondary_fields", col, "a column of this table that does not "
                                        f"identify the row (not {', '.join(keys)})"))


def _check_arms(arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(arms.itertuples(index=False), 1):
        lo, hi = row.courses_min, row.courses_max
        if pd.notna(lo) and pd.notna(hi) and lo > hi:
            problems.append(Problem(file, i, "courses_max", hi, f"at least courses_min ({lo})"))
        if pd.notna(row.courses) and (pd.notna(lo) or pd.notna(hi)):
            problems.append(Problem(file, i, "courses", row.courses, "either courses or courses_min/courses_max"))
        if pd.notna(row.followup_months) and pd.notna(row.followup_weeks):
            problems.append(Problem(file, i, "followup_weeks", row.followup_weeks,
                                    "either followup_months or followup_weeks, not both"))
        if pd.notna(row.overlap_group) != pd.notna(row.overlap_rank):
            problems.append(Problem(file, i, "overlap_rank", row.overlap_rank, "overlap_group and overlap_rank together"))


def _check_edss(edss: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(edss.itertuples(index=False), 1):
        n = row.n
        counts = {c: getattr(row, c) for c in COUNT_COLUMNS}
        for c, v in counts.items():
            if pd.notna(v) and pd.notna(n) and v > n:
                problems.append(Problem(file, i, c, v, f"at most n ({n})"))
        if pd.notna(n) and not _partition_exists(n, counts):
            shown = ", ".join(f"{c}={v}" for c, v in counts.items() if pd.notna(v))
            problems.append(Problem(file, i, "improved/stable/worsened", shown,
                                    f"counts that split n = {n} patients into improved + stable + worsened"))
        if pd.notna(row.threshold) and not _on_edss_grid(row.threshold):
            problems.append(Problem(file, i, "threshold", row.threshold, f"a multiple of {EDSS_STEP} (EDSS steps)"))
        lo, hi = row.change_ci_lower, row.change_ci_upper
        if pd.notna(lo) != pd.notna(hi):
            problems.append(Problem(file, i, "change_ci_upper", hi, "both CI limits or neither"))
        elif pd.notna(lo):
            if lo >= hi:
                problems.append(Problem(file, i, "change_ci_upper", hi, f"greater than change_ci_lower ({lo})"))
            if pd.isna(row.change_ci_level):
                problems.append(Problem(file, i, "change_ci_level", "", "the CI level (e.g. 0.95) when a CI is given"))
            if pd.notna(row.change_mean) and not lo <= row.change_mean <= hi:
                problems.append(Problem(file, i, "change_mean", row.change_mean, f"inside its CI [{lo}, {hi}]"))
        for mean, sd in (("baseline_mean", "baseline_sd"), ("followup_mean", "followup_sd")):
            if pd.notna(getattr(row, sd)) and pd.isna(getattr(row, mean)):
                problems.append(Problem(file, i, mean, "", f"a mean when {sd} is given"))
        if pd.notna(row.followup_mean) != pd.notna(row.baseline_mean):
            col = "baseline_mean" if pd.isna(row.baseline_mean) else "followup_mean"
            problems.append(Problem(file, i, col, "", "baseline_mean and followup_mean together"))


def _partition_exists(n: int, counts: dict) -> bool:
    """Is there (improved, stable, worsened) >= 0 summing to n that matches every reported count?"""
    # Each count fixes one of i = improved, s = stable, t = i + s = n - worsened.
    fixed: dict[str, set[int]] = {"i": set(), "s": set(), "t": set()}
    for name, value in counts.items():
        if pd.isna(value):
            continue
        which, v = {"improved": ("i", value), "stable": ("s", value), "worsened": ("t", n - value),
                    "stable_or_improved": ("t", value), "stable_or_worsened": ("i", n - value)}[name]
        fixed[which].add(int(v))
    if any(len(v) > 1 for v in fixed.values()):
        return False
    i, s, t = (fixed[k].pop() if fixed[k] else None for k in "ist")
    if i is None and s is not None and t is not None:
        i = t - s
    if s is None and i is not None and t is not None:
        s = t - i
    if i is not None and s is not None:
        return i >= 0 and s >= 0 and i + s <= n and (t is None or t == i + s)
    return all(0 <= x <= n for x in (i, s, t) if x is not None)  # the free unknowns can be 0


def _check_patients(patients: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(patients.itertuples(index=False), 1):
        if pd.isna(row.edss) == pd.isna(row.change):
            problems.append(Problem(file, i, "edss/change", (row.edss, row.change), "exactly one of edss or change"))
        for col in ("edss", "change"):
            v = getattr(row, col)
            if pd.notna(v) and not _on_edss_grid(v):
                problems.append(Problem(file, i, col, v, f"a multiple of {EDSS_STEP} (EDSS steps)"))
        for col in ("timepoint_months", "timepoint_weeks"):
            if pd.notna(row.change) and getattr(row, col) == 0:
                problems.append(Problem(file, i, col, 0, "a follow-up time > 0 for a change from baseline"))


def _on_edss_grid(value: float) -> bool:
    """Is `value` a multiple of EDSS_STEP (0.5), as EDSS scores, changes and thresholds are?"""
    return abs(value / EDSS_STEP - round(value / EDSS_STEP)) <= 1e-9


def _check_events(df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(df.itertuples(index=False), 1):
        if pd.notna(row.patients_with_event) and pd.notna(row.n_at_risk) and row.patients_with_event > row.n_at_risk:
            problems.append(Problem(file, i, "patients_with_event", row.patients_with_event,
                                    f"at most n_at_risk ({row.n_at_risk})"))
        events = getattr(row, "events", None)
        if events is not None and pd.notna(events) and pd.notna(row.patients_with_event) and events < row.patients_with_event:
            problems.append(Problem(file, i, "events", events, f"at least patients_with_event ({row.patients_with_event})"))
        exposure = getattr(row, "exposure", None)
        if exposure is not None and pd.notna(exposure) and pd.isna(row.exposure_unit):
            problems.append(Problem(file, i, "exposure_unit", "", "the unit of exposure (" + ", ".join(EXPOSURE_UNITS) + ")"))
