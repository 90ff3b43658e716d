"""What the evidence says, per study arm, in the words and numbers the sources use."""

from __future__ import annotations

import pandas as pd

from msc_bayes.evidence.schema import COUNT_COLUMNS
from msc_bayes.evidence.tables import Evidence


def _num(x) -> str:
    return f"{x:g}" if pd.notna(x) else "NR"


def _courses(arm) -> str:
    if pd.notna(arm.courses):
        return str(arm.courses)
    if pd.notna(arm.courses_min):
        return f"{arm.courses_min}-{arm.courses_max}"
    return "NR"


def edss_text(row) -> str:
    """One EDSS row as reported: means ± SD, change, counts (with n)."""
    parts = []
    if pd.notna(row.baseline_mean):
        base = _num(row.baseline_mean) + (f" ± {_num(row.baseline_sd)}" if pd.notna(row.baseline_sd) else "")
        follow = _num(row.followup_mean) + (f" ± {_num(row.followup_sd)}" if pd.notna(row.followup_sd) else "")
        parts.append(f"{base} → {follow}")
    if pd.notna(row.change_mean):
        spread = next((f" {k} {_num(getattr(row, c))}" for k, c in (("±", "change_sd"), ("SE", "change_se"))
                       if pd.notna(getattr(row, c))), "")
        if pd.notna(row.change_ci_lower):
            spread = f" ({row.change_ci_level:.0%} CI {_num(row.change_ci_lower)} to {_num(row.change_ci_upper)})"
        parts.append(f"change {row.change_mean:+g}{spread}")
    counts = [f"{c.replace('_', ' ')} {getattr(row, c)}" for c in COUNT_COLUMNS if pd.notna(getattr(row, c))]
    if counts:
        thr = f" (threshold {_num(row.threshold)})" if pd.notna(row.threshold) else ""
        parts.append(", ".join(counts) + f" of {row.n}{thr}")
    when = row.timepoint_text if pd.notna(row.timepoint_text) else f"{row.timepoint_months:g} months"
    return f"{when}, n={row.n}: " + "; ".join(parts)


def describe(evidence: Evidence) -> pd.DataFrame:
    """One row per study arm: n, design, route, courses, follow-up, EDSS, AEs, MRI, grade."""
    edss, ae, mri = evidence.edss, evidence.adverse_events, evidence.mri
    rows = []
    for arm in evidence.arms.itertuples(index=False):
        key = (edss.study == arm.study) & (edss.arm == arm.arm)
        e = edss[key].sort_values("timepoint_months")
        a = ae[(ae.study == arm.study) & (ae.arm == arm.arm)]
        m = mri[(mri.study == arm.study) & (mri.arm == arm.arm)]
        rows.append({
            "study": arm.study, "arm": arm.arm, "group": arm.group, "disease": arm.disease, "n": arm.n,
            "route": arm.route if pd.notna(arm.route) else "NR", "courses": _courses(arm),
            "followup_months": round(arm.followup_months, 1) if pd.notna(arm.followup_months) else None,
            "edss": " | ".join(edss_text(r) for r in e.itertuples(index=False)),
            "adverse_events": "; ".join(
                f"{r.event}{' (related)' if r.attribution == 'related' else ''} {r.patients_with_event}/{r.n_at_risk}"
                for r in a.itertuples(index=False)),
            "mri": "; ".join(f"{r.event} {r.patients_with_event}/{r.n_at_risk} at {r.timepoint_months:.3g} mo"
                             for r in m.itertuples(index=False)),
            "overlap": f"{arm.overlap_group} #{arm.overlap_rank}" if pd.notna(arm.overlap_group) else "",
            "grade": arm.grade if pd.notna(arm.grade) else "",
        })
    return pd.DataFrame(rows)
