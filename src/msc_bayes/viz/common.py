"""What the figures of a fit share: safe text, PNG bytes, the interval, rows of intervals, the hyperparameters,
an estimate as figures write it, the risk axis (logit, ticks in %) and the reference covariates in words.

Figures are drawn with matplotlib's object API (Agg canvas; no pyplot state, never shown); the
interval is the package's one interval (``INTERVAL_PROB`` equal-tailed), named on every figure.
A fit is read only through :mod:`msc_bayes.results`.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator
from scipy.special import expit

from msc_bayes import outcomes
from msc_bayes.numbers import fmt
from msc_bayes.numbers import risk as risk_text
from msc_bayes.results import (
    attr_json,
    cells,
    group,
    has,
    is_plumbing,
    median_interval,
    reference_covariates,
)


def plain(text: object) -> str:
    """Text safe for matplotlib: no mathtext ($ is literal)."""
    return str(text).replace("$", r"\$")


#: Arm and event codes' words as row labels write them (acronyms in capitals).
WORDS = {w: w.upper() for w in ("msc", "it", "iv", "ms", "nmo", "spms", "rrms", "ppms", "np", "ae", "t1", "t2")} | {
    "gd": "Gd"}
def words(code: object) -> str:
    """An arm or event code in words: underscores as spaces, acronyms in capitals ("msc_it" -> "MSC IT")."""
    return " ".join(WORDS.get(t.lower(), t) for t in str(code).split("_"))


def to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def outcome(fit) -> str:
    """The fit's outcome (from its spec, else from the spec stored in its attrs)."""
    return fit.spec.outcome if fit.spec is not None else attr_json(fit, "spec")["outcome"]


def scale_units(fit) -> str:
    """The units of the fit's model scale (tau, covariate effects), as its outcome declares them
    (`Outcome.scale_units`: "EDSS points", "log odds", "log rate", an effect size's own unit)."""
    return outcomes.get(outcome(fit)).units_of(fit.spec) or "the model's scale"


def is_risk(fit) -> bool:
    """Whether the fit is an event-risk model (its derived group holds per-arm risks)."""
    return has(fit, "risk_arm")


def interval_rows(ax, labels: list[str], x: np.ndarray, *, color: str) -> None:
    """One row per label, top to bottom: the interval of each column of `x` (samples, labels) and its median."""
    med, lo, hi = median_interval(x)
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, lo, hi, color=color, lw=2)
    ax.plot(med, y, "o", color=color)
    ax.set_yticks(y, [plain(s) for s in labels], fontsize=8)


def hyperparameters(fit) -> list[tuple[str, np.ndarray, object]]:
    """(label, (chain, draw) draws, prior) of every posterior quantity that has a prior of its own name."""
    posterior = group(fit, "posterior")
    out = []
    for name in fit.spec.priors:  # in the spec's order
        if is_plumbing(name) or name not in posterior.data_vars:
            continue
        extra = [d for d in posterior[name].dims if d not in ("chain", "draw")]
        if len(extra) > 1:
            raise ValueError(f"{name} has dims {extra}: only scalar or vector hyperparameters are plotted")
        out.extend((label, x, fit.spec.coefficient_prior(label[len("beta["):-1]) if name == "beta"
                    else fit.spec.priors[name]) for label, x in cells(fit, name).items())  # each coefficient's own
    return out


# --------------------------------------------------------------------------------------
# An estimate as figures write it (the numbers' rules: msc_bayes.numbers)
# --------------------------------------------------------------------------------------


def estimate_text(median: float, lower: float, upper: float, *, risk: bool = False) -> str:
    """An estimate and its interval as the forest's text column writes it, e.g. "−0.20 [−0.30, −0.09]",
    "0.37% [0.018%, 3.3%]"; an estimate without an interval alone; "" when there is no estimate."""
    if not np.isfinite(median):
        return ""
    f = risk_text if risk else fmt
    if not (np.isfinite(lower) and np.isfinite(upper)):
        return f(median)
    return f"{f(median)} [{f(lower)}, {f(upper)}]"


# --------------------------------------------------------------------------------------
# The risk axis
# --------------------------------------------------------------------------------------

#: Ticks of a risk axis: decades and the middle, and finer steps when the axis spans little.
RISK_TICKS = (1e-5, 1e-4, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99)
RISK_FINE_TICKS = (0.02, 0.05, 0.2, 0.3, 0.7, 0.8, 0.95)
#: The smallest risk a risk axis shows (0.01%): lower interval ends of a few patients without an event
#: (e.g. Jeffreys' 0.002% for 0/24) run off the axis rather than squash every risk to its right.
RISK_FLOOR = 1e-4


def risk_limits(values) -> tuple[float, float]:
    """Limits of a logit risk axis holding every risk strictly between 0 and 1 in `values` (down to
    :data:`RISK_FLOOR`), with a margin."""
    x = np.asarray([v for v in np.ravel(values) if np.isfinite(v) and 0 < v < 1], dtype=float)
    if x.size == 0:
        return 0.01, 0.99
    x = np.clip(x, RISK_FLOOR, 1 - RISK_FLOOR)
    logit = np.log(x / (1 - x))
    lo, hi = logit.min(), logit.max()
    pad = 0.06 * max(hi - lo, 1.0)
    return float(expit(lo - pad)), float(expit(hi + pad))


def risk_axis(ax, values, *, label: str) -> tuple[float, float]:
    """A logit x axis over the risks `values`, ticks in percent (0.1%, 1%, 10%, 50%, ...), no minor labels;
    returns its limits."""
    lo, hi = risk_limits(values)
    ax.set_xscale("logit")
    ax.set_xlim(lo, hi)
    ticks = [t for t in RISK_TICKS if lo <= t <= hi]
    if len(ticks) < 3:
        ticks = sorted(ticks + [t for t in RISK_FINE_TICKS if lo <= t <= hi])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick_percent(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(plain(label))
    return lo, hi


#: Ticks of an odds-ratio axis.
ODDS_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def odds_axis(ax, values) -> None:
    """A log x axis over the odds ratios `values` (and 1), plain ticks (0.2, 0.5, 1, 2, 5), a dotted line at 1."""
    x = np.asarray([v for v in np.ravel(values) if np.isfinite(v) and v > 0], dtype=float)
    lo, hi = min(x.min(initial=1.0), 1.0) / 1.3, max(x.max(initial=1.0), 1.0) * 1.3
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator([t for t in ODDS_TICKS if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(1, color="black", lw=0.6, ls=":")


def _tick_percent(p: float) -> str:
    """A tick's risk in percent as it is (ticks are round numbers: "0.001%", "50%"), not rounded like an estimate."""
    pct = 100 * p
    return f"{pct:.10g}%"


# --------------------------------------------------------------------------------------
# The reference covariates in words
# --------------------------------------------------------------------------------------


def reference_words(fit) -> str:
    """Where the pooled estimates hold, in words, e.g. "route IV, 1 course, 12 months' follow-up";
    "" when the model has no covariates. Event models add the outcome's suffix ("typical event type")."""
    parts = []
    for name, value in reference_covariates(fit):
        if name == "courses":
            parts.append(f"{value} course" + ("" if value == "1" else "s"))
        elif name == "timepoint_months":
            parts.append(f"{value} months' follow-up")
        else:
            parts.append(f"{name.replace('_', ' ')} {value}")
    text = ", ".join(parts)
    suffix = "".join(words for name, words in outcomes.get(outcome(fit)).reference_suffixes if has(fit, name))
    return (text + suffix).lstrip(", ")


def axis_label(fit) -> str:
    """The axis a fit's per-unit estimates are drawn on: the outcome's quantity with its units."""
    return outcomes.get(outcome(fit)).axis_label
