"""`Evidence`, the validated and immutable tables, and how it is built: from a folder of CSV
files (`load_evidence`) or from tables in memory (`Evidence.with_tables`)."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence.checks import _check_rows
from msc_bayes.evidence.reading import (
    _folder_entries,
    _located,
    _misnamed_tables,
    _parse_table,
    _read_csv,
    _read_file,
)
from msc_bayes.evidence.schema import (
    DAYS_PER_MONTH,
    DESIGN_TABLES,
    MISSING,
    PATIENT_COUNTS,
    SCHEMAS,
    TABLES,
    _dtype,
    _needed_columns,
    _split,
)


@dataclass(frozen=True)
class Evidence:
    """Validated evidence tables. Tables are returned as copies: the object cannot change."""

    path: str
    data_hash: str
    _tables: dict[str, pd.DataFrame] = field(repr=False)
    #: Whether arms came from an arms.csv (else from the outcome tables' study/arm pairs).
    arms_given: bool = True
    #: The (study, arm) whose n arms.csv leaves blank and the outcome tables' counts give.
    n_from_outcomes: frozenset = frozenset()

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

    def with_tables(self, **tables: pd.DataFrame) -> Evidence:
        """A new Evidence with some tables replaced (re-validated)."""
        new = dict(self._tables)
        for name, df in tables.items():
            if name not in TABLES:
                raise KeyError(f"no table {name!r}; tables are {TABLES}")
            new[name] = df
        if "arms" not in tables:  # arms derived or n taken from the outcome tables are not input: derive them again
            if not self.arms_given:
                del new["arms"]
            elif self.n_from_outcomes:
                arms = new["arms"]
                filled = [k in self.n_from_outcomes for k in zip(arms["study"], arms["arm"])]
                new["arms"] = arms.assign(n=arms["n"].mask(np.array(filled, dtype=bool)))
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

    def subset(self, *, studies=None, exclude_studies=(), arms_where=None) -> Evidence:
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
            tables[name] = df[_of_arms(df, set(zip(kept["study"], kept["arm"])))].reset_index(drop=True)
        return Evidence(self.path, f"{self.data_hash}+subset-{_hash_tables(tables)[:8]}", tables, self.arms_given,
                        self.n_from_outcomes)

    def without_secondary(self) -> Evidence:
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
            # an arm whose given n is secondary leaves, with its rows (its outcome counts were read against it)
            for group in _needed_columns(name) + ([("n",)] if name == "arms" else []):  # blanked here (not blank already, as a derived arm's n can be)
                usable &= df[list(group)].notna().any(axis=1).to_numpy() | before[list(group)].isna().all(axis=1).to_numpy()
            tables[name] = df[usable]
        tables["patients"] = tables["patients"][tables["patients"].get("grade", "primary") != "secondary"]
        arms = set(zip(tables["arms"]["study"], tables["arms"]["arm"]))
        for name in TABLES[1:]:
            tables[name] = tables[name][_of_arms(tables[name], arms)]
        return Evidence(self.path, f"{self.data_hash}-secondary-{_hash_tables(tables)[:8]}", tables,
                        self.arms_given, self.n_from_outcomes)


def _of_arms(df: pd.DataFrame, arms: set[tuple]) -> np.ndarray:
    """Which rows of `df` are about kept arms only (shared_patients: both `arm` and `other_arm`)."""
    keep = np.array([key in arms for key in zip(df["study"], df["arm"])], dtype=bool)
    if "other_arm" in df:
        keep &= np.array([key in arms for key in zip(df["study"], df["other_arm"])], dtype=bool)
    return keep


def _to_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.astype(object).where(df.notna(), "")
    return out.map(lambda v: "true" if v is True else "false" if v is False else str(v))


def load_evidence(path: str | Path = "data") -> Evidence:
    """Read and validate the evidence tables in `path` (a folder of CSV files).

    `arms.csv` is optional (a plain effect-size table): arms are then the study/arm pairs
    found, all MSC arms. An arm's missing `n` comes from the outcome tables' counts
    (`_fill_arm_sizes`). What is read, and how, is in the docstring of :mod:`msc_bayes.evidence`.
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
    arms_given = "arms" in frames
    if not arms_given:
        tables["arms"] = _arms_from_outcomes(tables)
    # Row-level checks run on every row whose values all parsed (a cell that failed to
    # parse is already reported; checks on its blank would only repeat it).
    unparsed = {(p.file, p.row) for p in problems}
    row_problems: list[Problem] = []
    blank_n = _blank_n(frames["arms"]) if arms_given else np.ones(len(tables["arms"]), dtype=bool)
    filled = _fill_arm_sizes(tables, blank_n, label, lines, row_problems, arms_given)
    _check_rows(tables, label, broken, row_problems, arms_given=arms_given, n_from_outcomes=filled)
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
    return Evidence(path, data_hash, tables, arms_given, frozenset(filled) if arms_given else frozenset())


def _blank_n(arms_text: pd.DataFrame) -> np.ndarray:
    """Which arms.csv rows leave n blank (or have no n column): their n comes from the outcome tables."""
    if "n" not in arms_text:
        return np.ones(len(arms_text), dtype=bool)
    return np.array([str(v).strip() in MISSING for v in arms_text["n"]], dtype=bool)


def _fill_arm_sizes(tables: dict[str, pd.DataFrame], blank: np.ndarray, label, lines, problems: list[Problem],
                    arms_given: bool) -> set[tuple]:
    """Set each arm's blank n (`blank`, per arms row) to the patient count (PATIENT_COUNTS) that every
    outcome row of the arm giving one agrees on; returns those arms. Rows that disagree: a problem on the
    arms.csv row naming them (`arms_given`), else n stays missing; an arm no row counts keeps n missing."""
    counts: dict[tuple, dict[int, list[tuple[str, int]]]] = collections.defaultdict(dict)
    for name, column in PATIENT_COUNTS.items():
        df = tables[name]
        for i, (s, a, v) in enumerate(zip(df["study"], df["arm"], df[column]), 1):
            if pd.notna(v):
                counts[s, a].setdefault(int(v), []).append((name, i))
    arms = tables["arms"]
    n = arms["n"].astype("Int64").copy()
    filled = set()
    for i, (s, a) in enumerate(zip(arms["study"], arms["arm"])):
        if not blank[i] or (s, a) not in counts:
            continue
        by_value = counts[s, a]
        if len(by_value) == 1:
            n.iloc[i] = next(iter(by_value))
            filled.add((s, a))
        elif arms_given:
            rows = "; ".join(f"{v} in " + ", ".join(f"{_where(label(name), row, lines)} ({PATIENT_COUNTS[name]})"
                                                    for name, row in at[:3])
                             + (f" and {len(at) - 3} more rows" if len(at) > 3 else "")
                             for v, at in sorted(by_value.items()))
            problems.append(Problem(label("arms"), i + 1, "n", "", "one n for the arm, and its outcome rows count "
                                    f"different patients: {rows}: give n in arms.csv"))
    arms["n"] = n
    return filled


def _where(file: str, row: int, lines) -> str:
    """'edss.csv line 4' (a row read from a file) or 'edss.csv row 3' (a table built in memory)."""
    known = (lines or {}).get(file)
    return f"{Path(file).name} line {known[row - 1]}" if known else f"{Path(file).name} row {row}"


def _hash_tables(tables: dict[str, pd.DataFrame]) -> str:
    return hashlib.sha256(
        b"".join(pd.util.hash_pandas_object(t, index=False).to_numpy().tobytes() for t in tables.values())
    ).hexdigest()


def _arms_from_outcomes(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [t[["study", "arm"]] for n, t in tables.items() if n != "arms" and n not in DESIGN_TABLES and len(t)]
    keys = pd.concat(parts).dropna().drop_duplicates() if parts else pd.DataFrame(columns=["study", "arm"])
    arms = pd.DataFrame({c: pd.Series([None] * len(keys), dtype=_dtype(col)) for c, col in SCHEMAS["arms"].items()})
    arms["study"], arms["arm"] = keys["study"].to_numpy(), keys["arm"].to_numpy()
    arms["group"] = "msc"  # a plain effect-size table: every arm is the treated arm
    arms["n"] = arms["n"].astype("Int64")  # from the outcome tables' counts: _fill_arm_sizes
    return arms
