"""Figures of the sensitivity tables (:mod:`msc_bayes.sensitivity`): each takes a table first,
keyword-only options after, and returns a matplotlib ``Figure`` (never shown)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from msc_bayes import outcomes
from msc_bayes.sensitivity.base import INTERVAL_LABEL, K_THRESHOLD, QUANTITY_LABELS
from msc_bayes.sweep import LOWER, UPPER
from msc_bayes.viz.common import plain
from msc_bayes.viz.palette import (
    BASE,
    LIKELIHOOD_BAR,
    PRIOR_BAR,
    REFERENCE,
    REFIT,
    REWEIGHTED,
    SEPARATOR,
)

__all__ = [
    "plot_evidence_scenarios",
    "plot_leave_one_out",
    "plot_model_comparison",
    "plot_power_scaling",
    "plot_prior_sensitivity",
    "plot_rho_sensitivity",
    "plot_scenarios",
    "plot_sensitivity_grid",
    "plot_threshold_sensitivity",
]


def plot_scenarios(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, base: str | None = "base",
                   label: str = "scenario", group: str | None = None, sort_by_shift: bool = False,
                   title: str | None = None, reference: float | None = 0.0,
                   units: Mapping[str, str] | None = None) -> Figure:
    """Median and 95% ETI of each scenario (rows), one panel per quantity; the base scenario's
    interval is shaded and its median dashed. Reweighted rows are open circles. A row whose refit had
    divergent transitions (a ``divergences`` column above 0) is marked with :data:`DIVERGENT_MARK` after
    its label, and the legend says so. ``units``: quantity -> its units, for the x axis labels."""
    df = df[df["quantity"].notna()]
    qs = list(dict.fromkeys(df["quantity"])) if quantities is None else [q for q in quantities if q in set(df["quantity"])]
    if not qs:
        raise ValueError("nothing to plot: no rows for the requested quantities")
    keys = ([group] if group else []) + [label]
    rows = list(dict.fromkeys(tuple(r) for r in df[keys].itertuples(index=False)))
    if sort_by_shift and "shift" in df:
        first = df[df["quantity"] == qs[0]]
        mag = {tuple(r[:-1]): abs(float(r[-1])) if pd.notna(r[-1]) else 0.0
               for r in first[keys + ["shift"]].itertuples(index=False)}
        groups = list(dict.fromkeys(r[0] for r in rows)) if group else [None]
        rows = [r for g in groups for r in sorted((r for r in rows if group is None or r[0] == g),
                                                   key=lambda r: (r[-1] != base, -mag.get(r, 0.0)))]
    n = len(rows)
    fig = Figure(figsize=(2.2 + 3.0 * len(qs), 1.2 + 0.28 * n), layout="constrained")
    axes = fig.subplots(1, len(qs), sharey=True, squeeze=False)[0]
    ypos = {r: n - 1 - i for i, r in enumerate(rows)}
    for ax, q in zip(axes, qs):
        sub = df[df["quantity"] == q]
        if base is not None and (sub[label] == base).any():
            b = sub[sub[label] == base].iloc[0]
            ax.axvspan(b[LOWER], b[UPPER], color=BASE, alpha=0.08, lw=0)
            ax.axvline(b["median"], color=BASE, ls="--", lw=1)
        if reference is not None:
            ax.axvline(reference, color=REFERENCE, lw=0.8, ls=":")
        for r in sub.itertuples(index=False):
            key = tuple(getattr(r, k) for k in keys)
            y = ypos[key]
            if not np.isfinite(r.median):
                continue
            rw = getattr(r, "method", "") == "reweight"
            colour = REWEIGHTED if rw else (BASE if getattr(r, label) == base else REFIT)
            ax.plot([getattr(r, LOWER), getattr(r, UPPER)], [y, y], color=colour, lw=1.6)
            ax.plot([r.median], [y], "o", color=colour, mfc="white" if rw else colour, ms=5)
        ax.set_title(plain(QUANTITY_LABELS.get(q, q)), fontsize=9)
        unit = (units or {}).get(q)
        ax.set_xlabel(plain(f"{unit.split(' (')[0]}\nmedian and {INTERVAL_LABEL}" if unit
                            else f"median and {INTERVAL_LABEL}"), fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    divergent = divergent_rows(df, keys)
    axes[0].set_yticks([ypos[r] for r in rows])
    axes[0].set_yticklabels([plain(r[-1]) + (f" {DIVERGENT_MARK}" if r in divergent else "") for r in rows],
                            fontsize=8)
    if group:
        prev = None
        for r in rows:
            if r[0] != prev and prev is not None:
                for ax in axes:
                    ax.axhline(ypos[r] + 0.5, color=SEPARATOR, lw=0.8)
            prev = r[0]
        for g in dict.fromkeys(r[0] for r in rows):
            ys = [ypos[r] for r in rows if r[0] == g]
            axes[-1].annotate(plain(g), xy=(1.02, (max(ys) + 0.5) / n if n else 0), xycoords=("axes fraction", "axes fraction"),
                              fontsize=8, fontweight="bold", va="top", ha="left", annotation_clip=False)
    axes[0].set_ylim(-0.7, n - 0.3)
    handles = []
    if "method" in df and (df["method"] == "reweight").any():
        handles += [Line2D([], [], color=BASE, ls="--", lw=1, label=f"base median (band: base {INTERVAL_LABEL})"),
                    Line2D([], [], color=REFIT, marker="o", label="refit (MCMC or exact)"),
                    Line2D([], [], color=REWEIGHTED, marker="o", mfc="white", label="importance reweighting")]
    if divergent:
        handles.append(Line2D([], [], ls="none", label=f"{DIVERGENT_MARK} the refit had divergent transitions "
                              "(its interval is less trustworthy)"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8, frameon=False)
    if title:
        fig.suptitle(plain(title), fontsize=10)
    return fig


#: The mark after the label of a row whose refit had divergent transitions.
DIVERGENT_MARK = "†"


def divergent_rows(df: pd.DataFrame, keys: Sequence[str]) -> set[tuple]:
    """The rows (tuples of `keys`) of which some quantity's refit had divergent transitions."""
    if "divergences" not in df:
        return set()
    hit = df[pd.to_numeric(df["divergences"], errors="coerce").fillna(0) > 0]
    return {tuple(r) for r in hit[list(keys)].itertuples(index=False)}


def plot_prior_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, title: str | None = None
                           ) -> Figure:
    """:func:`plot_scenarios` of a :func:`prior_sensitivity` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Prior sensitivity (one prior changed at a time)")


def plot_rho_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, title: str | None = None
                         ) -> Figure:
    """:func:`plot_scenarios` of a :func:`rho_sensitivity` table."""
    base = next((s for s in df["scenario"] if str(s).endswith("(prior)")), None)
    return plot_scenarios(df, quantities=quantities, base=base,
                          title=title or "Pre-post correlation rho fixed vs its prior")


def plot_threshold_sensitivity(df: pd.DataFrame, *, quantities: Sequence[str] | None = None,
                               title: str | None = None) -> Figure:
    """:func:`plot_scenarios` of a :func:`threshold_sensitivity` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Default EDSS threshold of category counts")


def plot_evidence_scenarios(df: pd.DataFrame, *, quantities: Sequence[str] | None = None,
                            title: str | None = None) -> Figure:
    """:func:`plot_scenarios` of an :func:`evidence_scenarios` table."""
    return plot_scenarios(df, quantities=quantities, title=title or "Evidence scenarios")


def plot_leave_one_out(df: pd.DataFrame, *, quantities: Sequence[str] | None = None, sort_by_shift: bool = False,
                       title: str | None = None) -> Figure:
    """Each leave-one-study-out posterior against the base (shaded): a study's influence is how
    far its row moves from the base."""
    how = (f"reweighted; exact refits where Pareto k > {K_THRESHOLD:g}"
           if "method" in df and (df["method"] == "reweight").any() else "exact refits")
    return plot_scenarios(df, quantities=quantities, sort_by_shift=sort_by_shift,
                          title=title or f"Leave one study out ({how})")


def plot_power_scaling(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Prior and likelihood power-scaling sensitivity per quantity, with the diagnosis threshold."""
    df = df.reset_index(drop=True)
    n = len(df)
    fig = Figure(figsize=(6.5, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    ax.barh(y + 0.18, df["prior_sensitivity"], height=0.34, color=PRIOR_BAR, label="prior")
    ax.barh(y - 0.18, df["likelihood_sensitivity"], height=0.34, color=LIKELIHOOD_BAR, label="likelihood")
    thr = float(df["threshold"].iloc[0]) if n else 0.05
    ax.axvline(thr, color=BASE, ls="--", lw=1, label=f"threshold {thr:g}")
    ax.set_yticks(y)
    ax.set_yticklabels([plain(f"{q}  [{d}]") for q, d in zip(df["quantity"], df["diagnosis"])], fontsize=8)
    ax.set_xlabel("power-scaling sensitivity (CJS distance gradient)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(plain(title or "Power-scaling sensitivity of the hyperpriors"), fontsize=10)
    return fig


def plot_model_comparison(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """ELPD (leave one study out) of each model with its SE, and the difference to the best with its SE."""
    df = df.sort_values("elpd", ascending=False).reset_index(drop=True)
    n = len(df)
    fig = Figure(figsize=(7.5, 1.4 + 0.45 * n), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)[::-1]
    ax1.errorbar(df["elpd"], y, xerr=df["se"], fmt="o", color=REFIT)
    ax2.errorbar(df["elpd_diff"], y, xerr=df["dse"], fmt="o", color=BASE)
    ax2.axvline(0, color=REFERENCE, lw=0.8, ls=":")
    ax1.set_yticks(y)
    ax1.set_ylim(-0.6, n - 0.4)
    ax1.set_yticklabels([plain(f"{s} (w={w:.2f})") for s, w in zip(df["scenario"], df["weight"])], fontsize=8)
    ax1.set_xlabel("ELPD, leave one study out (± SE)")
    ax2.set_xlabel("ELPD difference to the best (± SE)")
    fig.suptitle(plain(title or "Model comparison (PSIS-LOO, exact refits where Pareto k is high)"), fontsize=10)
    return fig


def plot_sensitivity_grid(table: pd.DataFrame, *, quantities: Sequence[str] | None = None, sort_by_shift: bool = True,
                          title: str | None = None, outcome: str | None = None) -> Figure:
    """Tornado-style grid of :func:`sensitivity_for_report`'s table: scenarios grouped by family
    (sorted by how far they move the first quantity's median), one panel per headline quantity,
    the base interval shaded; rows whose refit had divergent transitions marked. ``outcome`` (the
    fit's outcome name) gives the x axes its headline quantities' units."""
    units = {q.name: q.unit for q in outcomes.get(outcome).headline} if outcome else None
    return plot_scenarios(table, quantities=quantities, group="family", sort_by_shift=sort_by_shift,
                          title=title or "Sensitivity of the headline estimates", units=units)
