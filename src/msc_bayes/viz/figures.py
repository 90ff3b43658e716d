"""Which figures a fit gets: each figure's key (its file name), title, caption, how it is drawn and when it applies.

The report writes ``figures/<model key>_<figure key>.png`` for every figure of :func:`figures_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from msc_bayes.results import has, variable, where
from msc_bayes.viz.common import hyperparameters
from msc_bayes.viz.contrasts import route_contrasts
from msc_bayes.viz.courses import courses_curve
from msc_bayes.viz.event_risks import event_risks
from msc_bayes.viz.forest import forest
from msc_bayes.viz.ppc import ppc
from msc_bayes.viz.prior_posterior import prior_posterior
from msc_bayes.viz.ranks import rank_plot
from msc_bayes.viz.tau import tau_posterior


@dataclass(frozen=True)
class FigureSpec:
    key: str
    title: str
    caption: str
    draw: Callable  # (fit, context) -> Figure; context: estimates, checks
    applies: Callable  # (fit) -> bool


def _draw_forest(fit, ctx):
    return forest(fit, estimates=ctx["estimates"])


def _draw_ppc(fit, ctx):
    return ppc(fit, checks=ctx["checks"])


def _has_courses(fit) -> bool:
    return has(fit, "change_by_design") and "courses" in variable(fit, "change_by_design").dims


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("forest", "Forest plot",
               "Per arm: the estimate the report gives (grey square, with its interval where the format gives one), "
               "the model's shrunken estimate (blue), the pooled estimate at reference covariates (red diamond) "
               "and the prediction for a new study (orange).", _draw_forest, lambda fit: True),
    FigureSpec("tau", "Between-study SD",
               "Posterior of tau (histogram) over its prior density (line); dashed lines: interval ends.",
               lambda fit, ctx: tau_posterior(fit), lambda fit: where(fit, "tau") == "posterior"),
    FigureSpec("prior_posterior", "Priors and posteriors of the hyperparameters",
               "Each hyperparameter's prior as written in the spec (line) against its posterior (histogram).",
               lambda fit, ctx: prior_posterior(fit), lambda fit: bool(hyperparameters(fit))),
    FigureSpec("route_contrasts", "Route contrasts",
               "Differences between administration routes for a new study's MSC arm.",
               lambda fit, ctx: route_contrasts(fit), lambda fit: has(fit, "route_contrast")),
    FigureSpec("courses", "Response by number of courses",
               "Modelled EDSS change by route and number of courses: mean of arms with that design (dark band) "
               "and a new study's arm (light band).",
               lambda fit, ctx: courses_curve(fit), _has_courses),
    FigureSpec("event_risks", "Risks by event type and route",
               "Per-patient risk over follow-up in a new study's MSC arm, by event type and by route.",
               lambda fit, ctx: event_risks(fit), lambda fit: has(fit, "risk_new")),
    FigureSpec("ppc", "Posterior predictive checks",
               "Each reported number (red x) against the interval of its replicates simulated from the posterior "
               "(blue; tick: median). Observed values far outside their interval point to misfit.",
               _draw_ppc, lambda fit: True),
    FigureSpec("ranks", "Rank plots",
               "Fractional ranks of the hyperparameters over all chains, one line per chain: the difference between "
               "each chain's rank ECDF and the uniform one, near 0 when the chains mix; p is the multi-chain "
               "uniformity test.",
               lambda fit, ctx: rank_plot(fit), lambda fit: bool(hyperparameters(fit))),
)


def figures_for(fit, *, checks: pd.DataFrame | None = None) -> list[FigureSpec]:
    """The figures that apply to a fit (the PPC only when some check applies)."""
    out = [f for f in FIGURES if f.applies(fit)]
    if checks is not None and checks.empty:
        out = [f for f in out if f.key != "ppc"]
    return out
