"""Response by number of courses (derived ``change_by_design``), one panel per route, with the modelled arms'
numbers of courses marked and the extrapolation beyond them shaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from msc_bayes.results import draws, has, interval_text, median_interval, variable
from msc_bayes.viz.common import plain
from msc_bayes.viz.palette import OBSERVED, PREDICTED, SHRUNK

#: The shade of the range beyond the modelled arms' numbers of courses.
EXTRAPOLATED = "#d9d9d9"
#: The ``gid`` of that shade (one per panel that has one).
EXTRAPOLATED_GID = "extrapolated"


def modelled_courses(units: pd.DataFrame, route: str | None) -> list[tuple[float, float]]:
    """(fewest, most) courses of each modelled MSC arm of `route` (every route when None): a known number
    twice, a reported range as its ends (the model's latent number lies in it)."""
    msc = units[units["group"].fillna("msc") != "control"] if "group" in units.columns else units
    if route is not None and "route" in msc.columns:
        msc = msc[msc["route"].astype("string") == route]
    out = []
    for r in msc.to_dict("records"):
        known = pd.to_numeric(pd.Series([r.get("courses")]), errors="coerce").iloc[0]
        if pd.notna(known):
            out.append((float(known), float(known)))
        elif pd.notna(r.get("courses_min")) and pd.notna(r.get("courses_max")):
            out.append((float(r["courses_min"]), float(r["courses_max"])))
    return out


def courses_curve(fit) -> Figure:
    """Response by number of courses (``change_by_design``), one panel per route: median and bands.

    Dark band: mean change of arms with that design; light band (``new_study_by_design``,
    when present): a new study's arm mean, including between-study variation. Under each curve the
    modelled MSC arms of the route (a point per arm with a known number of courses, a bar per reported
    range); beyond the largest of them the curve is an extrapolation, shaded grey.
    """
    da = variable(fit, "change_by_design")
    routes = [str(r) for r in da["route"].values] if "route" in da.dims else [""]
    courses = np.asarray(da["courses"].values, dtype=float)
    x = draws(fit, "change_by_design")
    new = draws(fit, "new_study_by_design") if has(fit, "new_study_by_design") else None
    if "route" not in da.dims:
        x, new = x[:, None, :], None if new is None else new[:, None, :]
    fig = Figure(figsize=(3.2 * len(routes), 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(routes), sharey=True))
    units = fit.prepared.units
    for k, (ax, route) in enumerate(zip(axes, routes)):
        arms = modelled_courses(units, route or None)
        most = max((hi for _, hi in arms), default=-np.inf)
        if most < courses.max():
            ax.axvspan(max(most, courses.min()), courses.max(), color=EXTRAPOLATED, alpha=0.6, lw=0,
                       gid=EXTRAPOLATED_GID)
        if new is not None:
            _, nl, nh = median_interval(new[:, k, :])
            ax.fill_between(courses, nl, nh, color=PREDICTED, alpha=0.18)
        med, lo, hi = median_interval(x[:, k, :])
        ax.fill_between(courses, lo, hi, color=SHRUNK, alpha=0.35)
        ax.plot(courses, med, color=SHRUNK)
        ax.axhline(0, color="black", lw=0.6, ls=":")
        _mark_arms(ax, arms)
        ax.set_title(plain(f"route {route}") + f" ({len(arms)} arm{'s' if len(arms) != 1 else ''})" if route else "",
                     fontsize=9)
        ax.set_xlabel("number of courses")
        ax.set_xlim(courses.min() - 0.3, courses.max() + 0.3)
    axes[0].set_ylabel("EDSS change from baseline (points)")
    handles = [Patch(color=SHRUNK, alpha=0.35, label=f"mean change of arms with that design ({interval_text()})"),
               Line2D([], [], color=OBSERVED, marker="|", ls="-", label="modelled MSC arms (point: known number; "
                      "bar: reported range)"),
               Patch(color=EXTRAPOLATED, alpha=0.6, label="beyond the modelled arms: extrapolated")]
    if new is not None:
        handles.insert(1, Patch(color=PREDICTED, alpha=0.18, label=f"a new study's arm ({interval_text()})"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    fig.suptitle(f"EDSS change by number of courses; medians and {interval_text()} bands", fontsize=10)
    return fig


def _mark_arms(ax, arms: list[tuple[float, float]]) -> None:
    """The modelled arms along the panel's bottom: a tick per known number of courses, a bar per range
    (stacked a little apart so that arms at the same number stay countable)."""
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for i, (lo, hi) in enumerate(sorted(arms)):
        yy = 0.04 + 0.025 * i
        if hi > lo:
            ax.plot([lo, hi], [yy, yy], color=OBSERVED, lw=1.5, marker="|", ms=5, transform=transform)
        else:
            ax.plot([lo], [yy], "o", color=OBSERVED, ms=4, transform=transform)
