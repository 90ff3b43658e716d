"""Reading a table file: bytes, UTF-8 text, CSV records, the header, and each cell parsed by its
column (numbers as :data:`NUMBER` writes them); near-miss file and column names."""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import difflib
import io
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import Problem, did_you_mean
from msc_bayes.evidence.schema import (
    MISSING,
    ONE_OF,
    REQUIRED_WHEN_PRESENT,
    SCHEMAS,
    TABLES,
    Column,
    _dtype,
)
from msc_bayes.input_files import NotReadable, read_bytes

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
    body = raw.removeprefix(codecs.BOM_UTF8)
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


# --- parsing cells -------------------------------------------------------------------


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
    if col.below is not None and number >= col.below:
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
