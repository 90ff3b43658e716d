"""Which figures a fit gets: each figure's key (its file name), title, caption, how it is drawn and when it applies.

The report writes ``figures/<model key>_<figure key>.png`` for every figure of :func:`figures_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd

from msc_bayes import INTERVAL_PROB, outcomes
from msc_bayes.results import has, interval_text, variable, where
from msc_bayes.viz.common import (
    hyperparameters,
    is_risk,
    outcome,
    reference_words,
    scale_units,
)
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
    """A figure a fit can get. ``title`` and ``caption`` are text, or ``(fit) -> text`` where the words depend
    on the outcome (:func:`figures_for` returns them as text)."""

    key: str
    title: str | Callable
    caption: str | Callable
    draw: Callable  # (fit, context) -> Figure; context: estimates, checks
    applies: Callable  # (fit) -> bool


def _draw_forest(fit, ctx):
    return forest(fit, estimates=ctx["estimates"])


def _draw_ppc(fit, ctx):
    return ppc(fit, checks=ctx["checks"])


def _has_courses(fit) -> bool:
    return has(fit, "change_by_design") and "courses" in variable(fit, "change_by_design").dims


def _is_mri(fit) -> bool:
    return outcome(fit) == "mri_activity"


def _forest_caption(fit) -> str:
    ref = reference_words(fit)
    where = f"at the reference covariates ({ref})" if ref else "(the model has no covariates)"
    if is_risk(fit):
        what = "MRI activity" if _is_mri(fit) else "the event"
        rows = ("One row per study arm and " + ("MRI measure" if _is_mri(fit) else "event type")
                + f" (n: patients at risk; follow-up in months): the reported proportion of patients with {what} "
                f"(grey square, with its Jeffreys {INTERVAL_PROB:.0%} interval; a triangle at the left end marks "
                "a reported 0, which a logit axis cannot show) and the model's shrunken risk (blue, median and "
                f"{interval_text()}).")
        contrast = (" The lower panel is a different quantity: the odds ratio of MSC versus control arms "
                    "(below 1: lower odds on MSC)." if has(fit, "msc_effect") else "")
        axis = " Risks are on a logit axis in percent."
    elif has(fit, "rate_arm"):  # event rates (msc_bayes.outcomes.rates)
        rows = ("One row per study arm and event type (n: patients; follow-up in months): the reported log event "
                f"rate per unit of exposure (grey square, log(events / exposure), with its Jeffreys {INTERVAL_PROB:.0%} "
                "interval; none for 0 events) and the model's shrunken log rate (blue, median and "
                f"{interval_text()}).")
        contrast = (" The last row is the MSC-minus-control log rate ratio (open diamond; below 0: fewer events "
                    "on MSC)." if has(fit, "msc_effect") else "")
        axis = " Log rates are per person-year (or per administration): 100·exp(x) events per 100."
    elif outcome(fit) != "edss_change":  # an effect size (msc_bayes.outcomes.effect_size) or a registered outcome
        words = outcomes.get(outcome(fit)).words or "estimate"
        rows = (f"One row per study arm (n: patients; follow-up in months): the reported {words} (grey square, "
                f"with its {INTERVAL_PROB:.0%} confidence interval) and the model's shrunken estimate (blue, median "
                f"and {interval_text()}), in {scale_units(fit)}.")
        contrast = (" The last row is the MSC-minus-control difference (open diamond)." if has(fit, "msc_effect")
                    else "")
        axis = ""
    else:
        rows = ("One row per study arm (n: patients; follow-up in months): the reported mean EDSS change (grey "
                f"square, with its {INTERVAL_PROB:.0%} confidence interval where the format gives one; "
                "'(counts)' where only counts of improved/stable/worsened patients were reported) and the "
                f"model's shrunken mean change (blue, median and {interval_text()}).")
        contrast = (" The last row is the MSC-minus-control difference in mean change (open diamond; below 0 "
                    "favours MSC)." if has(fit, "msc_effect") else "")
        axis = " Negative changes are improvements."
    return (f"{rows} Red diamond: the pooled estimate for MSC arms {where}; orange: the prediction for a new "
            f"study's MSC arm, including between-study variation.{contrast}{axis} The right-hand columns "
            "write the same numbers.")


def _risks_title(fit) -> str:
    return "Risk of MRI activity by MRI measure" if _is_mri(fit) else "Risks by event type and route"


def _risks_caption(fit) -> str:
    if _is_mri(fit):
        return ("The per-patient risk of MRI activity over follow-up in a new study's MSC arm, for each MRI "
                f"measure the studies report: median and {interval_text()}, on a logit axis in percent.")
    by_route = ", and by administration route" if has(fit, "risk_by_route") else ""
    return ("The per-patient risk of at least one event over follow-up in a new study's MSC arm, by event type"
            f"{by_route}: median and {interval_text()}, on a logit axis in percent.")


def _contrasts_caption(fit) -> str:
    if is_risk(fit):
        return ("Odds ratios of the event between administration routes for a new study's MSC arm (first route "
                f"over second; below 1: lower odds on the first route): median and {interval_text()}, log axis.")
    if has(fit, "rate_arm"):
        return ("Rate ratios of events between administration routes for a new study's MSC arm (first route over "
                f"second; below 1: fewer events on the first route): median and {interval_text()}, log axis.")
    if outcome(fit) != "edss_change":
        return (f"Differences in {outcomes.get(outcome(fit)).words or 'the estimate'} between administration routes "
                f"for a new study's MSC arm (first route minus second), in {scale_units(fit)}: median and "
                f"{interval_text()}.")
    return ("Differences in mean EDSS change between administration routes for a new study's MSC arm (first "
            f"route minus second; below 0: the first route improves more), in points: median and {interval_text()}.")


def _tau_caption(fit) -> str:
    return (f"The between-study SD tau ({scale_units(fit)}): its posterior (histogram) over its prior density (line); "
            f"dashed lines: the ends of the {interval_text()}.")


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("forest", "Forest plot", _forest_caption, _draw_forest, lambda fit: True),
    FigureSpec("tau", "Between-study SD", _tau_caption,
               lambda fit, ctx: tau_posterior(fit), lambda fit: where(fit, "tau") == "posterior"),
    FigureSpec("prior_posterior", "Priors and posteriors of the hyperparameters",
               "Each hyperparameter's prior as written in the spec (line) against its posterior (histogram); the "
               f"title gives the posterior median and {interval_text()}.",
               lambda fit, ctx: prior_posterior(fit), lambda fit: bool(hyperparameters(fit))),
    FigureSpec("route_contrasts", "Route contrasts", _contrasts_caption,
               lambda fit, ctx: route_contrasts(fit), lambda fit: has(fit, "route_contrast")),
    FigureSpec("courses", "EDSS change by number of courses",
               "Modelled mean EDSS change (points) by number of courses, one panel per route: the mean of arms "
               f"with that design (dark band) and a new study's arm (light band), medians and {interval_text()}. "
               "Under the curves, the modelled MSC arms of that route (a point per arm with a known number of "
               "courses, a bar per reported range); beyond the largest of them the curve is an extrapolation of "
               "the model, shaded grey.",
               lambda fit, ctx: courses_curve(fit), _has_courses),
    FigureSpec("event_risks", _risks_title, _risks_caption,
               lambda fit, ctx: event_risks(fit), lambda fit: has(fit, "risk_new")),
    FigureSpec("ppc", "Posterior predictive checks",
               "Each reported number (red x) against the interval of its replicates simulated from the posterior "
               f"(blue, {interval_text()}; tick: median). Observed values far outside their interval point to misfit.",
               _draw_ppc, lambda fit: True),
    FigureSpec("ranks", "Rank plots",
               "Fractional ranks of the hyperparameters over all chains, one line per chain: the difference between "
               "each chain's rank ECDF and the uniform one, near 0 when the chains mix; p is the multi-chain "
               "uniformity test.",
               lambda fit, ctx: rank_plot(fit), lambda fit: bool(hyperparameters(fit))),
)


def figures_for(fit, *, checks: pd.DataFrame | None = None) -> list[FigureSpec]:
    """The figures that apply to a fit (the PPC only when some check applies), titles and captions as text."""
    out = [f for f in FIGURES if f.applies(fit)]
    if checks is not None and checks.empty:
        out = [f for f in out if f.key != "ppc"]
    return [replace(f, title=_text(f.title, fit), caption=_text(f.caption, fit)) for f in out]


def _text(words: str | Callable, fit) -> str:
    return words(fit) if callable(words) else words
