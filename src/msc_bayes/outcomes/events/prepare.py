"""Which rows the adverse-event / MRI-activity model uses (pure; no PyMC).

Selection (spec ``[options]``), in this order:

1. ``exclude_secondary``: values a row marks as secondary are blanked
   (:meth:`Evidence.without_secondary`); a row left with neither ``patients_with_event``
   nor ``events`` is not reported and is left out with a note.
2. ``events``: the event types to keep ([] = all). A requested event type that the table
   does not contain is an error (most likely a typo), with a "did you mean".
3. ``attribution``: "any" / "related" keep rows with that attribution; "all" keeps every
   row. Should one (study, arm, event, timepoint) have both an "any" and a "related"
   row, the "any" row (the superset) is used, with a note, so patients count once.
4. ``serious_only``: rows with ``serious`` true (MRI rows have no ``serious`` column).
5. ``timepoint`` per (study, arm, event): "last" / "first" of the known
   ``timepoint_months``, or "all" (each its own unit; a sensitivity analysis). A row
   without a timepoint is the single timepoint of its group (if a group mixes rows with
   and without timepoints, the undated rows are left out, with a note).
6. ``exclude_overlapping``: :func:`~msc_bayes.evidence.selection.count_once` applied per event
   type, on the arms that have a row of that event type: each patient counts once per
   event type (an outranked cohort still contributes event types that the preferred
   cohort does not report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem, SpecError, did_you_mean
from msc_bayes.evidence import Evidence
from msc_bayes.evidence.selection import count_once
from msc_bayes.outcomes.covariates import Design, design

#: Outcome -> evidence table.
TABLES = {"adverse_events": "adverse_events", "mri_activity": "mri"}


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs, as plain arrays: inspectable and testable without PyMC.

    ``units`` has one row per modelled unit: the table's columns (``n`` = ``n_at_risk``),
    the arm's columns from arms.csv (its ``n`` as ``n_arm``), ``label``
    ("study:arm:event", plus "@<t>mo" when an arm-event keeps several timepoints),
    ``study_event`` ("study:event"), ``likelihood`` ("binomial" | "poisson") and
    ``administrations_total`` (administrations received by the arm's n_at_risk patients:
    ``exposure`` when its unit is administrations, else n_at_risk x arms.csv
    ``administrations``; NaN when unknown).
    """

    units: pd.DataFrame
    design: Design
    notes: tuple[str, ...]
    table: str = "adverse_events"
    events: tuple[str, ...] = field(default=())

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))

    @property
    def study_events(self) -> list[str]:
        return list(dict.fromkeys(self.units["study_event"]))

    @property
    def administrations_reference(self) -> float | None:
        """Administrations per patient of a 'typical' new study: the median over the MSC
        units that report it (None when no MSC unit does)."""
        u = self.units
        per_patient = (u["administrations_total"] / u["n"])[(u["group"].fillna("msc") == "msc").to_numpy()]
        per_patient = per_patient.dropna()
        return float(per_patient.median()) if len(per_patient) else None


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """The column `name` of `df`, or NaN throughout when the table has none (mri.csv has no event counts)."""
    return df[name] if name in df.columns else pd.Series(np.nan, index=df.index, dtype=float)


def _no_rows(file: str, what: str, expected: str) -> EvidenceError:
    return EvidenceError([Problem(file, None, None, what, expected)])


def _table_file(evidence: Evidence, table: str) -> str:
    """The file of `table` as evidence errors name it: its path, or the bare name for tables built in memory."""
    folder = Path(evidence.path)
    return str(folder / f"{table}.csv") if folder.is_dir() else f"{table}.csv"


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select the units of the adverse-event / MRI-activity model (pure; no PyMC)."""
    opts = spec.options
    table = TABLES[spec.outcome]
    file = _table_file(evidence, table)
    notes: list[str] = []
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    rows = evidence.table(table).reset_index(drop=True)
    if rows.empty:
        raise _no_rows(file, "no rows (a header only, or no file)",
                       f"at least one row of {table}.csv: the {spec.outcome} model has no data without it")

    # 1. rows that report nothing (only possible once secondary values are blanked)
    pwe, cnt = column(rows, "patients_with_event"), column(rows, "events")
    silent = pwe.isna().to_numpy() & cnt.isna().to_numpy()
    for r in rows[silent].itertuples(index=False):
        notes.append(f"{r.study}:{r.arm}:{r.event} left out: no count left once secondary values are excluded")
    rows = rows[~silent]

    # 2. event types
    known = list(dict.fromkeys(evidence.table(table)["event"]))
    wanted = list(opts["events"])
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise SpecError([Problem(spec.path or "<spec>", None, "options.events", e,  # the spec asks for it
                                 f"an event type found in {file}: one of {known}" + did_you_mean(e, known))
                         for e in unknown])
    if wanted:
        rows = rows[rows["event"].isin(wanted)]
    filters = ["exclude_secondary=true"] if silent.any() else []
    filters.append(f"events={wanted or 'all'}")

    # 3. attribution
    attribution = opts["attribution"]
    if attribution != "all":
        rows = rows[(column(rows, "attribution") == attribution).fillna(False).to_numpy(dtype=bool)]
        filters.append(f"attribution={attribution!r}")
    # 4. serious events only
    if opts["serious_only"]:
        rows = rows[column(rows, "serious").astype("boolean").fillna(False).to_numpy(dtype=bool)]
        filters.append("serious_only=true")
    if rows.empty:
        raise _no_rows(file, "no rows match " + ", ".join(filters),
                       f"at least one row of {table}.csv with a count (patients_with_event or events) matching the "
                       f"spec's options; event types in {table}.csv: {known}")

    # 3b. both "any" and "related" for the same arm, event and time: keep "any"
    rows = _any_over_related(rows, attribution, notes)

    # 5. timepoints per (study, arm, event)
    if opts["timepoint"] != "all":
        rows = _one_timepoint(rows, opts["timepoint"], notes)

    # 6. overlapping cohorts, per event type
    arms = evidence.arms
    rows = _count_once_per_event(rows, arms, opts["exclude_overlapping"], notes)

    units = _units(rows, arms)
    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise _no_rows(file, "no usable rows",
                       "at least one row whose arm has every covariate of the spec: " + (", ".join(spec.covariates)))
    _usage_notes(units, notes)
    events = tuple(dict.fromkeys(units["event"]))
    return Prepared(units, d, tuple(notes) + d.notes, table, events)


def _any_over_related(rows: pd.DataFrame, attribution: str, notes: list[str]) -> pd.DataFrame:
    """Rows of one (study, arm, event, time) with both "any" and "related": the "related" row left out."""
    t = rows["timepoint_months"]
    key = pd.DataFrame({"study": rows["study"], "arm": rows["arm"], "event": rows["event"],
                        "t": t.fillna(-1.0)}, index=rows.index)
    if "attribution" in rows.columns and attribution == "all":
        dup = key.duplicated(keep=False)
        drop = dup & (rows["attribution"] == "related").fillna(False).to_numpy(dtype=bool)
        for r in rows[drop].itertuples(index=False):
            notes.append(f"{r.study}:{r.arm}:{r.event} 'related' row left out: the 'any' row of the same patients is used")
        rows = rows[~drop]
    return rows


def _one_timepoint(rows: pd.DataFrame, timepoint: str, notes: list[str]) -> pd.DataFrame:
    """The "last" / "first" known timepoint per (study, arm, event); an undated row is the single
    timepoint of its group (left out, with a note, beside dated rows)."""
    g = rows.groupby([rows["study"], rows["arm"], rows["event"]], sort=False)["timepoint_months"]
    pick = g.transform("max" if timepoint == "last" else "min")
    dated = pick.notna()
    undated_in_dated = dated & rows["timepoint_months"].isna()
    for r in rows[undated_in_dated].itertuples(index=False):
        notes.append(f"{r.study}:{r.arm}:{r.event} row without a timepoint left out: the arm has dated rows")
    keep = (~dated) | (rows["timepoint_months"] == pick)
    return rows[keep.to_numpy(dtype=bool)]


def _count_once_per_event(rows: pd.DataFrame, arms: pd.DataFrame, exclude_overlapping: bool,
                          notes: list[str]) -> pd.DataFrame:
    """`count_once` per event type, on the arms with a row of that event type."""
    arm_keys = list(zip(arms["study"], arms["arm"]))
    keep = np.zeros(len(rows), dtype=bool)
    row_keys = list(zip(rows["study"], rows["arm"]))
    for event in dict.fromkeys(rows["event"]):
        of_event = (rows["event"] == event).to_numpy()
        with_rows = {k for k, e in zip(row_keys, of_event) if e}
        has = pd.Series([k in with_rows for k in arm_keys], index=arms.index)
        if exclude_overlapping:
            used, event_notes = count_once(arms, has)
            notes += [f"{n} (event {event})" for n in event_notes]
        else:
            used = arms[has.to_numpy()]
        used_keys = set(zip(used["study"], used["arm"]))
        keep |= of_event & np.array([k in used_keys for k in row_keys], dtype=bool)
    return rows[keep]


def _units(rows: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The selected rows with their arm's characteristics, in arms.csv order, labelled, with their
    likelihood and the administrations their patients received."""
    arm_keys = list(zip(arms["study"], arms["arm"]))
    arm_cols = [c for c in arms.columns if c in ("study", "arm") or (c not in rows.columns and c != "label")]
    units = rows.merge(arms[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    units["n"] = units["n_at_risk"].astype(float)
    if "events" not in units.columns:  # mri.csv has no event counts
        units["events"] = pd.Series(np.nan, index=units.index, dtype=float)
    order = {k: i for i, k in enumerate(arm_keys)}
    event_order = {e: i for i, e in enumerate(dict.fromkeys(units["event"]))}
    units = units.assign(_o=[order[k] for k in zip(units["study"], units["arm"])],
                         _e=[event_order[e] for e in units["event"]])
    units = units.sort_values(["_o", "_e", "timepoint_months"], kind="stable").drop(columns=["_o", "_e"])
    units = units.reset_index(drop=True)
    many = units.duplicated(["study", "arm", "event"], keep=False)
    units["label"] = [f"{s}:{a}:{e}" + (f"@{t:.3g}mo" if m else "") for s, a, e, t, m in
                      zip(units["study"], units["arm"], units["event"], units["timepoint_months"], many)]
    units["study_event"] = [f"{s}:{e}" for s, e in zip(units["study"], units["event"])]
    units["likelihood"] = np.where(units["patients_with_event"].notna(), "binomial", "poisson")
    exposure = pd.to_numeric(column(units, "exposure"), errors="coerce").astype(float)
    by_admin = (column(units, "exposure_unit") == "administrations").fillna(False).to_numpy(dtype=bool)
    per_arm = units["n"] * pd.to_numeric(units["administrations"], errors="coerce").astype(float)
    units["administrations_total"] = np.where(by_admin, exposure, per_arm)
    return units


def _usage_notes(units: pd.DataFrame, notes: list[str]) -> None:
    """Notes on counts not used twice and on arms without administrations."""
    for r in units[units["patients_with_event"].notna() & column(units, "events").notna()].itertuples(index=False):
        notes.append(f"{r.label}: patients_with_event used; its event count ({r.events}) is not counted again")
    msc = (units["group"].fillna("msc") == "msc").to_numpy()
    unknown_admin = list(units["label"][msc & units["administrations_total"].isna().to_numpy()])
    if not (msc & units["administrations_total"].notna().to_numpy()).any():
        notes.append("rate_per_administration omitted: no MSC arm modelled reports its administrations")
    elif unknown_admin:
        notes.append("rate_per_administration not available for " + ", ".join(unknown_admin)
                     + " (administrations not reported)")
