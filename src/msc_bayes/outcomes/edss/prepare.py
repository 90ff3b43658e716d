"""Which arms and timepoints the EDSS model uses, and through which reporting formats (pure; no PyMC).

Per arm x timepoint the spec's formats are used in priority order (only the first available,
so the same patients are not counted twice) unless ``combine = "all"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import EDSS_STEP, Evidence
from msc_bayes.evidence.selection import count_once, pick_timepoints
from msc_bayes.outcomes.covariates import Design, design
from msc_bayes.outcomes.edss import shared
from msc_bayes.outcomes.edss.formats import FORMATS
from msc_bayes.outcomes.edss.formats.patient import patient_changes
from msc_bayes.outcomes.edss.shared import SharedGroup


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs, as plain arrays: inspectable and testable without PyMC."""

    units: pd.DataFrame  # one row per modelled unit: study, arm, label, timepoint_months, n, formats, arm columns
    design: Design
    notes: tuple[str, ...]
    #: the units whose arms share patients (:mod:`msc_bayes.outcomes.edss.shared`)
    shared: tuple[SharedGroup, ...] = ()

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))


def _available(row, patients_at: set) -> list[str]:
    return [name for name, f in FORMATS.items() if f.available(row, patients_at)]


def _formats_of(row, allowed: list[str], patients_at: set, primary_patients_at: set):
    """(row, formats, values set aside): primary values first. When a format of `allowed` is available
    from the row's primary values alone, those formats on the row with its secondary outcome values
    blanked; only otherwise the row as it is (a blog's per-patient list is used where nothing primary is)."""
    fields = set(str(getattr(row, "secondary_fields", "") or "").replace(" ", "").split(";"))
    aside = [c for c in sorted(fields & _FORMAT_COLUMNS) if pd.notna(getattr(row, c, None))]
    primary = row._replace(**{c: np.nan for c in aside}) if aside else row
    formats = [f for f in allowed if FORMATS[f].available(primary, primary_patients_at)]
    if formats:
        return primary, formats, aside
    return row, [f for f in allowed if FORMATS[f].available(row, patients_at)], []


#: The edss.csv columns some reporting format reads.
_FORMAT_COLUMNS = frozenset(c for f in FORMATS.values() for c in f.columns)


def _table_file(evidence: Evidence, table: str) -> str:
    """The file of `table` as evidence errors name it: its path, or the bare name for tables built in memory."""
    folder = Path(evidence.path)
    return str(folder / f"{table}.csv") if folder.is_dir() else f"{table}.csv"


def _require_rows(evidence: Evidence, allowed: list[str]) -> None:
    """No rows in any table the spec's formats read (a header only, or no file) is an EvidenceError
    naming the table, not a model without data or a confusing failure later. One empty table beside
    another with rows is not an error: a folder of patient-level data alone has no edss.csv."""
    from_edss = [f for f in allowed if f != "patient"]
    with_patients = "patient" in allowed and not evidence.patients.empty
    if from_edss and evidence.edss.empty and not with_patients:
        raise EvidenceError([Problem(_table_file(evidence, "edss"), None, None, "no rows (a header only, or no file)",
                                     f"at least one row of EDSS data: the spec's formats {', '.join(from_edss)} "
                                     "read edss.csv")])
    if not from_edss and evidence.patients.empty:
        raise EvidenceError([Problem(_table_file(evidence, "patients"), None, None,
                                     "no rows (a header only, or no file)",
                                     "at least one patient's EDSS: options.formats = ['patient'] reads patients.csv only")])


def _none_selected(evidence: Evidence, edss: pd.DataFrame, patients_at: set, opts) -> EvidenceError:
    """The error when no arm reports any format the spec enables (say which formats the data have)."""
    found = {f for row in edss.itertuples(index=False) for f in _available(row, patients_at)}
    found |= {"patient"} if patients_at else set()
    reported = ", ".join(f for f in FORMATS if f in found) or "none"
    secondary = " once secondary values are left out (exclude_secondary = true)" if opts["exclude_secondary"] else ""
    return EvidenceError([Problem(_table_file(evidence, "edss"), None, "formats",
                                  f"no usable EDSS rows: no arm reports a format of options.formats = "
                                  f"{list(opts['formats'])}",
                                  f"at least one arm reporting one of them; the data report: {reported}{secondary}")])


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select units and formats for the EDSS model (pure; no PyMC)."""
    opts = spec.options
    allowed = [f for f in opts["formats"] if f in FORMATS]
    _require_rows(evidence, allowed)
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    edss = evidence.edss
    changes = patient_changes(evidence.patients)
    patients_at = set(zip(changes["study"], changes["arm"], changes["timepoint_months"]))
    patients = evidence.patients
    graded = patients[patients["grade"] == "secondary"] if "grade" in patients else patients.iloc[:0]
    secondary_patients = set(zip(graded["study"], graded["arm"], graded["timepoint_months"]))

    rows, aside_notes = [], {}  # notes on the values set aside, by (study, arm, timepoint)
    for row in edss.itertuples(index=False):
        row, formats, aside = _formats_of(row, allowed, patients_at, patients_at - secondary_patients)
        if formats:
            rows.append({**row._asdict(), "formats": formats})
            if aside:
                aside_notes[(row.study, row.arm, row.timepoint_months)] = (
                    f"{row.study}:{row.arm} at {row.timepoint_months:g} months: secondary {', '.join(aside)} set "
                    "aside (a format from primary values is available)")
    have = {(r["study"], r["arm"], r["timepoint_months"]) for r in rows}
    if "patient" in allowed:  # patient-level data without an edss.csv row (a set lookup: linear in the arms)
        for (s, a, t), n in changes.groupby(["study", "arm", "timepoint_months"]).size().items():
            if (s, a, t) not in have:
                rows.append({"study": s, "arm": a, "timepoint_months": t, "n": int(n), "formats": ["patient"]})
    if not rows:
        raise _none_selected(evidence, edss, patients_at, opts)
    units = pd.DataFrame(rows, columns=list(edss.columns) + ["formats"])

    arms = evidence.arms
    has = arms.set_index(["study", "arm"]).index.isin(list(zip(units["study"], units["arm"])))
    notes: list[str] = []
    if opts["exclude_overlapping"]:
        arms_used, notes = count_once(arms, pd.Series(has, index=arms.index))
    else:
        arms_used = arms[has]
    units = units.merge(arms_used[["study", "arm"]], on=["study", "arm"])
    units = pick_timepoints(units, opts["timepoint"])
    units["formats"] = [f if opts["combine"] == "all" else f[:1] for f in units["formats"]]
    arm_cols = [c for c in arms_used.columns if c not in units.columns or c in ("study", "arm")]
    units = units.merge(arms_used[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    # keep the order of arms.csv, then time
    order = {k: i for i, k in enumerate(zip(arms["study"], arms["arm"]))}
    units = units.assign(_o=[order[(s, a)] for s, a in zip(units["study"], units["arm"])])
    units = units.sort_values(["_o", "timepoint_months"]).drop(columns="_o").reset_index(drop=True)
    many = units.duplicated(["study", "arm"], keep=False)
    units["label"] = [f"{s}:{a}" + (f"@{t:g}mo" if m else "") for s, a, t, m in
                      zip(units["study"], units["arm"], units["timepoint_months"], many)]

    problems = []
    for i, r in units.iterrows():
        thr = r["threshold"] if pd.notna(r.get("threshold")) else opts["default_threshold"]
        if "counts" in r["formats"] and (thr < EDSS_STEP or abs(thr / EDSS_STEP - round(thr / EDSS_STEP)) > 1e-9):
            problems.append(Problem("edss.csv", None, "threshold", thr, f"a multiple of {EDSS_STEP} EDSS points"))
    if problems:
        raise EvidenceError(problems)
    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise EvidenceError([Problem(_table_file(evidence, "arms"), None, None, "no arm with every covariate",
                                     "at least one arm with an EDSS format the spec enables whose arms.csv row "
                                     "has every covariate of the spec: " + ", ".join(spec.covariates))])
    groups = shared.shared_groups(units, evidence)
    units = units.assign(shares_patients=shared.sharing_text(units, groups),
                         carry_fraction=shared.carry_fraction(units, evidence))
    kept = set(zip(units["study"], units["arm"], units["timepoint_months"]))
    notes = (tuple(notes) + tuple(v for k, v in aside_notes.items() if k in kept)
             + tuple(_shared_note(units, g) for g in groups))
    return Prepared(units, d, notes + d.notes, groups)


def _shared_note(units: pd.DataFrame, g: SharedGroup) -> str:
    arms = ", ".join(units["label"].iloc[list(g.units)])
    return (f"{arms}: arm means correlated through shared patients (shared_patients.csv; within-patient "
            "correlation rho_within)")
