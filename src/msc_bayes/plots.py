"""Figures of a fit, drawn with matplotlib's object API (Agg canvas; no pyplot, never shown).

Every figure function takes the fit first and keyword-only options after, and returns a
``matplotlib.figure.Figure``. It raises if the fit lacks what it draws: use
:func:`figures_for` to list the figures that apply to a fit. Intervals are the package's
one interval (``INTERVAL_PROB`` equal-tailed), named on every figure.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from msc_bayes.diagnostics import draws_flat, predictive_checks, study_estimates
from msc_bayes.results import (
    interval_columns,
    interval_text,
    is_plumbing,
    quantile_probs,
)

_OBSERVED = "#555555"
_SHRUNK = "#1f5fa8"
_POOLED = "#b2182b"
_PRED = "#e08214"
_SCALE = {
    "edss_change": "EDSS change from baseline (points; negative = improvement)",
    "adverse_events": "per-patient risk of the event over follow-up",
    "mri_activity": "per-patient risk of MRI activity over follow-up",
}


def plain(text: object) -> str:
    """Text safe for matplotlib: no mathtext ($ is literal)."""
    return str(text).replace("$", r"\$")


def to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _outcome(fit) -> str:
    return fit.spec.outcome if fit.spec is not None else json.loads(fit.tree.attrs["spec"])["outcome"]


def _derived(fit):
    return fit.tree["derived"] if "derived" in fit.tree.children else None


def _has(fit, name: str) -> bool:
    d = _derived(fit)
    return d is not None and name in d.data_vars


def _is_risk(fit) -> bool:
    return _has(fit, "risk_arm")


def _interval(x: np.ndarray) -> tuple:
    lo, hi = quantile_probs()
    q = np.quantile(x, [0.5, lo, hi], axis=0)
    return q[0], q[1], q[2]


# --------------------------------------------------------------------------------------
# Forest plot
# --------------------------------------------------------------------------------------


def forest(fit, *, estimates: pd.DataFrame | None = None, evidence=None) -> Figure:
    """Meta-analysis forest plot, drawn by hand.

    Per unit: the observed estimate with its interval where the format gives one (grey
    square), the shrunken estimate (blue dot, median and interval); then the pooled
    estimate (red diamond) and the prediction for a new study (orange).
    """
    est = study_estimates(fit, evidence=evidence) if estimates is None else estimates
    lo_name, hi_name = interval_columns()
    risk = _is_risk(fit)
    pooled_name, new_name = ("risk_pooled", "risk_new") if risk else ("mu", "theta_new")
    pooled_group = "derived" if risk else "posterior"
    U = len(est)
    fig = Figure(figsize=(8.5, 1.6 + 0.32 * (U + 3)))
    ax = fig.subplots()
    y = np.arange(U + 2)[::-1].astype(float)
    for i, r in enumerate(est.itertuples(index=False)):
        yi = y[i]
        if np.isfinite(r.observed):
            if np.isfinite(r.observed_lower):
                ax.hlines(yi + 0.15, r.observed_lower, r.observed_upper, color=_OBSERVED, lw=1)
            ax.plot(r.observed, yi + 0.15, "s", color=_OBSERVED, ms=5, mfc="white")
        ax.hlines(yi - 0.1, getattr(r, f"shrunken_{lo_name}"), getattr(r, f"shrunken_{hi_name}"), color=_SHRUNK, lw=2)
        ax.plot(r.shrunken_median, yi - 0.1, "o", color=_SHRUNK, ms=5)
    med, lo, hi = _interval(draws_flat(fit.tree[pooled_group], pooled_name))
    ax.fill([lo, med, hi, med], [y[U] , y[U] + 0.25, y[U], y[U] - 0.25], color=_POOLED)
    if _has(fit, new_name):
        nm, nl, nh = _interval(draws_flat(fit.tree["derived"], new_name))
        ax.hlines(y[U + 1], nl, nh, color=_PRED, lw=2)
        ax.plot(nm, y[U + 1], "D", color=_PRED, ms=5)
    labels = [plain(f"{r.label}" + (" (control)" if r.group == "control" else "")) for r in est.itertuples(index=False)]
    labels += ["pooled (reference covariates)", "new study (prediction)"]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.8, U + 1.8)
    if not risk:
        ax.axvline(0, color="black", lw=0.6, ls=":")
    ax.set_xlabel(_SCALE.get(_outcome(fit), "theta"))
    ax.set_title(f"Observed (grey, where reported) and shrunken (blue) estimates; {interval_text()}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------
# Priors and posteriors
# --------------------------------------------------------------------------------------


def _prior_grid(prior, x: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(x, [0.001, 0.999])
    width = hi - lo
    a, b = prior.support
    grid = np.linspace(max(lo - 0.5 * width, a), min(hi + 0.5 * width, b), 400)
    return grid[np.isfinite(grid)]


def _prior_posterior_panel(ax, x: np.ndarray, prior, title: str) -> None:
    ax.hist(x, bins=60, density=True, histtype="stepfilled", color=_SHRUNK, alpha=0.55, label="posterior")
    grid = _prior_grid(prior, x)
    ax.plot(grid, np.exp(prior.logpdf(grid)), color=_POOLED, lw=1.5, label="prior")
    med, lo, hi = _interval(x)
    ax.axvline(lo, color=_SHRUNK, ls="--", lw=0.8)
    ax.axvline(hi, color=_SHRUNK, ls="--", lw=0.8)
    ax.set_title(plain(f"{title}: {med:.3g} ({interval_text()} {lo:.3g} to {hi:.3g})"), fontsize=9)
    ax.set_xlabel(plain(f"prior {prior}"), fontsize=7)
    ax.set_yticks([])


def tau_posterior(fit) -> Figure:
    """Posterior of the between-study SD tau (histogram) over its prior density."""
    x = draws_flat(fit.tree["posterior"], "tau")
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    _prior_posterior_panel(ax, x, fit.spec.priors["tau"], "tau (between-study SD)")
    ax.legend(fontsize=8)
    return fig


def hyperparameters(fit) -> list[tuple[str, np.ndarray, object]]:
    """(label, (chain, draw) draws, prior) of every posterior quantity that has a prior of its own name."""
    posterior = fit.tree["posterior"]
    out = []
    for name in fit.spec.priors:  # in the spec's order
        if is_plumbing(name) or name not in posterior.data_vars:
            continue
        da = posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            out.append((name, da.transpose("chain", "draw").values, fit.spec.priors[name]))
            continue
        if len(extra) > 1:
            raise ValueError(f"{name} has dims {extra}: only scalar or vector hyperparameters are plotted")
        da = da.transpose("chain", "draw", extra[0])
        for j, c in enumerate(da[extra[0]].values):
            out.append((f"{name}[{c}]", da.values[..., j], fit.spec.priors[name]))
    return out


def prior_posterior(fit) -> Figure:
    """Prior density (line) against posterior (histogram) for every hyperparameter with a prior."""
    items = hyperparameters(fit)
    cols = 3
    rows = max(1, -(-len(items) // cols))
    fig = Figure(figsize=(11, 2.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (label, x, prior) in zip(axes, items):
        _prior_posterior_panel(ax, x.ravel(), prior, label)
    axes[0].legend(fontsize=7)
    for ax in axes[len(items):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Design: route contrasts, courses, risks
# --------------------------------------------------------------------------------------


def _interval_rows(ax, labels: list[str], x: np.ndarray, *, color: str) -> None:
    med, lo, hi = _interval(x)
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, lo, hi, color=color, lw=2)
    ax.plot(med, y, "o", color=color)
    ax.set_yticks(y, [plain(s) for s in labels], fontsize=8)


def route_contrasts(fit) -> Figure:
    """Route contrasts (derived ``route_contrast``), median and interval."""
    da = fit.tree["derived"]["route_contrast"]
    labels = [str(c) for c in da["contrast"].values]
    fig = Figure(figsize=(7, 1.2 + 0.4 * len(labels)))
    ax = fig.subplots()
    _interval_rows(ax, labels, draws_flat(fit.tree["derived"], "route_contrast"), color=_SHRUNK)
    ax.axvline(0, color="black", lw=0.6, ls=":")
    scale = "log odds ratio" if _is_risk(fit) else "difference in EDSS change (points)"
    ax.set_xlabel(scale)
    ax.set_title(f"Route contrasts, new-study MSC arm; {interval_text()}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def courses_curve(fit) -> Figure:
    """Response by number of courses (``change_by_design``), one panel per route: median and bands.

    Dark band: mean change of arms with that design; light band (``new_study_by_design``,
    when present): a new study's arm mean, including between-study variation.
    """
    derived = fit.tree["derived"]
    da = derived["change_by_design"]
    routes = [str(r) for r in da["route"].values] if "route" in da.dims else [""]
    courses = np.asarray(da["courses"].values, dtype=float)
    x = draws_flat(derived, "change_by_design")
    new = draws_flat(derived, "new_study_by_design") if "new_study_by_design" in derived.data_vars else None
    if "route" not in da.dims:
        x, new = x[:, None, :], None if new is None else new[:, None, :]
    fig = Figure(figsize=(3.2 * len(routes), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(routes), sharey=True))
    for k, (ax, route) in enumerate(zip(axes, routes)):
        if new is not None:
            _, nl, nh = _interval(new[:, k, :])
            ax.fill_between(courses, nl, nh, color=_PRED, alpha=0.18, label="new study")
        med, lo, hi = _interval(x[:, k, :])
        ax.fill_between(courses, lo, hi, color=_SHRUNK, alpha=0.35, label="mean")
        ax.plot(courses, med, color=_SHRUNK)
        ax.axhline(0, color="black", lw=0.6, ls=":")
        ax.set_title(plain(f"route {route}") if route else "", fontsize=9)
        ax.set_xlabel("courses")
    axes[0].set_ylabel("EDSS change (points)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"EDSS change by number of courses; {interval_text()} bands", fontsize=10)
    fig.tight_layout()
    return fig


def event_risks(fit) -> Figure:
    """New-study risks by event type (``risk_new_event``, else ``risk_new``) and by route (``risk_by_route``)."""
    derived = fit.tree["derived"]
    panels = []
    if "risk_new_event" in derived.data_vars:
        panels.append(("by event type", [str(e) for e in derived["risk_new_event"]["event"].values],
                       draws_flat(derived, "risk_new_event")))
    else:
        panels.append(("new study", ["all events"], draws_flat(derived, "risk_new")[:, None]))
    if "risk_by_route" in derived.data_vars:
        panels.append(("by route", [str(r) for r in derived["risk_by_route"]["route"].values],
                       draws_flat(derived, "risk_by_route")))
    height = 1.4 + 0.35 * max(len(p[1]) for p in panels)
    fig = Figure(figsize=(5 * len(panels), height))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, labels, x) in zip(axes, panels):
        _interval_rows(ax, labels, x, color=_SHRUNK)
        ax.set_xscale("log")
        ax.set_xlabel("per-patient risk (log scale)")
        ax.set_title(f"New-study risk {title}; {interval_text()}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Posterior predictive checks and sampler
# --------------------------------------------------------------------------------------


def ppc(fit, *, checks: pd.DataFrame | None = None, evidence=None) -> Figure:
    """Observed numbers (red x) against their posterior predictive intervals (blue), one panel per check."""
    checks = predictive_checks(fit, evidence=evidence) if checks is None else checks
    if checks.empty:
        raise ValueError("no posterior predictive check applies to this fit")
    lo_name, hi_name = interval_columns("replicate_")
    families = list(dict.fromkeys(checks["check"]))
    heights = [len(checks[checks["check"] == f]) for f in families]
    fig = Figure(figsize=(8.5, 1.2 * len(families) + 0.3 * sum(heights)))
    axes = np.atleast_1d(fig.subplots(len(families), 1, height_ratios=[h + 2 for h in heights]))
    for ax, family in zip(axes, families):
        rows = checks[checks["check"] == family]
        y = np.arange(len(rows))[::-1]
        ax.hlines(y, rows[lo_name], rows[hi_name], color=_SHRUNK, lw=2, label=f"replicate {interval_text()}")
        ax.plot(rows["replicate_median"], y, "|", color=_SHRUNK, ms=8)
        ax.plot(rows["observed"], y, "x", color=_POOLED, ms=6, label="observed")
        labels = [plain(f"{r.label}" + ("" if r.statistic == family else f": {r.statistic}"))
                  for r in rows.itertuples(index=False)]
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.set_title(plain(f"Posterior predictive check: {family}"), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    return fig


def rank_plot(fit, *, max_panels: int = 12, bins: int = 20) -> Figure:
    """Rank histograms per chain of the hyperparameters (uniform when the chains mix)."""
    values = [(label, x) for label, x, _ in hyperparameters(fit)][:max_panels]
    cols = 4
    rows = max(1, -(-len(values) // cols))
    fig = Figure(figsize=(11, 2.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (label, x) in zip(axes, values):
        chains, draws = x.shape
        ranks = pd.Series(x.ravel()).rank(method="average").to_numpy().reshape(x.shape)
        edges = np.linspace(0.5, chains * draws + 0.5, bins + 1)
        for c in range(chains):
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax.stairs(counts, edges, lw=1, baseline=None, label=f"chain {c}")
        ax.axhline(draws / bins, color="black", lw=0.6, ls=":")
        ax.set_ylim(0, None)
        ax.set_title(plain(label), fontsize=9)
        ax.set_yticks([])
    for ax in axes[len(values):]:
        ax.set_axis_off()
    fig.suptitle("Rank histograms per chain (flat = chains agree)", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Which figures a fit gets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureSpec:
    key: str
    title: str
    caption: str
    draw: Callable  # (fit, *, context) -> Figure; context: estimates, checks
    applies: Callable  # (fit) -> bool


def _draw_forest(fit, ctx):
    return forest(fit, estimates=ctx["estimates"])


def _draw_ppc(fit, ctx):
    return ppc(fit, checks=ctx["checks"])


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("forest", "Forest plot",
               "Per arm: the estimate the report gives (grey square, with its interval where the format gives one), "
               "the model's shrunken estimate (blue), the pooled estimate at reference covariates (red diamond) "
               "and the prediction for a new study (orange).", _draw_forest, lambda fit: True),
    FigureSpec("tau", "Between-study SD",
               "Posterior of tau (histogram) over its prior density (line); dashed lines: interval ends.",
               lambda fit, ctx: tau_posterior(fit), lambda fit: "tau" in fit.tree["posterior"].data_vars),
    FigureSpec("prior_posterior", "Priors and posteriors of the hyperparameters",
               "Each hyperparameter's prior as written in the spec (line) against its posterior (histogram).",
               lambda fit, ctx: prior_posterior(fit), lambda fit: bool(hyperparameters(fit))),
    FigureSpec("route_contrasts", "Route contrasts",
               "Differences between administration routes for a new study's MSC arm.",
               lambda fit, ctx: route_contrasts(fit), lambda fit: _has(fit, "route_contrast")),
    FigureSpec("courses", "Response by number of courses",
               "Modelled EDSS change by route and number of courses: mean of arms with that design (dark band) "
               "and a new study's arm (light band).",
               lambda fit, ctx: courses_curve(fit),
               lambda fit: _has(fit, "change_by_design") and "courses" in fit.tree["derived"]["change_by_design"].dims),
    FigureSpec("event_risks", "Risks by event type and route",
               "Per-patient risk over follow-up in a new study's MSC arm, by event type and by route.",
               lambda fit, ctx: event_risks(fit), lambda fit: _has(fit, "risk_new")),
    FigureSpec("ppc", "Posterior predictive checks",
               "Each reported number (red x) against the interval of its replicates simulated from the posterior "
               "(blue; tick: median). Observed values far outside their interval point to misfit.",
               _draw_ppc, lambda fit: True),
    FigureSpec("ranks", "Rank plots",
               "Rank histograms of the hyperparameters, one line per chain; flat and overlapping when chains mix.",
               lambda fit, ctx: rank_plot(fit), lambda fit: bool(hyperparameters(fit))),
)


def figures_for(fit, *, checks: pd.DataFrame | None = None) -> list[FigureSpec]:
    """The figures that apply to a fit (the PPC only when some check applies)."""
    out = [f for f in FIGURES if f.applies(fit)]
    if checks is not None and checks.empty:
        out = [f for f in out if f.key != "ppc"]
    return out
