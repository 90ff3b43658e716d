"""Which rows the event-rate model uses (pure; no PyMC).

A unit is one (study, arm, event) row of ``adverse_events.csv`` (or ``mri.csv``: option ``table``) with an
event count over a stated exposure. Selection, in this order (the shared steps are the event outcomes' own,
:mod:`msc_bayes.outcomes.events.prepare`):

1. ``exclude_secondary``: values a row marks as secondary are blanked first.
2. ``events``, ``attribution``, ``serious_only``, ``statements``: as in the event outcomes; one
   (study, arm, event, timepoint) with an "any" and a "related" row keeps the "any" row. Statements of
   several periods (``timing``) of one arm and event: a "whole" row over the others; without one, each
   period is an event type of its own ("serious_ae (acute)"), since its exposure is that period's.
3. The exposure (step 4) first, then the count: ``events`` when given. A row without ``events`` and ``patients_with_event`` 0 counts 0 events
   exactly (no patient had one); with ``patients_with_event`` > 0 its event count is not reported (a
   patient may have had several): left out, with a note; a row with neither is not reported.
4. The exposure: ``exposure`` in ``exposure_unit``. Person-time (person_years / _months / _days) is converted
   to person-years by :data:`msc_bayes.evidence.schema.PERSON_YEARS_PER_UNIT`; administrations are another
   scale, used only with option ``exposure = "administrations"`` (rows of the other kind are left out, with a
   note). A row without an exposure is left out with a note: person-time is never made up as n × follow-up
   (a table may give it as ``exposure`` when its source states it, saying how in ``derived``). Crossover
   periods: the exposure is the periods' person-time, as reported (patients are not what a rate counts).
5. ``timepoint`` ("last" / "first" / "all") per (study, arm, event), then ``exclude_overlapping`` per event
   type (:func:`~msc_bayes.evidence.selection.count_once`), then the arms' covariates (``design``).

A row reporting both patients with an event and events enters here through its events only; the
adverse-event model uses its patients: each count once per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from msc_bayes.evidence import Evidence
from msc_bayes.evidence.schema import PERSON_YEARS_PER_UNIT
from msc_bayes.outcomes.covariates import Design, design
from msc_bayes.outcomes.events.prepare import (
    _any_over_related,
    _count_once_per_event,
    _explicit,
    _no_rows,
    _one_timepoint,
    _table_file,
    attributed_and_serious,
    column,
    event_types,
    labelled_units,
)

#: Option ``exposure`` -> what it counts, as a report says it ("per 100 person-years").
EXPOSURE_WORDS = {"person_time": "person-years", "administrations": "administrations"}
#: Rates are reported per this many units of exposure.
PER = 100.0


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs, as plain arrays: inspectable and testable without PyMC.

    ``units`` has one row per unit: the table's columns, the arm's from arms.csv (its ``n`` as ``n_arm``),
    ``n`` (``n_at_risk``: patients, for the summary's counts), ``event_count`` (the events modelled),
    ``model_exposure`` (person-years, or administrations), ``label`` ("study:arm:event", "@<t>mo" when an
    arm-event keeps several timepoints), ``study_event`` and ``likelihood`` ("poisson").
    """

    units: pd.DataFrame
    design: Design
    notes: tuple[str, ...]
    table: str = "adverse_events"
    exposure: str = "person_time"
    events: tuple[str, ...] = field(default=())

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))

    @property
    def study_events(self) -> list[str]:
        return list(dict.fromkeys(self.units["study_event"]))

    @property
    def exposure_words(self) -> str:
        """What one unit of exposure is: "person-years" or "administrations"."""
        return EXPOSURE_WORDS[self.exposure]


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select the units of the event-rate model (module docstring)."""
    opts = spec.options
    table = opts["table"]
    file = _table_file(evidence, table)
    notes: list[str] = []
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    rows = evidence.table(table).reset_index(drop=True)
    if rows.empty:
        raise _no_rows(file, "no rows (a header only, or no file)",
                       f"at least one row of {table}.csv: the event_rates model has no data without it")
    rows = event_types(rows, spec, file, list(dict.fromkeys(evidence.table(table)["event"])))
    rows = attributed_and_serious(rows, opts)
    if opts["statements"] == "explicit":
        rows = _explicit(rows, notes)
    rows = _any_over_related(rows, opts["attribution"], notes)
    rows = _one_timing(rows, notes)
    rows = _with_exposure(rows, opts["exposure"], notes)
    rows = _with_count(rows, notes)
    if rows.empty:
        raise _no_rows(file, "no row with an event count and its exposure matching the spec's options",
                       f"at least one row of {table}.csv with events (or patients_with_event 0), exposure and "
                       f"exposure_unit ({'administrations' if opts['exposure'] == 'administrations' else 'person_years, person_months or person_days'})")
    if opts["timepoint"] != "all":
        rows = _one_timepoint(rows, opts["timepoint"], notes)
    arms = evidence.arms
    rows = _count_once_per_event(rows, arms, opts["exclude_overlapping"], notes)
    units = _units(rows, arms)
    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise _no_rows(file, "no usable rows",
                       "at least one row whose arm has every covariate of the spec: " + ", ".join(spec.covariates))
    for r in units[units["patients_with_event"].notna() & units["events"].notna()].itertuples(index=False):
        notes.append(f"{r.label}: its {r.events:g} events enter this model; its patients with an event "
                     f"({r.patients_with_event:g}) are the adverse-event risk model's, each counted once per model")
    events = tuple(dict.fromkeys(units["event"]))
    return Prepared(units, d, tuple(notes) + d.notes, table, opts["exposure"], events)


def _one_timing(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """One (study, arm, event, attribution, timepoint) with statements of several periods: the "whole" row;
    without one, each period an event type of its own (its exposure is that period's)."""
    if "timing" not in rows.columns or len(rows) < 2:
        return rows
    rows = rows.reset_index(drop=True)
    key = [rows["study"], rows["arm"], rows["event"], column(rows, "attribution").fillna(""),
           rows["timepoint_months"].fillna(-1.0)]
    drop = np.zeros(len(rows), dtype=bool)
    for idx in rows.groupby(key, sort=False).indices.values():
        if len(idx) < 2:
            continue
        r = rows.iloc[idx[0]]
        whole = idx[(rows["timing"].iloc[idx] == "whole").to_numpy(dtype=bool)]
        if len(whole):
            drop[idx] = True
            drop[whole[0]] = False
            notes.append(f"{r.study}:{r.arm}:{r.event}: the 'whole' follow-up row used over its periods' rows")
            continue
        for i in idx:
            rows.loc[i, "event"] = f"{rows.loc[i, 'event']} ({rows.loc[i, 'timing'] or 'period not stated'})"
        notes.append(f"{r.study}:{r.arm}:{r.event}: each period's events over its own exposure, as event types "
                     "of their own")
    return rows[~drop]


def _with_count(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The modelled count ``event_count`` (module step 3); rows without one left out, with a note."""
    events = pd.to_numeric(column(rows, "events"), errors="coerce").astype(float)
    patients = pd.to_numeric(column(rows, "patients_with_event"), errors="coerce").astype(float)
    count = events.where(events.notna(), np.where(patients == 0, 0.0, np.nan))
    for r, p in zip(rows[count.isna().to_numpy()].itertuples(index=False), patients[count.isna()]):
        why = ("its event count is not reported (patients_with_event " f"{p:g}: a patient may have had several)"
               if np.isfinite(p) else "no count reported")
        notes.append(f"{r.study}:{r.arm}:{r.event} left out: {why}")
    zero = (events.isna() & (patients == 0)).to_numpy()
    if zero.any():
        which = ", ".join(f"{r.study}:{r.arm}:{r.event}" for r in rows[zero].itertuples(index=False))
        notes.append(f"0 events where no patient had one (patients_with_event 0, events not given): {which}")
    return rows.assign(event_count=count)[count.notna().to_numpy()]


def _with_exposure(rows: pd.DataFrame, kind: str, notes: list[str]) -> pd.DataFrame:
    """The exposure in the model's unit, ``model_exposure`` (module step 4); other rows left out, with a note."""
    exposure = pd.to_numeric(column(rows, "exposure"), errors="coerce").astype(float)
    unit = column(rows, "exposure_unit").astype(object)
    if kind == "administrations":
        factor = np.where(unit == "administrations", 1.0, np.nan)
    else:
        factor = np.array([PERSON_YEARS_PER_UNIT.get(u, np.nan) if isinstance(u, str) else np.nan for u in unit])
    model_exposure = exposure.to_numpy() * factor
    keep = np.isfinite(model_exposure)
    for r, e, u in zip(rows[~keep].itertuples(index=False), exposure[~keep], unit[~keep]):
        if not np.isfinite(e):
            why = "no exposure reported (person-time is not taken as n × follow-up)"
        else:
            why = f"its exposure is in {u}, not {'administrations' if kind == 'administrations' else 'person-time'}"
        notes.append(f"{r.study}:{r.arm}:{r.event} left out: {why} (option exposure = {kind!r})")
    return rows.assign(model_exposure=model_exposure)[keep]


def _units(rows: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The selected rows as labelled units (:func:`~msc_bayes.outcomes.events.prepare.labelled_units`), each a
    Poisson count."""
    units = labelled_units(rows, arms)
    units["likelihood"] = "poisson"
    return units
