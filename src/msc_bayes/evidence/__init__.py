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
  ``edss.csv.txt``, ``shared_patient.csv``, ``Shared_patients.csv``) is a problem with a "did you mean". Every other file (``README.md``,
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
  `reading._near_known_column`: equal ignoring case, spaces and '-', or an edit away from a name of
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
  in ``patients.csv``, are at most that arm's ``n`` in ``arms.csv`` (when there is one). An arm
  whose ``n`` is blank (or an arms.csv without the column, or no arms.csv) takes the count every
  outcome row of the arm agrees on (``Evidence.n_from_outcomes`` lists them; a blank cell is never
  filled otherwise): rows that disagree are a problem ("give n in arms.csv"), or, without an arms.csv,
  leave ``n`` missing; an arm no row counts keeps ``n`` missing.
* **Crossover designs.** ``shared_patients.csv`` (optional, like every table) says which arms of
  a study share patients (a patient with a period in each) and which arms hold two periods of a
  patient; arms.csv ``periods_after_msc`` says how many of an arm's periods follow an MSC period
  of the same patient. Its arms and sizes are checked against arms.csv when there is one; it is
  never a source of arms. Schema and rules: :mod:`msc_bayes.evidence.schema`.
* **Adverse-event statements** carry ``timing`` (:data:`AE_TIMINGS`) and ``wording``
  (:data:`AE_WORDINGS`), both optional; ``serious`` may be blank.
* **Event counts and person-time** (``adverse_events.csv``, ``mri.csv``): a row gives
  ``patients_with_event``, ``events`` (every event, a patient's repeats counted) or both; ``exposure``
  and ``exposure_unit`` (:data:`EXPOSURE_UNITS`) go together; person-time converts to person-years by
  :data:`PERSON_YEARS_PER_UNIT`.
* **Effect sizes** (``effect_sizes.csv``): one estimate ``y`` per arm on the user's scale, with ``se``,
  or ``sd`` and ``n``, or ``ci_lower``/``ci_upper`` (``ci_level`` blank: :data:`DEFAULT_CI_LEVEL`).
"""

from msc_bayes.evidence.reading import MAX_CELLS, MAX_FILE_BYTES, NUMBER
from msc_bayes.evidence.schema import (
    AE_TIMINGS,
    AE_WORDINGS,
    ATTRIBUTIONS,
    CELL_ORIGINS,
    CELL_SOURCES,
    COUNT_COLUMNS,
    DAYS_PER_MONTH,
    DEFAULT_CI_LEVEL,
    DESIGN_TABLES,
    DESIGNS,
    DISEASES,
    EDSS_STEP,
    EXPOSURE_UNITS,
    GRADES,
    GROUPS,
    MISSING,
    ONE_OF,
    OUTCOME_VALUES,
    PATIENT_COUNTS,
    PERSON_YEARS_PER_UNIT,
    PROVENANCE,
    REQUIRED_WHEN_PRESENT,
    ROUTES,
    ROW_KEYS,
    SCHEMAS,
    TABLES,
    Column,
)
from msc_bayes.evidence.tables import Evidence, load_evidence

__all__ = [
    "AE_TIMINGS",
    "AE_WORDINGS",
    "ATTRIBUTIONS",
    "CELL_ORIGINS",
    "CELL_SOURCES",
    "COUNT_COLUMNS",
    "DAYS_PER_MONTH",
    "DEFAULT_CI_LEVEL",
    "DESIGNS",
    "DESIGN_TABLES",
    "DISEASES",
    "EDSS_STEP",
    "EXPOSURE_UNITS",
    "GRADES",
    "GROUPS",
    "MAX_CELLS",
    "MAX_FILE_BYTES",
    "MISSING",
    "NUMBER",
    "ONE_OF",
    "OUTCOME_VALUES",
    "PATIENT_COUNTS",
    "PERSON_YEARS_PER_UNIT",
    "PROVENANCE",
    "REQUIRED_WHEN_PRESENT",
    "ROUTES",
    "ROW_KEYS",
    "SCHEMAS",
    "TABLES",
    "Column",
    "Evidence",
    "load_evidence",
]
