"""What a finding rests on: the studies, arms and patients that inform a summary row, and whether one study dominates.

A row ``informed_by = "msc"`` rests on the fit's MSC arms; a row ``informed_by = "control"`` (MSC minus
control) on the studies with a modelled control arm, all their arms. Patients, not treatment periods: an
arm that pools crossover periods (Petrou 2020: 32 periods of 24 patients) counts each patient once, using
``evidence.shared_patients`` the way :mod:`msc_bayes.outcomes.edss.shared` does. With n_i of an arm's N_i
periods analysed, each shared patient's periods are taken as analysed independently with probability
n_i / N_i, so a study's patients are

    sum_i n_i  -  sum_{i<j} m_ij (n_i/N_i)(n_j/N_j)  -  sum_i m_ii (n_i/N_i)^2

(m_ij patients shared by arms i and j, m_ii patients with two periods in arm i), rounded to a whole
patient; with every period analysed this is exactly the number of distinct patients.

Dominance: a row that one study alone informs is that study's ("without Petrou 2020 this is the prior").
Otherwise a leave-one-study-out row of the report's sensitivity table (family ``leave-one-out``, scenario
``without <study>``) shows a dominating study when leaving it out moves the median by more than
``DOMINANCE_SHIFT`` of the base interval's half-width, or changes whether the interval excludes 0.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from msc_bayes.evidence.labels import study_labels
from msc_bayes.findings.base import Interval
from msc_bayes.numbers import number, span
from msc_bayes.results import interval_columns

LOWER, UPPER = interval_columns()

#: a study dominates a row when leaving it out moves the median by more than this share of the base
#: interval's half-width (or flips whether the interval excludes 0)
DOMINANCE_SHIFT = 0.5
#: the sensitivity table's family of leave-one-study-out rows, and its scenario names ("without <study>")
LEAVE_ONE_OUT = "leave-one-out"
_WITHOUT = "without "
#: the words a scenario's notes use when nothing informs the quantity but its prior
PRIOR_NOTE = "is its prior"

#: arms.csv ``design`` in words (a study's arms share one design)
DESIGN_WORDS = {
    "randomised": "randomised controlled",
    "randomised-crossover": "randomised crossover",
    "non-randomised-controlled": "non-randomised controlled",
    "single-arm": "single-arm open-label",
}


# --------------------------------------------------------------------------------------
# Contributing arms and patients
# --------------------------------------------------------------------------------------


def _arm_table(units: pd.DataFrame, evidence) -> pd.DataFrame:
    """One row per (study, arm) of the units: n analysed (periods; an events arm's largest n_at_risk over its
    event types), N (arms.csv n; n where it has none), group, design, disease, cell source, citation, timepoint,
    overlap."""
    u = units.copy()
    u["group"] = u["group"].fillna("msc") if "group" in u else "msc"
    n_col = "n_periods" if "n_periods" in u else "n"
    u["_n"] = pd.to_numeric(u[n_col], errors="coerce")
    if "timepoint_months" not in u:
        u["timepoint_months"] = np.nan
    agg = {"_n": "max", "timepoint_months": "max"}
    cols = [c for c in ("group", "design", "disease", "cell_source", "citation", "n_arm", "overlap_group",
                        "overlap_rank", "periods_after_msc", "followup_months") if c in u]
    agg.update({c: "first" for c in cols})
    arms = u.groupby(["study", "arm"], sort=False).agg(agg).reset_index().rename(columns={"_n": "n"})
    ev_arms = evidence.arms
    size = dict(zip(zip(ev_arms["study"], ev_arms["arm"]), pd.to_numeric(ev_arms["n"], errors="coerce").astype(float)))
    N = pd.Series([size.get(k, np.nan) for k in zip(arms["study"], arms["arm"])], index=arms.index, dtype=float)
    arms["N"] = N.where(N >= arms["n"], arms["n"])
    return arms


def _patients(arms: pd.DataFrame, shared: pd.DataFrame) -> np.ndarray:
    """Per arm, its patients once each (the module docstring's expected count, shares split between the arms)."""
    out = arms["n"].to_numpy(dtype=float).copy()
    if shared is None or shared.empty:
        return out
    index = {(s, a): i for i, (s, a) in enumerate(zip(arms["study"], arms["arm"]))}
    frac = (arms["n"] / arms["N"]).to_numpy(dtype=float)
    for r in shared.itertuples(index=False):
        i, j = index.get((r.study, r.arm)), index.get((r.study, r.other_arm))
        if i is None or j is None:
            continue
        m = float(r.patients)
        if i == j:
            out[i] -= m * frac[i] ** 2
        else:
            both = m * frac[i] * frac[j]
            out[i] -= both / 2
            out[j] -= both / 2
    return out


def contributing(fit, row, evidence) -> pd.DataFrame:
    """The arms that inform `row` (see the module docstring), one per (study, arm), with ``patients`` (each
    patient once; fractional within a study whose arms share patients, whole per study) and ``study_label``.
    A row of one event type (``risk_pooled_event[serious_ae]``) rests on the units of that event type."""
    units = fit.prepared.units
    cell = re.search(r"_event\[(.+)\]$", row.name)
    if cell and "event" in units and (units["event"] == cell.group(1)).any():  # one event type's risk
        units = units[units["event"] == cell.group(1)]
    arms = _arm_table(units, evidence)
    if row.informed_by == "control":
        controlled = set(arms.loc[arms["group"] == "control", "study"])
        arms = arms[arms["study"].isin(controlled)]
    else:
        arms = arms[arms["group"] == "msc"]
    arms = arms.reset_index(drop=True)
    arms["patients"] = _patients(arms, evidence.shared_patients)
    labels = study_labels(evidence.arms)
    arms["study_label"] = [labels.get(s, s) for s in arms["study"]]
    return arms


def study_patients(arms: pd.DataFrame) -> dict[str, int]:
    """study -> its contributing patients, rounded to whole patients."""
    return {s: round(p) for s, p in arms.groupby("study", sort=False)["patients"].sum().items()}


# --------------------------------------------------------------------------------------
# In words
# --------------------------------------------------------------------------------------


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _design_of(arms: pd.DataFrame) -> dict[str, str]:
    design = arms["design"] if "design" in arms else pd.Series([None] * len(arms), index=arms.index)
    return {s: (d if isinstance(d, str) and d else "design not recorded") for s, d in zip(arms["study"], design)}


def rests_on_text(arms: pd.DataFrame, row) -> str:
    """'1 randomised crossover study (Petrou 2020: 3 arms, 48 patients)', or '11 studies, 13 MSC arms, 171
    patients; of the studies 10 single-arm open-label, 1 randomised crossover', with periods versus patients
    for crossover studies that share patients and the studies that may share patients (same overlap group)."""
    if arms.empty:
        return "no study"
    per_study = study_patients(arms)
    designs = _design_of(arms)
    labels = dict(zip(arms["study"], arms["study_label"]))
    total = sum(per_study.values())
    what = "MSC arm" if row.informed_by == "msc" else "arm"
    if len(per_study) == 1:
        (s, p), = per_study.items()
        d = DESIGN_WORDS.get(designs[s], designs[s])
        n = round(arms["n"].sum())
        periods = f" in {n} analysed treatment periods" if n != p else ""
        text = f"1 {d} study ({labels[s]}: {_plural(len(arms), what)}, {_plural(p, 'patient')}{periods})"
    else:
        counts: dict[str, int] = {}
        for s in per_study:
            d = DESIGN_WORDS.get(designs[s], designs[s])
            counts[d] = counts.get(d, 0) + 1
        kinds = ", ".join(f"{k} {d}" for d, k in sorted(counts.items(), key=lambda kv: -kv[1]))
        text = (f"{_plural(len(per_study), 'study').replace('studys', 'studies')}, {_plural(len(arms), what)}, "
                f"{_plural(total, 'patient')}; of the studies {kinds}")
    periods = []
    for s, g in arms.groupby("study", sort=False) if len(per_study) > 1 else ():
        n = round(g["n"].sum())
        if n != per_study[s]:
            periods.append(f"{labels[s]}'s {n} analysed treatment periods are {per_study[s]} patients")
    if periods:
        text += " (" + "; ".join(periods) + ")"
    if "overlap_group" in arms:
        for grp, g in arms.dropna(subset=["overlap_group"]).groupby("overlap_group", sort=False):
            studies = list(dict.fromkeys(g["study"]))
            if len(studies) > 1:
                names = " and ".join(labels[s] for s in studies)
                text += f"; {names} may share patients (overlap group {grp}; counted in each)"
    return text


# --------------------------------------------------------------------------------------
# Dominance
# --------------------------------------------------------------------------------------


def _excludes_zero(lower: float, upper: float) -> bool:
    return lower > 0 or upper < 0


def dominance_text(row, arms: pd.DataFrame, labels: dict[str, str], table: pd.DataFrame | None = None,
                   base: Interval | None = None) -> str:
    """Which study dominates `row`: '' when none. One informing study: 'without <it> this is the prior';
    then every leave-one-out row of `table` (if given) that moves the median by more than DOMINANCE_SHIFT of
    the base half-width, or flips whether the interval excludes 0 (only for a row with a direction: a risk
    always excludes 0). `base` defaults to the table's base row of the quantity."""
    parts = []
    studies = list(dict.fromkeys(arms["study"]))
    if len(studies) == 1:
        parts.append(f"without {labels.get(studies[0], studies[0])} this is the prior")
    if table is not None and len(table):
        q = table[table["quantity"] == row.name]
        if base is None:
            b = q[q["family"] == "base"]
            base = Interval(*b.iloc[0][["median", LOWER, UPPER]].astype(float)) if len(b) else None
        if base is not None:
            half = (base.upper - base.lower) / 2
            signed = row.direction != "none" or getattr(row, "point_null", False)
            for _, r in q[q["family"] == LEAVE_ONE_OUT].iterrows():
                scenario = str(r["scenario"])
                study = scenario.removeprefix(_WITHOUT)
                if len(studies) == 1 and study == studies[0]:
                    continue  # already said
                name = labels.get(study, study)
                lo, hi, med = float(r[LOWER]), float(r[UPPER]), float(r["median"])
                if PRIOR_NOTE in str(r.get("notes", "")):
                    parts.append(f"without {name} this is the prior")
                elif signed and _excludes_zero(base.lower, base.upper) != _excludes_zero(lo, hi):
                    now = "excludes" if _excludes_zero(lo, hi) else "includes"
                    parts.append(f"without {name} the interval {now} 0 ({span(lo, hi)})")
                elif abs(med - base.median) > DOMINANCE_SHIFT * half:
                    parts.append(f"without {name} the median moves from {number(base.median)} to {number(med)}")
    return "; ".join(parts)


def support(fit, row, evidence, *, sensitivity: pd.DataFrame | None = None, base: Interval | None = None,
            arms: pd.DataFrame | None = None) -> dict:
    """The Finding fields on what `row` rests on: studies (keys), arms, patients, rests_on, dominance.

    `sensitivity` is the outcome's report sensitivity table (:func:`msc_bayes.sensitivity.report_policy.report_table`
    layout) or None; `base` the row's own estimate (on the variable's scale), else the table's base row;
    `arms` the row's `contributing` arms when the caller has them."""
    arms = contributing(fit, row, evidence) if arms is None else arms
    labels = study_labels(evidence.arms)
    return {
        "studies": tuple(dict.fromkeys(arms["study"])),
        "arms": len(arms),
        "patients": sum(study_patients(arms).values()),
        "rests_on": rests_on_text(arms, row),
        "dominance": dominance_text(row, arms, labels, sensitivity, base),
    }
