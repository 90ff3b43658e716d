"""The study arms of the evidence that a fitted outcome does not use, and why.

Every arm of ``arms.csv`` that no modelled unit of a fit comes from is listed once per outcome, with the
first reason that applies, in the order the outcome's ``prepare`` selects rows:

1. no rows in the outcome's tables ("no EDSS numbers in the sources read"); when an arm of the same
   overlap group is used, that arm is named (Fernández 2018's dose arms: the combined arm holds the rows);
2. a spec option set them aside: secondary values only (``exclude_secondary``), other event types
   (``events``), attribution, serious only, vague statements (``statements = "explicit"``);
3. an overlapping report: another arm of its overlap group with a lower rank has data (named);
4. a note of the prepare step that names the arm as left out (a covariate not reported, ...);
5. rows present in no format the model uses (EDSS: what the rows report, as :mod:`msc_bayes.evidence.describe`
   writes it).

The arm's own ``note`` in arms.csv is carried beside the reason (``LeftOut.note``): it often says why
(Harris 2024: EDSS Plus, a composite, not EDSS).
"""

from __future__ import annotations

import pandas as pd

from msc_bayes import outcomes
from msc_bayes.evidence.describe import edss_text
from msc_bayes.findings.base import LeftOut

#: an outcome table -> how a reason names its numbers
TABLE_WORDS = {"edss": "EDSS numbers", "patients": "EDSS numbers", "adverse_events": "adverse-event statements",
               "mri": "MRI activity numbers"}


def _fit_of(item):
    """A report's ModelRun (``.fit``) or a Fit."""
    return getattr(item, "fit", item)


def _rows(evidence, tables, study: str, arm: str) -> dict[str, pd.DataFrame]:
    out = {}
    for t in tables:
        df = evidence.table(t)
        if len(df):
            out[t] = df[(df["study"] == study) & (df["arm"] == arm)]
        else:
            out[t] = df
    return out


def _label(study: str, arm: str) -> str:
    return f"{study}:{arm}"


def _overlap_reason(arm, arms: pd.DataFrame, used: set, with_rows: bool) -> str:
    """The used arms of `arm`'s overlap group, in words ('' when it has no group or none is used)."""
    group = arm.overlap_group
    if pd.isna(group):
        return ""
    mates = arms[(arms["overlap_group"] == group) & ~((arms["study"] == arm.study) & (arms["arm"] == arm.arm))]
    kept = [r for r in mates.itertuples(index=False) if (r.study, r.arm) in used]
    if not kept:
        return ""
    names = ", ".join(f"{_label(r.study, r.arm)} (rank {r.overlap_rank:g})" for r in kept)
    if not with_rows:
        return f"its overlap group {group} is counted through {names}"
    return f"left out as an overlapping report: {group} keeps {names}"


def _option_reason(fit, rows: pd.DataFrame, table: str) -> str:
    """Why the spec's options set every row of the arm aside ('' when none does)."""
    opts = fit.spec.options
    if opts.get("exclude_secondary") and "grade" in rows and (rows["grade"] == "secondary").all():
        return "secondary sources only, left out by exclude_secondary"
    if table in ("adverse_events", "mri"):
        events = tuple(opts.get("events") or ())
        if events and not rows["event"].isin(events).any():
            return f"no rows of the event types the spec keeps ({', '.join(events)})"
        attribution = opts.get("attribution")
        if attribution in ("any", "related") and "attribution" in rows and not (rows["attribution"] == attribution).any():
            return f"no rows with attribution {attribution!r} (the spec's)"
        serious = rows["serious"].astype(str).str.lower().eq("true") if "serious" in rows else None
        if opts.get("serious_only") and serious is not None and not serious.any():
            return "no row marked serious (serious_only)"
        if opts.get("statements") == "explicit" and "wording" in rows and rows["wording"].eq("vague").all():
            return "vague safety statements only, left out by statements = 'explicit'"
    return ""


def _note_reason(notes, study: str, arm: str) -> str:
    """A prepare note that says the arm was left out, from 'left out:' on."""
    key = _label(study, arm)
    for n in notes:
        if (n.startswith((key + ":", key + "@", key + " "))) and "left out" in n:
            return n[len(key):].lstrip(":@ ").strip()
    return ""


def _format_reason(table: str, rows: pd.DataFrame, fit) -> str:
    if table == "edss" and len(rows):
        shown = " | ".join(edss_text(r) for r in rows.itertuples(index=False))
        formats = ", ".join(fit.spec.options.get("formats", ()))
        return f"EDSS rows present but in no format the model uses ({formats}): {shown}"
    return f"rows present in {table}.csv but none in a form the model uses"


def left_out_of(fit, evidence) -> tuple[LeftOut, ...]:
    """The arms of `evidence` that `fit` uses no unit of, each with its reason (module docstring)."""
    outcome = fit.spec.outcome
    tables = [t for t in outcomes.get(outcome).tables if t != "arms"]
    units = fit.prepared.units
    used = set(zip(units["study"], units["arm"]))
    notes = list(dict.fromkeys([*getattr(fit.prepared, "notes", ()), *fit.notes]))
    arms = evidence.arms
    words = TABLE_WORDS.get(tables[0], f"{tables[0]} rows") if tables else "rows"
    out = []
    for arm in arms.itertuples(index=False):
        if (arm.study, arm.arm) in used:
            continue
        rows = _rows(evidence, tables, arm.study, arm.arm)
        present = {t: r for t, r in rows.items() if len(r)}
        if not present:
            reason = f"no {words} in the sources read"
            mate = _overlap_reason(arm, arms, used, with_rows=False)
            if mate:
                reason += f"; {mate}"
        else:
            table, first = next(iter(present.items()))
            reason = (_option_reason(fit, first, table) or _overlap_reason(arm, arms, used, with_rows=True)
                      or _note_reason(notes, arm.study, arm.arm) or _format_reason(table, first, fit))
        note = getattr(arm, "note", None)
        n = int(arm.n) if pd.notna(arm.n) else None
        out.append(LeftOut(arm.study, arm.arm, outcome, reason, n, note.strip() if isinstance(note, str) else ""))
    return tuple(out)


def study_sizes(evidence) -> dict[str, int]:
    """study -> its arms' n in arms.csv, an overlap group's outranked arms (a combined arm of the same patients)
    not added again."""
    arms = evidence.arms
    grouped = arms["overlap_group"].notna()
    best = arms[grouped].groupby("overlap_group")["overlap_rank"].transform("min")
    keep = ~(grouped & (arms["overlap_rank"] > best.reindex(arms.index)))
    n = pd.to_numeric(arms.loc[keep, "n"], errors="coerce").fillna(0)
    return {s: int(v) for s, v in n.groupby(arms.loc[keep, "study"], sort=False).sum().items()}


def left_out(runs_or_fits, evidence) -> tuple[LeftOut, ...]:
    """Every arm each fit (a report's ModelRun or a Fit, in order) leaves out, with its reason."""
    return tuple(x for item in runs_or_fits for x in left_out_of(_fit_of(item), evidence))
