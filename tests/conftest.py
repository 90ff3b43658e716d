"""Shared fixtures (a scratch copy of the bundled evidence tables, a CSV cell editor, no idle core for the
expand wrapper's helper) and the order of the files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

#: The files that take longest (pytest --durations=0, 2026-12-02: 139 s and 135 s of the suite's 707 s, then
#: 61, 51, 38, 34 s) start first, so that no worker is left finishing one of them alone at the end
#: (pyproject's ``--dist loadfile --no-loadscope-reorder`` hands files to workers in this order). Only the
#: order of files changes; a file missing here keeps its place after these.
LONGEST_FIRST = ("test_compile_cache.py", "test_readme.py", "test_report.py", "test_fault_injection.py",
                 "test_helper_process.py", "test_notebook.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(autouse=True)
def _no_idle_core(monkeypatch):
    """In this process no core is idle, so a compile on empty caches never hands its expand wrapper to
    a helper (``inference.engine.core_idle``): what a test compiles and counts does not depend on the
    machine's load. The tests of that hand-over set it themselves (tests/test_compile_cache.py)."""
    from msc_bayes.inference import engine

    monkeypatch.setattr(engine, "core_idle", lambda: False)


def read_csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of a CSV file, read with the csv module."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def write_csv_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_evidence(folder: Path, **tables: list[dict] | None):
    """Write small CSV tables (name -> rows as dicts; None: no file) and load them through the validating loader."""
    from msc_bayes.evidence import load_evidence

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if rows is None:
            continue
        header = list(dict.fromkeys(k for r in rows for k in r))
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, header, restval="")
            writer.writeheader()
            writer.writerows(rows)
    return load_evidence(folder)


def edit_csv_cell(path: Path, match: dict[str, str], column: str, value: str, *, occurrence: int = 0) -> int:
    """Set `column` to `value` in the row whose cells equal `match` (e.g. {"study": "petrou2021", "arm": "all"}).

    `occurrence` picks among several matching rows (0 = first). Returns the 1-based data
    row number (header excluded) of the edited row, as `Problem.row` reports it.
    """
    header, rows = read_csv_table(path)
    for key in (*match, column):
        if key not in header:
            raise KeyError(f"{path.name} has no column {key!r}")
    hits = [i for i, r in enumerate(rows) if all(r[header.index(k)] == v for k, v in match.items())]
    if len(hits) <= occurrence:
        raise LookupError(f"no row #{occurrence} matching {match} in {path.name} ({len(hits)} matches)")
    i = hits[occurrence]
    rows[i][header.index(column)] = value
    write_csv_table(path, header, rows)
    return i + 1


@pytest.fixture
def data_dir() -> Path:
    """The bundled (read-only) evidence folder."""
    return DATA


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A scratch copy of data/*.csv that a test may corrupt."""
    folder = tmp_path / "data"
    folder.mkdir()
    for file in sorted(DATA.glob("*.csv")):
        shutil.copy(file, folder / file.name)
    return folder


@pytest.fixture
def edit_cell():
    """`edit_cell(csv_path, {"study": ..., "arm": ..., ...}, column, value) -> 1-based row`."""
    return edit_csv_cell
