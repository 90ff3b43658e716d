"""What the evidence says, per study arm, in the words and numbers the sources use.

A value the sources do not give is written "not reported" in sentences (:data:`NOT_REPORTED`; "NR" in the
table's short route and courses cells), never as a number or "nan"."""

from __future__ import annotations

import pandas as pd

from msc_bayes.evidence.schema import COUNT_COLUMNS, DEFAULT_CI_LEVEL
from msc_bayes.evidence.tables import Evidence
from msc_bayes.numbers import plural

#: How a value the sources do not give is written.
NOT_REPORTED = "not reported"


def _num(x) -> str:
    return f"{x:g}" if pd.notna(x) else NOT_REPORTED


def _count(x) -> str:
    """A whole number (an arm's n, a count) as written, or 'not reported'."""
    return str(int(x)) if pd.notna(x) else NOT_REPORTED


def _level(x) -> str:
    """A CI's level: '95%' (the default level when the row gives none)."""
    return f"{(x if pd.notna(x) else DEFAULT_CI_LEVEL):.0%}"


def _value(row, column: str):
    """A cell of a row that may lack the column (a table without that optional column): NaN then."""
    return getattr(row, column, float("nan"))


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
            spread = f" ({_level(row.change_ci_level)} CI {_num(row.change_ci_lower)} to {_num(row.change_ci_upper)})"
        parts.append(f"change {row.change_mean:+g}{spread}")
    counts = [f"{c.replace('_', ' ')} {getattr(row, c)}" for c in COUNT_COLUMNS if pd.notna(getattr(row, c))]
    if counts:
        thr = f" (threshold {_num(row.threshold)})" if pd.notna(row.threshold) else ""
        parts.append(", ".join(counts) + f" of {_count(row.n)}{thr}")
    return f"{_when(row)}, n={_count(row.n)}: " + "; ".join(parts)


def _when(row) -> str:
    """A row's timepoint as the source words it, else in months, else 'timepoint not reported'."""
    text, months = _value(row, "timepoint_text"), _value(row, "timepoint_months")
    if pd.notna(text):
        return str(text)
    return f"{months:g} months" if pd.notna(months) else f"timepoint {NOT_REPORTED}"


def events_text(row) -> str:
    """What an adverse-event or MRI row counts: '0/24' (patients with the event of those at risk), then
    its event count and exposure when given ('3 events in 12.5 person-years'); an events-only row
    reads '3 events of 24 at risk'."""
    events, exposure, unit = _value(row, "events"), _value(row, "exposure"), _value(row, "exposure_unit")
    spent = f" in {exposure:g} {str(unit).replace('_', '-')}" if pd.notna(exposure) and pd.notna(unit) else ""
    if pd.notna(row.patients_with_event):
        shown = f"{_count(row.patients_with_event)}/{_count(row.n_at_risk)}"
        return shown + (f", {plural(int(events), 'event')}{spent}" if pd.notna(events) else "")
    if pd.notna(events):
        return f"{plural(int(events), 'event')}{spent} of {_count(row.n_at_risk)} at risk"
    return f"{NOT_REPORTED} of {_count(row.n_at_risk)}"


def mri_text(row) -> str:
    """One MRI row: 'new_t2 1/6 at 12 mo'."""
    when = f"{row.timepoint_months:.3g} mo" if pd.notna(row.timepoint_months) else f"timepoint {NOT_REPORTED}"
    return f"{row.event} {events_text(row)} at {when}"


def effect_size_text(row) -> str:
    """One effect_sizes.csv row as reported: 'y -0.3 SE 0.1', 'y 1.2 (SD 0.5, n 20)', 'y 0.4 (95% CI 0.1 to 0.7)',
    with its timepoint when given."""
    spread = []
    if pd.notna(row.se):
        spread.append(f"SE {_num(row.se)}")
    if pd.notna(row.sd):
        spread.append(f"SD {_num(row.sd)}, n {_count(row.n)}")
    elif pd.notna(row.n):
        spread.append(f"n {_count(row.n)}")
    if pd.notna(row.ci_lower) or pd.notna(row.ci_upper):
        spread.append(f"{_level(row.ci_level)} CI {_num(row.ci_lower)} to {_num(row.ci_upper)}")
    text = f"y {_num(row.y)}" + (f" ({'; '.join(spread)})" if spread else "")
    months, words = _value(row, "timepoint_months"), _value(row, "timepoint_text")
    return text + (f" at {_when(row)}" if pd.notna(months) or pd.notna(words) else "")


def ae_text(row) -> str:
    """One adverse-event statement: 'serious_ae (related) 0/24', with its timing when not the whole
    follow-up and 'vague words' when the words exclude a less defined class."""
    notes = [w for w, show in (("related", row.attribution == "related"),
                                (row.timing, row.timing in ("acute", "delayed")),
                                ("vague words", row.wording == "vague")) if show]
    shown = f" ({', '.join(notes)})" if notes else ""
    return f"{row.event}{shown} {events_text(row)}"


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
    return "; ".join([f"{_count(arm.n)} periods", *parts]) if parts else ""


def arm_text(row) -> str:
    """One row of :func:`describe` as the ``describe`` command heads an arm: 'msc, SPMS, n=10, route IV, courses 1,
    follow-up 12 months', then its overlap and crossover when it has them; what is missing reads 'not reported'. A
    control arm has no route or courses (it received no MSC): they are left out."""
    followup = f"{row.followup_months:g} months" if pd.notna(row.followup_months) else NOT_REPORTED
    facts = [_text(row.group), _text(row.disease), f"n={int(row.n)}" if pd.notna(row.n) else f"n {NOT_REPORTED}"]
    if row.group != "control":
        facts += [f"{what} {NOT_REPORTED if value == 'NR' else value}"
                  for what, value in (("route", row.route), ("courses", row.courses))]
    facts.append(f"follow-up {followup}")
    return ", ".join(facts) + (f", overlap {row.overlap}" if row.overlap else "") + (
        f", crossover: {row.crossover}" if row.crossover else "")


def _text(x) -> str:
    return str(x) if pd.notna(x) else NOT_REPORTED


def describe(evidence: Evidence) -> pd.DataFrame:
    """One row per study arm: n, design, route, courses, follow-up, EDSS, AEs, MRI, effect sizes, crossover
    (periods shared with other arms, see `crossover_text`), grade. A missing n or follow-up stays missing
    (NA); the text columns say "not reported"."""
    edss, ae, mri, shared = evidence.edss, evidence.adverse_events, evidence.mri, evidence.shared_patients
    effects = evidence.table("effect_sizes")
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
            "mri": "; ".join(mri_text(r) for r in m.itertuples(index=False)),
            "effect_sizes": " | ".join(effect_size_text(r) for r in effects[
                (effects.study == arm.study) & (effects.arm == arm.arm)].itertuples(index=False)),
            "overlap": f"{arm.overlap_group} #{arm.overlap_rank}" if pd.notna(arm.overlap_group) else "",
            "crossover": crossover_text(arm, shared),
            "grade": arm.grade if pd.notna(arm.grade) else "",
        })
    return pd.DataFrame(rows)
