"""The evidence base: CSV tables in data/ -> one validated, immutable `Evidence`.

Validation collects every problem in every table and raises one `EvidenceError`
naming file, row, column, value and what was expected. Missing ("not reported") is
NaN/None; a reported zero is 0. Nothing is filled in here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem, did_you_mean

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
    "patients": {
        **_KEYS, "patient": Column("str", required=True), **_TIME,
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
            if "timepoint_weeks" in df and "timepoint_months" in df:
                weeks = pd.to_numeric(df["timepoint_weeks"], errors="coerce")
                months = pd.to_numeric(df["timepoint_months"], errors="coerce")
                derived = np.isclose(months, weeks * 7 / DAYS_PER_MONTH)
                new[name] = df.assign(timepoint_months=df["timepoint_months"].mask(derived))
        frames = {k: _to_text(v) for k, v in new.items()}
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
        """Blank every value that a row marks as coming from a secondary source."""
        tables = {}
        for name, df in self._tables.items():
            df = df.copy()
            if "secondary_fields" in df:
                for i, fields in df["secondary_fields"].items():
                    for col in _split(fields):
                        df.loc[i, col] = None if df[col].dtype == object else np.nan
            tables[name] = df
        tables["patients"] = tables["patients"][tables["patients"].get("grade", "primary") != "secondary"]
        return Evidence(self.path, f"{self.data_hash}-secondary-{_hash_tables(tables)[:8]}", tables)


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
    (a plain effect-size table): arms are then the study/arm pairs found.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise EvidenceError([Problem(str(folder), None, None, str(folder), "a folder of evidence CSV files")])
    frames: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    digest = hashlib.sha256()
    for name in TABLES:
        file = folder / f"{name}.csv"
        if not file.exists():
            continue
        raw = file.read_bytes()
        digest.update(name.encode() + b"\0" + raw)
        try:
            text = raw.decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(Problem(str(file), None, None, type(exc).__name__, f"a UTF-8 CSV file ({exc})"))
            continue
        if not rows:
            problems.append(Problem(str(file), None, None, "", "a header row"))
            continue
        header, body = rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]
        bad = [(i, r) for i, r in enumerate(body, 1) if len(r) != len(header)]
        for i, r in bad:
            problems.append(Problem(str(file), i, None, f"{len(r)} fields", f"{len(header)} fields as in the header"))
        if bad:
            continue
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            problems.append(Problem(str(file), None, ", ".join(dup), "repeated column", "unique column names"))
            continue
        frames[name] = pd.DataFrame(body, columns=header, dtype=object)
    if not any(n in frames for n in TABLES[1:]) and "arms" not in frames:
        problems.append(Problem(str(folder), None, None, "no tables", "at least one of " + ", ".join(f"{t}.csv" for t in TABLES)))
    if problems:  # still report the cell-level problems of the tables that could be read
        for name, df in frames.items():
            _parse(df, SCHEMAS[name], _file_label(str(folder), name), problems, open_columns=name == "arms")
        raise EvidenceError(problems)
    return _build(frames, str(folder), digest.hexdigest()[:16])


def _build(frames: dict[str, pd.DataFrame], path: str, data_hash: str | None = None) -> Evidence:
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        file = _file_label(path, name)
        if name in frames:
            tables[name] = _parse(frames[name], SCHEMAS[name], file, problems, open_columns=name == "arms")
        else:
            tables[name] = pd.DataFrame({c: pd.Series(dtype=_dtype(col)) for c, col in SCHEMAS[name].items()})
    if "arms" not in frames:
        tables["arms"] = _arms_from_outcomes(tables, problems)
    # Row-level checks run on every row whose values all parsed (a cell that failed to
    # parse is already reported; checks on its blank would only repeat it).
    unparsed = {(p.file, p.row) for p in problems}
    row_problems: list[Problem] = []
    _check_rows(tables, path, row_problems)
    problems += [p for p in row_problems if (p.file, p.row) not in unparsed]
    if problems:
        raise EvidenceError(problems)
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


def _file_label(path: str, name: str) -> str:
    """The file named in a problem: just 'edss.csv' for tables modified in memory (`with_tables`)."""
    return f"{name}.csv" if path.endswith(" (modified)") else f"{Path(path) / name}.csv"


def _dtype(col: Column) -> str:
    return {"float": "float64", "int": "Int64", "bool": "boolean"}.get(col.kind, "object")


def _parse(df: pd.DataFrame, schema: dict[str, Column], file: str, problems: list[Problem], open_columns: bool):
    for name, col in schema.items():
        if col.required and name not in df.columns:
            problems.append(Problem(file, None, name, "(column absent)", f"a column '{name}'"))
    out = {}
    for name in df.columns:
        col = schema.get(name)
        if col is None:
            if open_columns:  # any further arms.csv column is a candidate covariate
                out[name] = _parse_open(df[name])
                continue
            problems.append(Problem(file, None, name, "(unknown column)", "a known column" + did_you_mean(name, schema)))
            continue
        values = []
        for i, raw in enumerate(df[name], 1):
            text = str(raw).strip()
            if text in MISSING:
                if col.required:
                    problems.append(Problem(file, i, name, raw, "a value (this column is required)"))
                values.append(None)
                continue
            value, ok = _convert(text, col)
            if not ok:
                hint = did_you_mean(text, col.choices) if col.kind == "cat" else ""
                problems.append(Problem(file, i, name, raw, col.expected() + hint))
            values.append(value if ok else None)
        out[name] = pd.Series(values, dtype=_dtype(col)) if col.kind != "float" else pd.Series(
            [np.nan if v is None else v for v in values], dtype="float64")
    for name, col in schema.items():
        if name not in out:
            out[name] = pd.Series([None] * len(df), dtype=_dtype(col)) if col.kind != "float" else pd.Series(
                np.full(len(df), np.nan))
    return pd.DataFrame(out)


def _convert(text: str, col: Column):
    if col.kind == "str":
        return text, True
    if col.kind == "cat":
        return text, text in col.choices
    if col.kind == "bool":
        low = text.lower()
        return (low in ("true", "yes", "1")), low in ("true", "yes", "1", "false", "no", "0")
    try:
        number = float(text)
    except ValueError:
        return None, False
    if not math.isfinite(number):
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


def _parse_open(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.strip()
    missing = text.isin(MISSING)
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    if numbers[~missing].notna().all():
        return numbers.astype("float64")
    return text.where(~missing, None).astype(object)


def _arms_from_outcomes(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> pd.DataFrame:
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


def _check_rows(tables: dict[str, pd.DataFrame], path: str, problems: list[Problem]) -> None:
    def file(name: str) -> str:
        return _file_label(path, name)

    arms = tables["arms"]
    known = {(s, a) for s, a in zip(arms["study"], arms["arm"]) if pd.notna(s) and pd.notna(a)}
    for name, df in tables.items():
        if not len(df):
            continue
        if name != "arms":
            for i, (s, a) in enumerate(zip(df["study"], df["arm"]), 1):
                if (s, a) not in known:
                    arms_of_s = sorted(x for (st, x) in known if st == s)
                    hint = did_you_mean(a, arms_of_s) if arms_of_s else did_you_mean(s, sorted({st for st, _ in known}))
                    problems.append(Problem(file(name), i, "study/arm", f"{s}/{a}", "a study/arm listed in arms.csv" + hint))
        if "timepoint_months" in df and name != "arms":
            both = df["timepoint_months"].notna() & df["timepoint_weeks"].notna()
            for i in np.flatnonzero(both.to_numpy()):
                problems.append(Problem(file(name), i + 1, "timepoint_weeks", df["timepoint_weeks"].iloc[i],
                                        "either timepoint_months or timepoint_weeks, not both"))
            if name in ("edss", "patients", "mri"):
                neither = df["timepoint_months"].isna() & df["timepoint_weeks"].isna()
                for i in np.flatnonzero(neither.to_numpy()):
                    problems.append(Problem(file(name), i + 1, "timepoint_months", "", "a timepoint (months or weeks)"))
        keys = [k if k != "timepoint_months" else "_t" for k in ROW_KEYS[name]]
        keyed = df.assign(_t=df["timepoint_months"].fillna(df["timepoint_weeks"] * 7 / DAYS_PER_MONTH)) if "timepoint_weeks" in df else df
        dup = keyed.astype(object).where(keyed.notna(), None).duplicated(subset=keys, keep="first")
        for i in np.flatnonzero(dup.to_numpy()):
            problems.append(Problem(file(name), i + 1, ",".join(ROW_KEYS[name]), tuple(keyed[k].iloc[i] for k in keys),
                                    "a unique row (the same key appears earlier)"))
        if "secondary_fields" in df:
            for i, fields in enumerate(df["secondary_fields"], 1):
                for col in _split(fields):
                    if col not in df.columns:
                        problems.append(Problem(file(name), i, "secondary_fields", col,
                                                "a column of this table" + did_you_mean(col, df.columns)))
    _check_arms(arms, file("arms"), problems)
    _check_edss(tables["edss"], file("edss"), problems)
    _check_patients(tables["patients"], file("patients"), problems)
    for name in ("adverse_events", "mri"):
        _check_events(tables[name], file(name), problems)


def _check_arms(arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(arms.itertuples(index=False), 1):
        lo, hi = row.courses_min, row.courses_max
        if pd.notna(lo) and pd.notna(hi) and lo > hi:
            problems.append(Problem(file, i, "courses_max", hi, f"at least courses_min ({lo})"))
        if pd.notna(row.courses) and (pd.notna(lo) or pd.notna(hi)):
            problems.append(Problem(file, i, "courses", row.courses, "either courses or courses_min/courses_max"))
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
            if pd.notna(v) and abs(v / EDSS_STEP - round(v / EDSS_STEP)) > 1e-9:
                problems.append(Problem(file, i, col, v, f"a multiple of {EDSS_STEP} (EDSS steps)"))
        if pd.notna(row.change) and pd.notna(row.timepoint_months) and row.timepoint_months == 0:
            problems.append(Problem(file, i, "timepoint_months", 0, "a follow-up time > 0 for a change from baseline"))


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
