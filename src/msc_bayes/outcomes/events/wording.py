"""Which safety statements entered an event model, by how they are worded (``wording``).

``count``: a number of patients is reported; ``none``: the words name the event class and say
none occurred ("no serious adverse events"); ``vague``: words excluding a less defined class
("no major delayed adverse effect"), coded only for the event the words name (``major_ae``,
``significant_ae``, ...), never as ``serious_ae``. A row without a wording (a user's table,
mri.csv) is a statement of no stated wording. The spec option ``statements = "explicit"``
keeps count and none statements only (:mod:`msc_bayes.outcomes.events.prepare`).
"""

from __future__ import annotations

import pandas as pd

from msc_bayes.numbers import plural

#: wording -> how the methods sentence names one of its statements, and several, and what follows the count
_CLASSES = (
    ("count", "explicit count", "explicit counts", ""),
    ("none", "explicit 'none' statement", "explicit 'none' statements", ""),
    ("vague", "vague statement", "vague statements", " coded only for the events their words name"),
)
_UNWORDED = ("statement", "statements", " without a recorded wording")


def _quoted(text) -> str:
    """The statement's words in single quotes (the table's own quotes, if any, not doubled)."""
    if not isinstance(text, str) or not text.strip():
        return "(no words recorded)"
    return "'" + text.strip().strip("'\"").strip() + "'"


def statements(units: pd.DataFrame) -> dict[str, list[tuple[str, str, str]]]:
    """wording ("" = none recorded) -> the distinct (study, event, quoted words) that entered, in unit order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    wording = units["wording"] if "wording" in units.columns else pd.Series(None, index=units.index, dtype=object)
    text = units["event_text"] if "event_text" in units.columns else pd.Series(None, index=units.index, dtype=object)
    for study, event, w, t in zip(units["study"], units["event"], wording, text):
        key = w if isinstance(w, str) and w else ""
        item = (str(study), str(event), _quoted(t))
        if item not in out.setdefault(key, []):
            out[key].append(item)
    return out


def statements_text(units: pd.DataFrame, choice: str = "all") -> str:
    """The methods' sentence listing the statements that entered, per wording class ('' when no
    unit carries a wording, as in mri.csv)."""
    found = statements(units)
    if set(found) <= {""}:
        return ""
    parts = []
    for wording, one, many, rest in (*_CLASSES, ("", *_UNWORDED)):
        items = found.get(wording, [])
        if not items:
            continue
        if wording == "vague":  # grouped by the event the words name
            by_event: dict[str, list[str]] = {}
            for study, event, quoted in items:
                by_event.setdefault(event, []).append(f"{study} {quoted}")
            listing = "; ".join(f"{event}: {', '.join(v)}" for event, v in by_event.items())
        else:
            listing = "; ".join(f"{study} {event} {quoted}" for study, event, quoted in items)
        parts.append(f"{plural(len(items), one, many)}{rest} ({listing})")
    how = "explicit statements only (option statements = 'explicit')" if choice == "explicit" else \
        "every statement (option statements = 'all')"
    return f"Safety statements that entered, {how}: " + "; ".join(parts) + "."
