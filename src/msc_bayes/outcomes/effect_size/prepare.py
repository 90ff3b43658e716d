"""Which rows of ``effect_sizes.csv`` the effect-size model uses, and how each enters (pure; no PyMC).

Selection (spec ``[options]``), in this order: ``exclude_secondary`` blanks the values a row marks as
secondary (a row left without ``y`` is dropped by the evidence; one left without a spread is left out
with a note); ``timepoint`` keeps the last / first dated row of each study arm (an undated row is the
arm's only timepoint; beside dated rows it is left out, with a note), or every row (``all``: each
timepoint its own unit); ``exclude_overlapping`` counts each patient once
(:func:`~msc_bayes.evidence.selection.count_once`); an arm lacking a covariate of the spec is left out.

Each unit enters through its first available format (so a row's spread is used once):

- ``se``: the reported standard error, known;
- ``ci``: a confidence interval, se = (upper − lower) / (2 z) with z the normal quantile at (1 + level) / 2
  (level 0.95 when the row gives none), known;
- ``sd``: a within-arm SD with its n: se = sigma / sqrt(n) with the true SD sigma a parameter and the
  reported SD data on it, (n − 1) sd² / sigma² ~ chi²(n − 1) (needs n ≥ 2; see :mod:`.model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import DEFAULT_CI_LEVEL, Evidence
from msc_bayes.evidence.selection import count_once
from msc_bayes.outcomes.covariates import Design, design

TABLE = "effect_sizes"
#: The formats in priority order: a unit enters through the first its row has.
FORMATS = ("se", "ci", "sd")


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs: ``units`` (one row per modelled unit: the table's columns, the arm's columns
    from arms.csv (its ``n`` as ``n_arm``), ``label`` "study:arm" (plus "@<t>mo" when an arm keeps several
    timepoints), ``likelihood``: its format (``se`` / ``ci`` / ``sd``) and ``se_known`` (the known SE of ``se`` and ``ci`` units,
    NaN for ``sd`` units)), the covariate design and the notes."""

    units: pd.DataFrame
    design: Design
    notes: tuple[str, ...]

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))


def _value(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float) if name in df else np.full(len(df), np.nan)


def known_se(rows: pd.DataFrame) -> np.ndarray:
    """The known SE of each row: ``se``, else from its CI (normal quantile; level 0.95 when blank); NaN otherwise."""
    se = _value(rows, "se")
    level = _value(rows, "ci_level")
    level = np.where(np.isnan(level), DEFAULT_CI_LEVEL, level)
    width = _value(rows, "ci_upper") - _value(rows, "ci_lower")
    return np.where(np.isnan(se), width / (2 * stats.norm.ppf((1 + level) / 2)), se)


def row_format(rows: pd.DataFrame) -> np.ndarray:
    """Each row's format (the first of `FORMATS` it has), "" for a row with none usable."""
    has_se = ~np.isnan(_value(rows, "se"))
    has_ci = ~np.isnan(_value(rows, "ci_lower")) & ~np.isnan(_value(rows, "ci_upper"))
    n = _value(rows, "n")
    has_sd = ~np.isnan(_value(rows, "sd")) & (n >= 2)
    return np.select([has_se, has_ci, has_sd], list(FORMATS), default="")


def _file(evidence: Evidence) -> str:
    folder = Path(evidence.path)
    return str(folder / f"{TABLE}.csv") if folder.is_dir() else f"{TABLE}.csv"


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select the units of the effect-size model (module docstring)."""
    opts, notes = spec.options, []
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    rows = evidence.table(TABLE).reset_index(drop=True)
    file = _file(evidence)
    if rows.empty:
        raise EvidenceError([Problem(file, None, None, "no rows (a header only, or no file)",
                                     f"at least one row of {TABLE}.csv: the effect_size model has no data without it")])
    fmt = row_format(rows)
    for r, f in zip(rows.itertuples(index=False), fmt):
        if not f:
            why = "sd with n = 1 gives no SE" if pd.notna(getattr(r, "sd", np.nan)) else "no se, CI or sd with n left"
            notes.append(f"{r.study}:{r.arm} left out: {why}")
    rows = rows[fmt != ""].assign(likelihood=fmt[fmt != ""])
    if opts["timepoint"] != "all":
        rows = _one_timepoint(rows, opts["timepoint"], notes)
    arms = evidence.arms
    has = pd.Series([k in set(zip(rows["study"], rows["arm"])) for k in zip(arms["study"], arms["arm"])],
                    index=arms.index)
    if opts["exclude_overlapping"]:
        used, more = count_once(arms, has)
        notes += more
    else:
        used = arms[has.to_numpy()]
    keep = set(zip(used["study"], used["arm"]))
    rows = rows[[k in keep for k in zip(rows["study"], rows["arm"])]]
    units = _units(rows, arms)
    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise EvidenceError([Problem(file, None, None, "no usable rows",
                                     "at least one row with y and se, a CI, or sd with n >= 2, whose arm has "
                                     "every covariate of the spec: " + (", ".join(spec.covariates) or "none"))])
    return Prepared(units, d, tuple(notes) + d.notes)


def _one_timepoint(rows: pd.DataFrame, how: str, notes: list[str]) -> pd.DataFrame:
    """The last / first dated row per study arm; an undated row beside dated ones is left out (noted)."""
    t = rows["timepoint_months"]
    pick = t.groupby([rows["study"], rows["arm"]]).transform("max" if how == "last" else "min")
    for r in rows[pick.notna() & t.isna()].itertuples(index=False):
        notes.append(f"{r.study}:{r.arm} row without a timepoint left out: the arm has dated rows")
    return rows[(pick.isna() | (t == pick)).to_numpy(dtype=bool)]


def _units(rows: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The rows with their arm's columns, in arms.csv order, labelled, with their known SE."""
    arm_cols = [c for c in arms.columns if c in ("study", "arm") or (c not in rows.columns and c != "label")]
    units = rows.merge(arms[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    order = {k: i for i, k in enumerate(zip(arms["study"], arms["arm"]))}
    units = units.assign(_o=[order.get(k, len(order)) for k in zip(units["study"], units["arm"])])
    units = units.sort_values(["_o", "timepoint_months"], kind="stable").drop(columns="_o").reset_index(drop=True)
    many = units.duplicated(["study", "arm"], keep=False)
    units["label"] = [f"{s}:{a}" + (f"@{t:.3g}mo" if m else "")
                      for s, a, t, m in zip(units["study"], units["arm"], units["timepoint_months"], many)]
    units["group"] = units["group"].fillna("msc") if "group" in units else "msc"
    units["se_known"] = known_se(units)
    units["n"] = pd.to_numeric(units["n"], errors="coerce").astype(float)
    return units
