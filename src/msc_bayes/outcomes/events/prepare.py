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
   ``statements``: "explicit" keeps the rows whose ``wording`` is "count" or "none" (a row
   without a wording, as in a user's table or mri.csv, counts as explicit) and leaves out the
   vague statements, with a note; "all" keeps every row. Should one (study, arm, event,
   attribution, timepoint) have statements of several periods (``timing``), a "whole" row
   is used over "acute"/"delayed" ones; acute and delayed rows without a whole row that all
   count none combine into one (none in either period, exact); with events, how many patients
   had one in either period is not reported, so each period becomes an event type of its own
   ("serious_ae (acute)"), with a note.
5. ``timepoint`` per (study, arm, event): "last" / "first" of the known
   ``timepoint_months``, or "all" (each its own unit; a sensitivity analysis). A row
   without a timepoint is the single timepoint of its group (if a group mixes rows with
   and without timepoints, the undated rows are left out, with a note).
6. ``exclude_overlapping``: :func:`~msc_bayes.evidence.selection.count_once` applied per event
   type, on the arms that have a row of that event type: each patient counts once per
   event type (an outranked cohort still contributes event types that the preferred
   cohort does not report).
7. Periods versus patients (crossover arms, ``evidence.shared_patients``): an arm to which
   m patients contribute two periods (a row with ``other_arm == arm``) enters a binomial
   unit with n = n_at_risk - m patients (each patient once; the event is "an event in
   either period"; the reported count, of patients or of periods, is capped at that n, with
   a note). n_at_risk - m is the fewest distinct patients the arm's periods can hold, so a
   zero count is not made stronger than it is; m is taken at most n_at_risk // 2. A patient
   in two arms (e.g. MSC and sham periods) counts in each arm, under that arm's treatment:
   the arms are different exposures, and the study effect is shared. A unit reporting only
   an event count keeps its n_at_risk periods (the exposure of a Poisson count).
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

    ``units`` has one row per modelled unit: the table's columns (``wording`` and ``timing``
    blank where the table has none), the arm's columns from arms.csv (its ``n`` as
    ``n_arm``), ``n`` (the binomial's n: ``n_at_risk`` less ``patients_two_periods``, the
    arm's patients counted twice in its periods, see step 7; ``n_periods`` = ``n_at_risk``),
    ``label`` ("study:arm:event", plus "@<t>mo" when an arm-event keeps several timepoints),
    ``study_event`` ("study:event"), ``likelihood`` ("binomial" | "poisson") and
    ``administrations_total`` (administrations received in the arm's n_at_risk periods:
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
    rows = event_types(rows, spec, file, known)
    filters = ["exclude_secondary=true"] if silent.any() else []
    filters.append(f"events={list(opts['events']) or 'all'}")

    # 3. attribution, 4. serious events only
    rows = attributed_and_serious(rows, opts)
    attribution = opts["attribution"]
    if attribution != "all":
        filters.append(f"attribution={attribution!r}")
    if opts["serious_only"]:
        filters.append("serious_only=true")
    if opts["statements"] == "explicit":
        rows = _explicit(rows, notes)
        filters.append("statements='explicit'")
    if rows.empty:
        raise _no_rows(file, "no rows match " + ", ".join(filters),
                       f"at least one row of {table}.csv with a count (patients_with_event or events) matching the "
                       f"spec's options; event types in {table}.csv: {known}")

    # 3b. statements of several periods of one arm and event: one row; "any" over "related"
    rows = _one_timing(rows, notes)
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
    units = patients_not_periods(units, evidence.shared_patients, notes)
    _usage_notes(units, notes)
    events = tuple(dict.fromkeys(units["event"]))
    return Prepared(units, d, tuple(notes) + d.notes, table, events)


def event_types(rows: pd.DataFrame, spec, file: str, known: list[str]) -> pd.DataFrame:
    """The rows of the spec's ``events`` ([] = all); an event type not among `known` (the table's) is a
    SpecError with a did-you-mean (most likely a typo)."""
    wanted = list(spec.options["events"])
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise SpecError([Problem(spec.path or "<spec>", None, "options.events", e,  # the spec asks for it
                                 f"an event type found in {file}: one of {known}" + did_you_mean(e, known))
                         for e in unknown])
    return rows[rows["event"].isin(wanted)] if wanted else rows


def attributed_and_serious(rows: pd.DataFrame, opts) -> pd.DataFrame:
    """The rows of the spec's ``attribution`` ("all": every row) and, with ``serious_only``, the serious ones."""
    if opts["attribution"] != "all":
        rows = rows[(column(rows, "attribution") == opts["attribution"]).fillna(False).to_numpy(dtype=bool)]
    if opts["serious_only"]:
        rows = rows[column(rows, "serious").astype("boolean").fillna(False).to_numpy(dtype=bool)]
    return rows


def labelled_units(rows: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The selected rows with their arm's columns from arms.csv (its ``n`` as ``n_arm``), in arms.csv order and
    then event order, ``n`` = ``n_at_risk``, labelled "study:arm:event" ("@<t>mo" when an arm-event keeps several
    timepoints) with their ``study_event``; columns a table lacks (mri.csv: no wording) are blank."""
    arm_cols = [c for c in arms.columns if c in ("study", "arm") or (c not in rows.columns and c != "label")]
    units = rows.merge(arms[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    units["n"] = units["n_at_risk"].astype(float)
    for absent, dtype in (("events", float), ("patients_with_event", float), ("wording", object), ("timing", object)):
        if absent not in units.columns:
            units[absent] = pd.Series(np.nan, index=units.index, dtype=dtype)
    order = {k: i for i, k in enumerate(zip(arms["study"], arms["arm"]))}
    event_order = {e: i for i, e in enumerate(dict.fromkeys(units["event"]))}
    units = units.assign(_o=[order.get(k, len(order)) for k in zip(units["study"], units["arm"])],
                         _e=[event_order[e] for e in units["event"]])
    units = units.sort_values(["_o", "_e", "timepoint_months"], kind="stable").drop(columns=["_o", "_e"])
    units = units.reset_index(drop=True)
    many = units.duplicated(["study", "arm", "event"], keep=False)
    units["label"] = [f"{s}:{a}:{e}" + (f"@{t:.3g}mo" if m else "") for s, a, e, t, m in
                      zip(units["study"], units["arm"], units["event"], units["timepoint_months"], many)]
    units["study_event"] = [f"{s}:{e}" for s, e in zip(units["study"], units["event"])]
    return units


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
    """The selected rows as labelled units (`labelled_units`), with their likelihood and the administrations
    their patients received."""
    units = labelled_units(rows, arms)
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


#: Wordings of an explicit statement: a count, or "none" of a named event class.
EXPLICIT_WORDINGS = ("count", "none")


def _explicit(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The rows worded as a count or as "none" (a row without a wording counts as explicit)."""
    wording = column(rows, "wording")
    vague = (wording.notna() & ~wording.isin(EXPLICIT_WORDINGS)).to_numpy(dtype=bool)
    if vague.any():
        left = [f"{r.study}:{r.arm}:{r.event}" for r in rows[vague].itertuples(index=False)]
        notes.append("statements='explicit': vague statements left out: " + ", ".join(left))
    return rows[~vague]


#: Which wording a combination of statements keeps: the least explicit.
_WORDING_ORDER = ("vague", "none", "count")


def _one_timing(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """One row per (study, arm, event, attribution, timepoint): "whole" over "acute"/"delayed";
    acute and delayed combined (see the module's step 4)."""
    if "timing" not in rows.columns or len(rows) < 2:
        return rows
    rows = rows.reset_index(drop=True)
    key = pd.DataFrame({"s": rows["study"], "a": rows["arm"], "e": rows["event"],
                        "at": column(rows, "attribution").fillna(""), "t": rows["timepoint_months"].fillna(-1.0)})
    drop = np.zeros(len(rows), dtype=bool)
    for idx in key.groupby(list(key.columns), sort=False).indices.values():
        if len(idx) < 2:
            continue
        group = rows.iloc[idx]
        r = group.iloc[0]
        what = f"{r.study}:{r.arm}:{r.event}"
        whole = idx[(group["timing"] == "whole").to_numpy(dtype=bool)]
        if len(whole):
            drop[idx] = True
            drop[whole[0]] = False
            notes.append(f"{what}: the 'whole' follow-up statement used over the statements of its periods")
            continue
        y = pd.to_numeric(group["patients_with_event"], errors="coerce")
        k = pd.to_numeric(column(group, "events"), errors="coerce").fillna(0)
        timings = "+".join(str(t) for t in group["timing"].fillna("?"))
        if not (y.eq(0).all() and k.eq(0).all()):
            # patients with an event in either period lie between the larger count and the sum: not
            # reported, so each period is an event type of its own (as two event types of one arm are)
            for i in idx:
                rows.loc[i, "event"] = f"{rows.loc[i, 'event']} ({rows.loc[i, 'timing'] or 'period not stated'})"
            notes.append(f"{what}: statements of {timings} with events kept as event types of their own "
                         "(how many patients had an event in either period is not reported)")
            continue
        first = idx[0]  # none in every period: none over the whole of them (exact)
        wordings = [w for w in _WORDING_ORDER if w in set(group["wording"].dropna())]
        rows.loc[first, "n_at_risk"] = float(pd.to_numeric(group["n_at_risk"]).max())
        rows.loc[first, "timing"] = timings
        rows.loc[first, "wording"] = wordings[0] if wordings else None
        rows.loc[first, "event_text"] = " / ".join(str(t) for t in column(group, "event_text").dropna())
        drop[idx[1:]] = True
        notes.append(f"{what}: statements of {timings} combined into one unit: no patient with an event in "
                     "any of the periods")
    return rows[~drop]


def patients_not_periods(units: pd.DataFrame, shared: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Each patient once per arm (module step 7): a binomial unit's n becomes n_at_risk less the
    arm's patients with two periods (`shared`: rows with other_arm == arm), its count capped at it."""
    units = units.assign(n_periods=units["n"], patients_two_periods=0.0)
    if shared.empty:
        return units
    same = shared[shared["arm"] == shared["other_arm"]]
    twice = dict(zip(zip(same["study"], same["arm"]), pd.to_numeric(same["patients"]).astype(float)))
    for i, r in units.iterrows():
        m = twice.get((r["study"], r["arm"]), 0.0)
        if not m:
            continue
        n = float(r["n"])
        if r["likelihood"] != "binomial":
            notes.append(f"{r['label']}: an event count over its {n:g} periods (the Poisson exposure); "
                         f"{m:g} patients with two periods not subtracted")
            continue
        used = min(m, float(n // 2))
        note = f"{r['label']}: n_at_risk {n:g} - {used:g} patients with two periods = {n - used:g}"
        if used < m:
            note += f" (only {used:g} of the {m:g} patients with two periods fit in {n:g} periods)"
        y = float(r["patients_with_event"])
        if y > n - used:
            note += f"; patients_with_event {y:g} capped at {n - used:g}"
            units.loc[i, "patients_with_event"] = n - used
        units.loc[i, ["n", "patients_two_periods"]] = [n - used, used]
        notes.append(note)
    return units


def patients_text(units: pd.DataFrame) -> str:
    """The methods' sentence on periods versus patients, with the arms it changed."""
    changed = units[units["patients_two_periods"] > 0] if "patients_two_periods" in units.columns else units[:0]
    which = "; ".join(f"{r.label}: {r.n_periods:g} - {r.patients_two_periods:g} = {r.n:g}"
                      for r in changed.itertuples(index=False)) or "no modelled arm has patients with two periods"
    return ("Arms count patients, not periods: an arm to which m patients contribute two periods (crossover) enters "
            f"with n_at_risk - m patients, an event in either period counting once ({which}), and a patient in two "
            "arms counts in each, under that arm's treatment.")
