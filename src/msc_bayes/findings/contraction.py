"""Prior-to-posterior contraction of a summary row's quantity, and the "mostly prior" flag.

contraction = 1 − Var(posterior) / Var(prior), on the scale the prior is on: the row's value for a
number or a log odds ratio, the logit of a risk (a risk in MSC arms is sigmoid(mu), or
sigmoid(mu + tau_event · z) for one event type, so its logit's prior is mu's plus the event term), the log of
a rate (100 · exp(mu) events per 100 person-years: its log is mu plus a constant, so its variance is mu's).

The prior variance is exact, from the spec's priors (scipy's distributions, no draws): the row's
``prior_key`` prior (for ``prior_key = "beta"`` each coefficient's own prior, ``Spec.coefficient_prior``; a
route contrast between two non-reference levels is a difference of two independent covariate effects, the
sum of their variances), plus E[s²] = Var(s) + E[s]² for each scale prior s of a term
s · N(0, 1) in ``prior_scale_keys``, times the row's multiplier². A prior with infinite variance
(Cauchy, Student-t with nu ≤ 2) has no contraction: None.

:data:`MOSTLY_PRIOR_CONTRACTION` = 0.5: a quantity is "mostly prior" when the data removed less than half
of its prior variance. For a normal prior N(m, s0²) and a normal likelihood with standard error se, the
contraction is s0² / (s0² + se²), below 0.5 exactly when se > s0: the data say less about the quantity
than its prior did. (The adverse-event MSC-vs-control log odds ratio, whose only control arm has 0/31
events, comes out near 0; the EDSS MSC effect, posterior SD ~0.24 against a prior SD of 1, near 0.94.)
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from scipy import special, stats

from msc_bayes import results

MOSTLY_PRIOR_CONTRACTION = 0.5


def scipy_prior(prior):
    """The spec prior as a frozen scipy distribution (the same parametrisation as PyMC's)."""
    p = dict(prior.params)
    match prior.dist:
        case "Normal":
            return stats.norm(p["mu"], p["sigma"])
        case "HalfNormal":
            return stats.halfnorm(scale=p["sigma"])
        case "HalfCauchy":
            return stats.halfcauchy(scale=p["beta"])
        case "HalfStudentT":
            return stats.t(p["nu"], scale=p["sigma"])  # |t|: handled by second_moment / variance below
        case "StudentT":
            return stats.t(p["nu"], p["mu"], p["sigma"])
        case "Cauchy":
            return stats.cauchy(p["alpha"], p["beta"])
        case "Laplace":
            return stats.laplace(p["mu"], p["b"])
        case "LogNormal":
            return stats.lognorm(p["sigma"], scale=math.exp(p["mu"]))
        case "Exponential":
            return stats.expon(scale=p["scale"] if "scale" in p else 1 / p["lam"])
        case "Gamma":
            return stats.gamma(p["alpha"], scale=1 / p["beta"])
        case "InverseGamma":
            return stats.invgamma(p["alpha"], scale=p["beta"])
        case "Beta":
            return stats.beta(p["alpha"], p["beta"])
        case "Uniform":
            return stats.uniform(p["lower"], p["upper"] - p["lower"])
        case "TruncatedNormal":
            lo, hi = p.get("lower", -math.inf), p.get("upper", math.inf)
            return stats.truncnorm((lo - p["mu"]) / p["sigma"], (hi - p["mu"]) / p["sigma"], p["mu"], p["sigma"])
    raise ValueError(f"no scipy form for the prior {prior}")


def variance(prior) -> float:
    """The prior's variance (inf where it has none)."""
    if prior.dist == "HalfStudentT":  # |T|, T ~ t(nu, 0, sigma): E|T|² = Var(T), E|T| from the t density
        t = stats.t(prior.params["nu"], scale=prior.params["sigma"])
        return second_moment(prior) - t.expect(abs, lb=-np.inf, ub=np.inf) ** 2 if t.var() < np.inf else np.inf
    v = float(scipy_prior(prior).var())
    return v if math.isfinite(v) else math.inf


def second_moment(prior) -> float:
    """E[x²] under the prior (inf where it has none)."""
    if prior.dist == "HalfStudentT":
        return float(stats.t(prior.params["nu"], scale=prior.params["sigma"]).var())
    d = scipy_prior(prior)
    m = float(d.var()) + float(d.mean()) ** 2
    return m if math.isfinite(m) else math.inf


def _route_levels(fit, row) -> tuple[str, str, str] | None:
    """(level, other level, reference level) of a ``route_contrast[A vs B]`` row, else None."""
    if not row.name.startswith("route_contrast["):
        return None
    a, b = row.name[len("route_contrast["):-1].split(" vs ")
    design = results.attr_json(fit, "design", {}) or {}
    term = next((t for t in design.get("terms", []) if t["name"] == "route"), None)
    return (a, b, term["levels"][0] if term and term["levels"] else "")


def prior_terms(fit, row) -> int:
    """How many independent draws of the ``prior_key`` prior the row's quantity sums (before the scale terms):
    2 for a route contrast between two non-reference levels (a difference of two covariate effects), else 1."""
    levels = _route_levels(fit, row)
    return 2 if levels is not None and levels[2] not in levels[:2] else 1


def coefficient_columns(fit, name: str) -> list[str] | None:
    """The design columns whose coefficients make up the cell `name`, ``beta[<column>]`` or
    ``route_contrast[A vs B]`` (the contrast's non-reference levels), else None."""
    if name.startswith("beta[") and name.endswith("]"):
        return [name[len("beta["):-1]]
    levels = _route_levels(fit, SimpleNamespace(name=name))
    if levels is None:
        return None
    return [f"route[{lv}]" for lv in levels[:2] if lv != levels[2]]


def row_priors(fit, row) -> tuple:
    """The priors of the independent terms the row's quantity sums (before its scale terms): with ``prior_key``
    "beta", each coefficient's own prior (``Spec.coefficient_prior`` of its design column: a ``beta_route_IT``
    prior is the prior of ``route_contrast[IT vs IV]``); else the ``prior_key`` prior, :func:`prior_terms` times."""
    spec = fit.spec
    columns = coefficient_columns(fit, row.name) if row.prior_key == "beta" else None
    if columns is not None:
        return tuple(spec.coefficient_prior(c) for c in columns)
    return (spec.priors[row.prior_key],) * prior_terms(fit, row)


def prior_variance(fit, row) -> float | None:
    """The exact prior variance of the row's quantity on its prior's scale (module docstring); None without
    a ``prior_key``."""
    if not row.prior_key:
        return None
    priors = fit.spec.priors
    v = sum(variance(p) for p in row_priors(fit, row))
    v += sum(second_moment(priors[k]) for k in row.prior_scale_keys)
    return v * row.multiplier**2


def posterior_values(row, x: np.ndarray) -> np.ndarray:
    """The row's draws on the prior's scale: the logit of a risk, the log of a rate, else multiplier × the draws."""
    x = np.asarray(x, dtype=float)
    if row.scale == "risk":
        return special.logit(x)
    return np.log(x) if row.scale == "rate" else row.multiplier * x


def contraction(fit, row, x: np.ndarray) -> float | None:
    """1 − Var(posterior) / Var(prior) of the row's draws `x` (module docstring); None without a finite prior
    variance."""
    v0 = prior_variance(fit, row)
    if v0 is None or not math.isfinite(v0):
        return None
    return float(1.0 - np.var(posterior_values(row, x), ddof=1) / v0)


def mostly_prior(value: float | None) -> bool:
    """Whether a contraction is below :data:`MOSTLY_PRIOR_CONTRACTION` (False where there is none)."""
    return value is not None and value < MOSTLY_PRIOR_CONTRACTION
