"""The meta-analysis forest plot, drawn by hand in the metafor / bayesmeta style.

One row per modelled unit (study arm, and event type for event models), labelled with its study, arm,
n and follow-up: the reported estimate (grey square, with its interval where the format gives one)
and the model's shrunken estimate (blue); then the pooled estimate at the reference covariates (red
diamond), the prediction for a new study (orange) and, when a control arm is modelled, the MSC-vs-control
contrast (a difference in points for EDSS on the same axis; an odds ratio on its own log axis for event
models). A text column on the right writes each row's numbers. Risks are drawn on a logit axis in percent.
arviz-plots' forest plot shows posteriors only; this one puts each arm's reported estimate beside the
model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from msc_bayes import INTERVAL_PROB
from msc_bayes.diagnostics import study_estimates
from msc_bayes.evidence.labels import study_label
from msc_bayes.results import (
    draws,
    has,
    interval_columns,
    interval_text,
    median_interval,
)
from msc_bayes.viz.common import (
    axis_label,
    estimate_text,
    is_risk,
    odds_axis,
    plain,
    reference_words,
    risk_axis,
    words,
)
from msc_bayes.viz.palette import OBSERVED, POOLED, PREDICTED, SHRUNK

#: Header of the text columns.
REPORTED_HEADER = f"reported [{INTERVAL_PROB:.0%} CI]"
@dataclass(frozen=True)
class Row:
    """One row of the forest: its label, the reported estimate and the model's (median, lower, upper)."""

    label: str
    kind: str  # "unit", "pooled", "prediction", "contrast"
    reported: tuple[float, float, float]
    model: tuple[float, float, float]
    #: what the reported column says when the format gives no estimate of the model's quantity, e.g. "(counts)"
    reported_as: str = ""


def forest(fit, *, estimates: pd.DataFrame | None = None, evidence=None) -> Figure:
    """Meta-analysis forest plot (see the module docstring); returns the figure, never shows it.

    The plot's axes come first in ``fig.axes`` (then the contrast's odds-ratio axes of an event model
    with a control arm); the text columns are an axes of their own with its axis off.
    """
    est = study_estimates(fit, evidence=evidence) if estimates is None else estimates
    risk = is_risk(fit)
    rows = unit_rows(fit, est) + summary_rows(fit)
    odds = [r for r in rows if risk and r.kind == "contrast"]
    rows = [r for r in rows if not (risk and r.kind == "contrast")]
    n_main, n_odds = len(rows), len(odds)
    height = 1.5 + 0.3 * (n_main + 1) + (0.8 + 0.3 * n_odds if n_odds else 0)
    fig = Figure(figsize=(11, height), layout="constrained")
    grid = fig.add_gridspec(2 if n_odds else 1, 2, width_ratios=[3.0, 2.0],
                            height_ratios=[n_main + 2.5, n_odds + 1.5] if n_odds else None)
    ax = fig.add_subplot(grid[0, 0])
    text_ax = fig.add_subplot(grid[0, 1], sharey=ax)
    y = np.arange(n_main, 0, -1, dtype=float)
    edge = _draw_rows(ax, rows, y, risk=risk)
    n_units = sum(r.kind == "unit" for r in rows)
    ax.axhline(y[n_units - 1] - 0.5 if n_units else n_main + 0.5, color="#999999", lw=0.6)
    if risk:
        risk_axis(ax, edge, label=axis_label(fit))
        zero = [yi + 0.14 for r, yi in zip(rows, y) if r.reported[0] == 0]
        # a reported 0 lies off a logit axis: a triangle at its left end
        ax.plot(np.full(len(zero), 0.012), zero, "<", color=OBSERVED, ms=6, mfc="white",
                transform=ax.get_yaxis_transform())
    else:
        ax.axvline(0, color="black", lw=0.6, ls=":")
        ax.set_xlabel(plain(axis_label(fit)))
    ax.set_yticks(y, [plain(r.label) for r in rows], fontsize=8)
    ax.set_ylim(0.3, n_main + 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(fit), fontsize=9)
    _text_columns(text_ax, rows, y, risk=risk, top=n_main + 0.75)
    if n_odds:
        _odds_panel(fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1]), odds)
    return fig


def unit_rows(fit, est: pd.DataFrame) -> list[Row]:
    """One row per modelled unit of the study-estimates table, in its order."""
    lo_name, hi_name = interval_columns()
    units = fit.prepared.units.set_index("label") if fit.prepared is not None else pd.DataFrame()
    out = []
    for r in est.to_dict("records"):
        unit = units.loc[r["label"]] if r["label"] in units.index else pd.Series(dtype=object)
        out.append(Row(row_label(r, unit), "unit", (r["observed"], r["observed_lower"], r["observed_upper"]),
                       (r["shrunken_median"], r[f"shrunken_{lo_name}"], r[f"shrunken_{hi_name}"]),
                       "" if np.isfinite(r["observed"]) or not r["used"] else f"({words(r['used'])})"))
    return out


def summary_rows(fit) -> list[Row]:
    """The pooled row, the prediction row (when derived) and the MSC-vs-control contrast (when modelled).

    An event model's contrast is an odds ratio (exp of ``msc_effect``, the log odds ratio).
    """
    risk = is_risk(fit)
    pooled, new = ("risk_pooled", "risk_new") if risk else ("mu", "theta_new")
    none = (np.nan, np.nan, np.nan)
    out = [Row("Pooled: MSC arms", "pooled", none, _mli(draws(fit, pooled)))]
    if has(fit, new):
        out.append(Row("New study's MSC arm (prediction)", "prediction", none, _mli(draws(fit, new))))
    if has(fit, "msc_effect"):
        x = draws(fit, "msc_effect")
        label = "MSC vs control (odds ratio)" if risk else "MSC minus control (difference)"
        out.append(Row(label, "contrast", none, _mli(np.exp(x) if risk else x)))
    return out


def row_label(r: dict, unit: pd.Series) -> str:
    """A unit's label: study (first author and year), arm, event type, control, n and follow-up,
    e.g. "Petrou 2020, MSC IT  n=30  6 mo"."""
    parts = [study_label(r["study"], unit.get("citation"))]
    if str(r["arm"]) != "all":
        parts.append(words(r["arm"]))
    if isinstance(unit.get("event"), str):
        parts.append(words(unit["event"]))
    text = ", ".join(parts) + (" (control)" if r["group"] == "control" else "")
    if pd.notna(r["n"]):
        text += f"  n={float(r['n']):g}"
    months = r.get("followup_months", np.nan)
    if pd.notna(months):
        text += f"  {float(months):.3g} mo"
    return text


def _mli(x: np.ndarray) -> tuple[float, float, float]:
    med, lo, hi = median_interval(x)
    return float(med), float(lo), float(hi)


def _draw_rows(ax, rows: list[Row], y: np.ndarray, *, risk: bool) -> list[float]:
    """Draw each row's marks; return every value the x axis must hold."""
    held = []
    for r, yi in zip(rows, y):
        (o, ol, oh), (m, lo, hi) = r.reported, r.model
        held += [lo, hi, m]
        if np.isfinite(o):
            if np.isfinite(ol):
                ax.hlines(yi + 0.14, ol, oh, color=OBSERVED, lw=1)
                held += [ol, oh]
            if not (risk and o == 0):
                ax.plot(o, yi + 0.14, "s", color=OBSERVED, ms=5, mfc="white")
                held.append(o)
        if r.kind == "pooled":
            ax.fill([lo, m, hi, m], [yi, yi + 0.28, yi, yi - 0.28], color=POOLED)
        elif r.kind == "prediction":
            ax.hlines(yi, lo, hi, color=PREDICTED, lw=2)
            ax.plot(m, yi, "D", color=PREDICTED, ms=5)
        elif r.kind == "contrast":
            ax.fill([lo, m, hi, m], [yi, yi + 0.28, yi, yi - 0.28], facecolor="white", edgecolor=POOLED, lw=1.5)
        else:
            ax.hlines(yi - 0.1, lo, hi, color=SHRUNK, lw=2)
            ax.plot(m, yi - 0.1, "o", color=SHRUNK, ms=5)
    return held


#: Where the text columns start, in the text axes' width (reported, model).
TEXT_COLUMNS = (0.0, 0.5)


def _text_columns(ax, rows: list[Row], y: np.ndarray, *, risk: bool, top: float, odds: bool = False) -> None:
    """The right-hand columns: the reported estimate and the model's, as text, on an axes with its axis off."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    left, right = TEXT_COLUMNS
    if not odds:
        ax.text(left, top, REPORTED_HEADER, fontsize=8, fontweight="bold", va="center")
    ax.text(right, top, f"model, median [{interval_text()}]", fontsize=8, fontweight="bold", va="center")
    for r, yi in zip(rows, y):
        as_risk = risk and not odds
        reported = estimate_text(*r.reported, risk=as_risk) or r.reported_as
        ax.text(left, yi, reported, fontsize=8, va="center", color=OBSERVED)
        ax.text(right, yi, estimate_text(*r.model, risk=as_risk), fontsize=8, va="center")


def _odds_panel(ax, text_ax, rows: list[Row]) -> None:
    """The MSC-vs-control odds ratio of an event model, on its own log axis (a different quantity from the risks)."""
    y = np.arange(len(rows), 0, -1, dtype=float)
    held = _draw_rows(ax, rows, y, risk=False)
    odds_axis(ax, held)
    ax.set_yticks(y, [plain(r.label) for r in rows], fontsize=8)
    ax.set_ylim(0.3, len(rows) + 0.9)
    ax.set_xlabel("odds ratio, MSC vs control (log scale; < 1: lower odds on MSC)")
    ax.grid(axis="x", alpha=0.3)
    text_ax.sharey(ax)
    _text_columns(text_ax, rows, y, risk=False, top=len(rows) + 0.6, odds=True)


def _title(fit) -> str:
    ref = reference_words(fit)
    where = f"at {ref}" if ref else "(no covariates)"
    return (f"Reported (grey, where given) and model (blue) estimates per arm; {interval_text()}\n"
            f"Pooled and prediction: MSC arms {where}")
