"""The numbers of each summary-of-findings row: estimate, direction, probabilities, Bayes factor, heterogeneity,
prediction, contraction (:func:`numbers`), and the rows a fit has (:func:`rows_for`).

Rules, as named constants:

- direction (:data:`CLEAR_DIRECTION`): with P = P(benefit) (the estimate below 0 for a "lower_better"
  row, above 0 for "higher_better"), P ≥ 0.95 reads "<better> (P = p)", P ≤ 0.05 "<worse> (P = 1 − p)",
  anything between "no clear direction (P(<benefit>) = p)". A row without a comparison (a risk in MSC
  arms, direction "none") has no P(benefit) and reads "a risk in MSC arms (no comparison)".
- P(important), with m the row's important magnitude (a number, or the spec option it names: EDSS
  ``mcid``, overridable by the `mcid` argument): for a benefit, P(the estimate at least m better than
  0), e.g. P(change ≤ −0.5) for the EDSS rows (for the route contrast: IT at least 0.5 point better than
  IV; for courses: a doubling at least 0.5 point better); for a harm, P(a risk above m) or P(a log odds
  ratio above m, i.e. an odds ratio above exp(m)), a probability of harm, and the text says so.
- the Bayes factor (rows with a point null): :func:`msc_bayes.findings.bayes_factor.savage_dickey` on
  the row's draws with the ``prior_key`` prior's density at 0 (for ``beta``, the coefficient's own prior,
  ``Spec.coefficient_prior``: ``findings.contraction.row_priors``); a route contrast is one covariate effect
  only against the route's reference level (``route_contrast[IT vs IV]`` is ``beta[route[IT]]`` with IV
  the reference, as the bundled specs have it); any other contrast has no single prior: no Bayes factor.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from msc_bayes import outcomes, results
from msc_bayes.findings import bayes_factor as bf
from msc_bayes.findings import contraction as ct
from msc_bayes.findings import heterogeneity as het
from msc_bayes.numbers import p_equals

#: P(benefit) at or above this: the direction is clear ("favours MSC"); at or below 1 − it, the other way
CLEAR_DIRECTION = 0.95
#: The per-unit words of a numeric covariate's effect: (doubling words, one-unit words) by covariate name
_PER_WORDS = {"courses": ("per doubling of the number of courses", "per additional course")}


def direction_text(row, p_benefit: float | None) -> str:
    """The estimate's direction in words (module docstring)."""
    if p_benefit is None:
        if row.scale in ("risk", "rate"):
            return f"a {row.scale} in MSC arms (no comparison)"
        return "no direction is better (no comparison)"
    if p_benefit >= CLEAR_DIRECTION:
        return f"{row.better} ({p_equals(p_benefit)})"
    if p_benefit <= 1 - CLEAR_DIRECTION:
        return f"{row.worse} ({p_equals(1 - p_benefit)})"
    return f"no clear direction ({p_equals(p_benefit, row.benefit)})"


def _per_unit(fit, covariate: str) -> tuple[float, str]:
    """(multiplier, words) of a numeric covariate's effect: ln 2 / scale 'per doubling' of a log-transformed one,
    1 / scale 'per unit' otherwise (the design as the fit recorded it)."""
    design = results.attr_json(fit, "design", {}) or {}
    term = next((t for t in design.get("terms", []) if t["name"] == covariate), None)
    scale = float(term["scale"]) if term else 1.0
    doubling, one = _PER_WORDS.get(covariate, (f"per doubling of {covariate}", f"per unit of {covariate}"))
    if term is not None and term["transform"] == "log":
        return math.log(2.0) / scale, doubling
    return 1.0 / scale, one


def rows_for(fit) -> tuple:
    """The outcome's summary rows (``Outcome.summary``) that the fit has, resolved for it: a ``{per}`` label
    filled in (with the row's multiplier) from the fit's design."""
    out = []
    for row in outcomes.get(fit.spec.outcome).summary_rows(fit.spec):
        if het.cell_draws(fit, row.name) is None:
            continue
        if "{per}" in row.label:
            covariate = row.name[len("beta["):-1] if row.name.startswith("beta[") else row.name
            multiplier, words = _per_unit(fit, covariate)
            row = dataclasses.replace(row, label=row.label.format(per=words), multiplier=multiplier)
        out.append(row)
    return tuple(out)


def important_magnitude(fit, row, mcid: float | None = None) -> float | None:
    """The row's important magnitude: a number, or the spec option it names (``mcid``: the argument first)."""
    if row.important is None or isinstance(row.important, (int, float)):
        return row.important
    if row.important == "mcid" and mcid is not None:
        return float(mcid)
    options = fit.spec.options
    if row.important in options:
        return float(options[row.important])
    return float(outcomes.get(fit.spec.outcome).options[row.important].default)


def _benefit_mask(row, x: np.ndarray, m: float) -> np.ndarray:
    return x <= -m if row.direction == "lower_better" else x >= m


def p_important(row, x: np.ndarray, m: float | None) -> float | None:
    """P(important benefit) or P(harm) of the row's draws `x` (on the row's scale) at magnitude `m`."""
    if m is None:
        return None
    if row.important_side == "harm":
        harm = x > m if row.scale in ("risk", "rate") or row.direction != "higher_better" else x < -m
        return float(np.mean(harm))
    if row.direction == "none":
        return None
    return float(np.mean(_benefit_mask(row, x, m)))


def important_words(row, m: float | None) -> str:
    """What P(important) is the probability of, in words."""
    if m is None:
        return ""
    if row.scale == "risk":
        return f"risk above {m:.0%} (a probability of harm)"
    if row.scale == "rate":
        return f"rate above {m:g} {row.unit} (a probability of harm)"
    if row.scale == "log_odds_ratio":
        if row.important_side == "harm":
            return f"odds ratio above {math.exp(m):.3g}, {row.worse} (a probability of harm)"
        return f"odds ratio below {math.exp(-m):.3g}, {row.better}"
    what = f"{m:g} EDSS points (the MCID)" if row.important == "mcid" else f"{m:g}"
    return f"{row.benefit} by at least {what}"


def _single_prior(fit, row) -> bool:
    """Whether the row's quantity is one draw of its ``prior_key`` prior (a Savage–Dickey numerator exists)."""
    return bool(row.prior_key) and not row.prior_scale_keys and ct.prior_terms(fit, row) == 1


def bayes_factor(fit, row, x: np.ndarray) -> bf.BayesFactor | None:
    """The row's Savage–Dickey BF10 from its (chain, draw) draws `x`, or None where no point null applies."""
    if not row.point_null or not _single_prior(fit, row):
        return None
    # the spec prior's exact density at 0 through scipy (tests check it equals Prior.logpdf; PyTensor's
    # compiled logp costs ~1 s per prior in a new process)
    density = float(ct.scipy_prior(ct.row_priors(fit, row)[0]).pdf(0.0))  # a coefficient: its own prior
    return bf.savage_dickey(row.multiplier * x, density / row.multiplier)


def numbers(fit, row, *, mcid: float | None = None) -> dict:
    """The numbers of one row as `msc_bayes.findings.base.Finding` fields: estimate, direction, p_benefit,
    benefit_text, p_important, important_text, bayes_factor, bayes_factor_text, tau, i2, prediction,
    contraction, mostly_prior. `mcid` overrides the spec's ``mcid`` option (EDSS rows)."""
    cell = het.cell_draws(fit, row.name)
    if cell is None:
        raise KeyError(f"the fit has no {row.name!r}")
    x = cell.ravel() if row.scale in ("risk", "rate") else row.multiplier * cell.ravel()
    if row.direction == "none":
        p_benefit = None
    else:
        p_benefit = float(np.mean(x < 0) if row.direction == "lower_better" else np.mean(x > 0))
    m = important_magnitude(fit, row, mcid)
    factor = bayes_factor(fit, row, cell)
    c = ct.contraction(fit, row, cell)
    return {
        "estimate": het.interval(x),
        "direction": direction_text(row, p_benefit),
        "p_benefit": p_benefit,
        "benefit_text": row.benefit if p_benefit is not None else "",
        "p_important": p_important(row, x, m),
        "important_text": important_words(row, m),
        "bayes_factor": None if factor is None else factor.bf10,
        "bayes_factor_text": "" if factor is None else factor.text,
        "tau": het.tau_interval(fit),
        "i2": het.i2_interval(fit),
        "prediction": het.prediction_interval(fit, row),
        "contraction": c,
        "mostly_prior": ct.mostly_prior(c),
    }
