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


def ae_text(row) -> str:
    """One adverse-event statement: 'serious_ae (related) 0/24', with its timing when not the whole
    follow-up and 'vague words' when the words exclude a less defined class."""
    notes = [w for w, show in (("related", row.attribution == "related"),
                                (row.timing, row.timing in ("acute", "delayed")),
                                ("vague words", row.wording == "vague")) if show]
    shown = f" ({', '.join(notes)})" if notes else ""
    return f"{row.event}{shown} {row.patients_with_event}/{row.n_at_risk}"


def crossover_text(arm, shared: pd.DataFrame) -> str:
    """An arm's periods when it shares patients with other arms or has periods after MSC
    ('32 periods; shares 16 patients with sham; 8 patients twice; 16 periods after MSC'), else ''."""
    rows = shared[(shared.study == arm.study) & ((shared.arm == arm.arm) | (shared.other_arm == arm.arm))]
    parts = []
    for r in rows.itertuples(index=False):
        if r.arm == r.other_arm:
            parts.append(f"{r.patients} patients twice")
        else:
            parts.append(f"shares {r.patients} patients with {r.other_arm if r.arm == arm.arm else r.arm}")
    after = getattr(arm, "periods_after_msc", None)
    if pd.notna(after) and after > 0:
        parts.append(f"{after} periods after MSC")
    return "; ".join([f"{arm.n} periods", *parts]) if parts else ""


def describe(evidence: Evidence) -> pd.DataFrame:
    """One row per study arm: n, design, route, courses, follow-up, EDSS, AEs, MRI, crossover
    (periods shared with other arms, see `crossover_text`), grade."""
    edss, ae, mri, shared = evidence.edss, evidence.adverse_events, evidence.mri, evidence.shared_patients
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
            "adverse_events": "; ".join(ae_text(r) for r in a.itertuples(index=False)),
            "mri": "; ".join(f"{r.event} {r.patients_with_event}/{r.n_at_risk} at {r.timepoint_months:.3g} mo"
                             for r in m.itertuples(index=False)),
            "overlap": f"{arm.overlap_group} #{arm.overlap_rank}" if pd.notna(arm.overlap_group) else "",
            "crossover": crossover_text(arm, shared),
            "grade": arm.grade if pd.notna(arm.grade) else "",
        })
    return pd.DataFrame(rows)
