"""Checks across the rows and tables of parsed evidence: known arms, arm sizes, timepoints,
duplicates, secondary fields and each table's own rules (counts, CIs, EDSS steps, events, the
patients that crossover arms share: `_check_shared_patients`)."""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd

from msc_bayes.errors import Problem, did_you_mean
from msc_bayes.evidence.schema import (
    COUNT_COLUMNS,
    DAYS_PER_MONTH,
    EDSS_STEP,
    EXPOSURE_UNITS,
    PATIENT_COUNTS,
    ROW_KEYS,
    _key_columns,
    _split,
)


def _check_rows(tables: dict[str, pd.DataFrame], label, broken: set[str], problems: list[Problem],
                arms_given: bool = True, n_from_outcomes=frozenset()) -> None:
    """Checks across rows and tables, skipping tables without a column they need (`broken`). Arm
    sizes are checked only against an arms.csv that was given (`arms_given`), not against arms
    derived from the outcome tables; `n_from_outcomes`: the arms whose blank n the outcome tables gave."""
    arms = tables["arms"]
    for name, df in tables.items():
        if not len(df) or name in broken:
            continue
        if name == "shared_patients":  # its own known-arm, size and duplicate rules
            if "arms" not in broken:
                _check_shared_patients(df, arms, label(name), problems, arms_given)
            _check_secondary_fields(name, df, label(name), problems)
            continue
        if name != "arms" and "arms" not in broken:
            _check_known_arms(df, arms, label(name), problems)
            if arms_given:
                _check_arm_sizes(name, df, arms, label(name), problems, n_from_outcomes)
        if "timepoint_months" in df and name != "arms":
            _check_timepoints(name, df, label(name), problems)
        _check_duplicates(name, df, label(name), problems)
        _check_secondary_fields(name, df, label(name), problems)
    checks = {"arms": _check_arms, "edss": _check_edss, "patients": _check_patients,
              "adverse_events": _check_events, "mri": _check_events, "effect_sizes": _check_effect_sizes}
    for name, check in checks.items():
        if name not in broken:
            check(tables[name], label(name), problems)


def _check_known_arms(df: pd.DataFrame, arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    by_study: dict[object, list] = collections.defaultdict(list)
    for s, a in zip(arms["study"], arms["arm"]):
        if pd.notna(s) and pd.notna(a):
            by_study[s].append(a)
    for i, (s, a) in enumerate(zip(df["study"], df["arm"]), 1):
        if a in by_study.get(s, ()):
            continue
        hint = did_you_mean(a, sorted(by_study[s])) if s in by_study else did_you_mean(s, sorted(by_study))
        problems.append(Problem(file, i, "study/arm", f"{s}/{a}", "a study/arm listed in arms.csv" + hint))


def _check_arm_sizes(name: str, df: pd.DataFrame, arms: pd.DataFrame, file: str, problems: list[Problem],
                     n_from_outcomes=frozenset()) -> None:
    """A row counts patients of one arm: at most the arm's n (distinct patients, in patients.csv)."""
    arm_n = {(s, a): n for s, a, n in zip(arms["study"], arms["arm"], arms["n"]) if pd.notna(n)}

    def whose(key) -> str:
        return "the arm's n (arms.csv blank: the outcome tables' count)" if key in n_from_outcomes \
            else "the arm's n in arms.csv"

    if name == "patients":
        seen: dict[tuple, set] = collections.defaultdict(set)
        for i, (s, a, patient) in enumerate(zip(df["study"], df["arm"], df["patient"]), 1):
            seen[s, a].add(patient)
            if (s, a) in arm_n and len(seen[s, a]) == arm_n[s, a] + 1:
                problems.append(Problem(file, i, "patient", patient,
                                        f"at most {whose((s, a))} ({arm_n[s, a]}) distinct patients"))
        return
    column = PATIENT_COUNTS[name]
    for i, (s, a, n) in enumerate(zip(df["study"], df["arm"], df[column]), 1):
        if (s, a) in arm_n and pd.notna(n) and n > arm_n[s, a]:
            problems.append(Problem(file, i, column, n, f"at most {whose((s, a))} ({arm_n[s, a]})"))


def _check_timepoints(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    both = df["timepoint_months"].notna() & df["timepoint_weeks"].notna()
    for i in np.flatnonzero(both.to_numpy()):
        problems.append(Problem(file, i + 1, "timepoint_weeks", df["timepoint_weeks"].iloc[i],
                                "either timepoint_months or timepoint_weeks, not both"))
    if name in ("edss", "patients", "mri"):
        neither = df["timepoint_months"].isna() & df["timepoint_weeks"].isna()
        for i in np.flatnonzero(neither.to_numpy()):
            problems.append(Problem(file, i + 1, "timepoint_months", "", "a timepoint (months or weeks)"))


def _check_duplicates(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    keys = [k if k != "timepoint_months" else "_t" for k in ROW_KEYS[name]]
    keyed = df.assign(_t=df["timepoint_months"].fillna(df["timepoint_weeks"] * 7 / DAYS_PER_MONTH)) \
        if "timepoint_weeks" in df else df
    dup = keyed.astype(object).where(keyed.notna(), None).duplicated(subset=keys, keep="first")
    for i in np.flatnonzero(dup.to_numpy()):
        problems.append(Problem(file, i + 1, ",".join(ROW_KEYS[name]), tuple(keyed[k].iloc[i] for k in keys),
                                "a unique row (the same key appears earlier)"))


def _check_secondary_fields(name: str, df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    """Each named column is one of the table's, and not one that identifies the row (blanking a key
    would make the row another row, or none)."""
    if "secondary_fields" not in df:
        return
    keys = _key_columns(name)
    for i, fields in enumerate(df["secondary_fields"], 1):
        for col in _split(fields):
            if col not in df.columns:
                problems.append(Problem(file, i, "secondary_fields", col,
                                        "a column of this table" + did_you_mean(col, df.columns)))
            elif col in keys:
                problems.append(Problem(file, i, "secondary_fields", col, "a column of this table that does not "
                                        f"identify the row (not {', '.join(keys)})"))


def _check_arms(arms: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(arms.itertuples(index=False), 1):
        lo, hi = row.courses_min, row.courses_max
        if pd.notna(lo) and pd.notna(hi) and lo > hi:
            problems.append(Problem(file, i, "courses_max", hi, f"at least courses_min ({lo})"))
        if pd.notna(row.courses) and (pd.notna(lo) or pd.notna(hi)):
            problems.append(Problem(file, i, "courses", row.courses, "either courses or courses_min/courses_max"))
        if pd.notna(row.followup_months) and pd.notna(row.followup_weeks):
            problems.append(Problem(file, i, "followup_weeks", row.followup_weeks,
                                    "either followup_months or followup_weeks, not both"))
        if pd.notna(row.overlap_group) != pd.notna(row.overlap_rank):
            problems.append(Problem(file, i, "overlap_rank", row.overlap_rank, "overlap_group and overlap_rank together"))
        after = row.periods_after_msc
        if pd.notna(after) and pd.notna(row.n) and after > row.n:
            problems.append(Problem(file, i, "periods_after_msc", after, f"at most the arm's n ({row.n}) periods"))


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
        if pd.notna(row.threshold) and not _on_edss_grid(row.threshold):
            problems.append(Problem(file, i, "threshold", row.threshold, f"a multiple of {EDSS_STEP} (EDSS steps)"))
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
            if pd.notna(v) and not _on_edss_grid(v):
                problems.append(Problem(file, i, col, v, f"a multiple of {EDSS_STEP} (EDSS steps)"))
        for col in ("timepoint_months", "timepoint_weeks"):
            if pd.notna(row.change) and getattr(row, col) == 0:
                problems.append(Problem(file, i, col, 0, "a follow-up time > 0 for a change from baseline"))


def _on_edss_grid(value: float) -> bool:
    """Is `value` a multiple of EDSS_STEP (0.5), as EDSS scores, changes and thresholds are?"""
    return abs(value / EDSS_STEP - round(value / EDSS_STEP)) <= 1e-9


def _check_events(df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    for i, row in enumerate(df.itertuples(index=False), 1):
        wording = getattr(row, "wording", None)
        if pd.notna(row.patients_with_event) and pd.notna(row.n_at_risk) and row.patients_with_event > row.n_at_risk:
            problems.append(Problem(file, i, "patients_with_event", row.patients_with_event,
                                    f"at most n_at_risk ({row.n_at_risk})"))
        elif isinstance(wording, str) and wording in ("none", "vague") and pd.notna(row.patients_with_event) and row.patients_with_event > 0:
            problems.append(Problem(file, i, "patients_with_event", row.patients_with_event,
                                    f"0 for a statement worded '{wording}' (words that say none occurred)"))
        events = row.events
        if pd.isna(events) and pd.isna(row.patients_with_event):
            problems.append(Problem(file, i, "patients_with_event", "", "a count in patients_with_event or events "
                                    "(0 when none occurred; a row that reports neither is not a row)"))
        if pd.notna(events) and pd.notna(row.patients_with_event) and events < row.patients_with_event:
            problems.append(Problem(file, i, "events", events, f"at least patients_with_event ({row.patients_with_event})"))
        if pd.notna(row.exposure) and pd.isna(row.exposure_unit):
            problems.append(Problem(file, i, "exposure_unit", "", "the unit of exposure (" + ", ".join(EXPOSURE_UNITS) + ")"))
        elif pd.isna(row.exposure) and pd.notna(row.exposure_unit):
            problems.append(Problem(file, i, "exposure", "", f"the exposure in {row.exposure_unit} "
                                    "(exposure and exposure_unit go together)"))


def _check_effect_sizes(df: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    """A row's estimate has its uncertainty: se, or sd with n, or a CI (lower < upper, y inside it)."""
    for i, row in enumerate(df.itertuples(index=False), 1):
        lo, hi = row.ci_lower, row.ci_upper
        if pd.notna(lo) != pd.notna(hi):
            col = "ci_upper" if pd.isna(hi) else "ci_lower"
            problems.append(Problem(file, i, col, "", "both CI limits or neither"))
        elif pd.notna(lo):
            if lo >= hi:
                problems.append(Problem(file, i, "ci_upper", hi, f"greater than ci_lower ({lo})"))
            elif pd.notna(row.y) and not lo <= row.y <= hi:
                problems.append(Problem(file, i, "y", row.y, f"inside its CI [{lo}, {hi}]"))
        elif pd.notna(row.ci_level):
            problems.append(Problem(file, i, "ci_level", row.ci_level, "blank when no CI is given"))
        if pd.notna(row.sd) and pd.isna(row.n) and pd.isna(row.se) and pd.isna(lo):
            problems.append(Problem(file, i, "n", "", "the arm's n with sd (or se, or a CI)"))
        elif pd.isna(row.se) and pd.isna(row.sd) and pd.isna(lo) and pd.isna(hi):
            problems.append(Problem(file, i, "se", "", "the uncertainty of y: se, or sd with n, or ci_lower and ci_upper"))


def _check_shared_patients(df: pd.DataFrame, arms: pd.DataFrame, file: str, problems: list[Problem],
                           arms_given: bool) -> None:
    """Each row a pair of arms of one study (or an arm with itself), given once; its patients
    fit in both arms' n, twice for an arm with itself; and for each arm, patients shared with
    other arms + 2 x patients twice in it <= its n. Arms and sizes are checked only against an
    arms.csv that was given (`arms_given`)."""
    by_study: dict[object, list] = collections.defaultdict(list)
    arm_n = {}
    for s, a, n in zip(arms["study"], arms["arm"], arms["n"]):
        if pd.notna(s) and pd.notna(a):
            by_study[s].append(a)
        if pd.notna(n):
            arm_n[s, a] = n
    seen: dict[tuple, int] = {}
    used: dict[tuple, int] = collections.defaultdict(int)  # periods of an arm that the rows account for
    last_row: dict[tuple, int] = {}
    for i, (s, a, b, k) in enumerate(zip(df["study"], df["arm"], df["other_arm"], df["patients"]), 1):
        known = True
        for col, arm in (("arm", a), ("other_arm", b)):
            if arms_given and arm not in by_study.get(s, ()):
                known = False
                hint = did_you_mean(arm, sorted(by_study[s])) if s in by_study else did_you_mean(s, sorted(by_study))
                problems.append(Problem(file, i, f"study/{col}", f"{s}/{arm}",
                                        "an arm of the same study listed in arms.csv" + hint))
        pair = (s, *sorted((a, b), key=str))
        if pair in seen:
            again = "appears earlier" if (a, b) == tuple(df[["arm", "other_arm"]].iloc[seen[pair] - 1]) \
                else "appears earlier as (other_arm, arm)"
            problems.append(Problem(file, i, "study,arm,other_arm", (s, a, b),
                                    f"a unique pair of arms (the same pair {again})"))
            continue
        seen[pair] = i
        if not known or not arms_given or pd.isna(k):
            continue
        sizes = [arm_n[s, x] for x in {a, b} if (s, x) in arm_n]
        if a == b and sizes and 2 * k > sizes[0]:
            problems.append(Problem(file, i, "patients", k, f"at most half the arm's n ({sizes[0]}): "
                                    "each of these patients has two periods in the arm"))
        elif sizes and k > min(sizes):
            problems.append(Problem(file, i, "patients", k, f"at most the smaller n of the two arms ({min(sizes)})"))
        else:
            for x in {a, b}:
                used[s, x] += 2 * k if a == b else k
                last_row[s, x] = i
    for (s, x), total in used.items():
        if (s, x) in arm_n and total > arm_n[s, x]:
            problems.append(Problem(file, last_row[s, x], "patients", total,
                                    f"at most the n of {s}/{x} ({arm_n[s, x]}) periods over all its rows: the "
                                    "patients it shares with other arms + 2 x its patients with two periods"))
