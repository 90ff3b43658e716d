"""The methods paragraph (model, data, likelihood, covariates, priors, sampler, diagnostics) and the gate's words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB, outcomes
from msc_bayes.diagnostics import thresholds
from msc_bayes.inference import Attempt
from msc_bayes.numbers import plural, sig3
from msc_bayes.results import attr_json, attrs, design_terms, group


def gate_text() -> str:
    return (f"rank-normalised split R-hat ≤ {thresholds()['r_hat_max']:g}, bulk and tail ESS ≥ "
            f"{thresholds()['ess_bulk_min']:g}, {plural(int(thresholds()['max_divergences']), 'divergent transition')}")


def attempt_text(a: Attempt) -> str:
    verdict = "passed the gate" if a.passed else "failed the gate: " + "; ".join(a.reasons)
    return (f"{a.chains} chains × {a.draws} draws after {a.tune} tuning steps, target acceptance {a.target_accept:g}, "
            f"{a.seconds:.1f} s: {verdict}")


def covariates_text(fit) -> str:
    parts = []
    for t in design_terms(fit):
        if t["kind"] == "categorical":
            parts.append(f"{t['name']} (categorical; reference {t['levels'][0]}; other levels "
                         f"{', '.join(t['levels'][1:]) or 'none'})")
        else:
            how = [t["transform"] + "-transformed" if t["transform"] != "identity" else "",
                   f"centred at {t['centre']:.3g}" if t["centre"] else "",
                   f"scaled by {t['scale']:.3g}" if t["scale"] != 1 else ""]
            parts.append(f"{t['name']} (numeric" + "".join(f", {h}" for h in how if h) + ")")
    if not parts:
        return "No covariates."
    text = "Covariates: " + "; ".join(parts) + "."
    text += " Treatment covariates (route, courses, dose, ...) act on MSC arms only."
    if any(v.endswith("_latent") for v in group(fit, "posterior").data_vars):
        text += " A covariate reported only as a range is a parameter, uniform over the range."
    return text


def likelihood_text(fit) -> str:
    units = fit.prepared.units
    if "formats" in units.columns:
        counts = pd.Series([f for fs in units["formats"] for f in fs]).value_counts()
    elif "likelihood" in units.columns:
        counts = units["likelihood"].value_counts()
    else:
        return ""
    format_text = outcomes.get(fit.spec.outcome).format_text
    parts = [f"{format_text.get(k, k)}: {plural(int(v), 'arm')}" for k, v in counts.items()]
    return "Likelihood, per reporting format (each an exact likelihood of what the source reports): " + \
        "; ".join(parts) + "."


#: How a prior's parameters are written: Normal's are its mean and SD; other families' by their usual letters
_NORMAL_WORDS = {"mu": "mean", "sigma": "SD"}
_LETTERS = {"mu": "μ", "sigma": "σ", "alpha": "α", "beta": "β", "nu": "ν", "lam": "λ"}


def prior_text(prior) -> str:
    """A prior as a reader reads it, at most 3 significant digits: "Normal(mean −0.357, SD 0.5)",
    "HalfNormal(σ 0.5)", "TruncatedNormal(μ 0, σ 0.5) on [−1, 1]"."""
    words = _NORMAL_WORDS if prior.dist == "Normal" else _LETTERS
    params = {k: float(v) for k, v in prior.params.items() if v is not None and np.isfinite(float(v))}
    bounds = [params.pop(k, None) for k in ("lower", "upper")]
    text = f"{prior.dist}(" + ", ".join(f"{words.get(k, k)} {sig3(v)}" for k, v in params.items()) + ")"
    if prior.dist == "Uniform":
        return f"Uniform({sig3(bounds[0])}, {sig3(bounds[1])})"
    lo, hi = bounds
    if lo is not None or hi is not None:
        text += (" on " + (f"[{sig3(lo)}" if lo is not None else "(−∞") + ", "
                 + (f"{sig3(hi)}]" if hi is not None else "∞)"))
    return text


def coefficient_priors_text(fit) -> str:
    """Each covariate coefficient whose prior is not ``beta``'s, with its prior and the spec key that sets it:
    "beta[route[IT]] ~ Normal(mean 0, SD 0.1) (beta_route_IT)"; "" when every coefficient has ``beta``'s."""
    posterior = group(fit, "posterior")
    if "beta" not in posterior.data_vars or "covariate" not in posterior["beta"].dims:
        return ""
    spec = fit.spec
    own = []
    for column in map(str, posterior["beta"]["covariate"].values):
        key = spec.coefficient_key(column)
        if key != "beta":
            own.append(f"beta[{column}] ~ {prior_text(spec.priors[key])} ({key})")
    return "; ".join(own)


def own_prior_note(fit, quantity: str) -> str:
    """The words a table adds to a covariate effect whose coefficient(s) have a prior other than ``beta``'s:
    " (prior Normal(mean 0, SD 0.1), beta_route_IT)" for ``beta[route[IT]]`` or ``route_contrast[IT vs IV]``;
    "" for any other quantity."""
    from msc_bayes.findings.contraction import coefficient_columns

    columns = coefficient_columns(fit, quantity) if "beta" in fit.spec.priors else None
    keys = [fit.spec.coefficient_key(c) for c in columns or ()]
    if not any(k != "beta" for k in keys):
        return ""
    return " (" + "; ".join(f"prior {prior_text(fit.spec.priors[k])}, {k}" for k in dict.fromkeys(keys)) + ")"


def priors_text(fit) -> str:
    """The priors of the parameters the model has, each with its meaning (a prior the model does not use is
    not listed); ``beta`` with each coefficient that has a prior of its own (:func:`coefficient_priors_text`)."""
    posterior = group(fit, "posterior").data_vars
    outcome = outcomes.get(fit.spec.outcome)
    used = []
    for k, p in fit.spec.priors.items():
        if any(v in posterior for v in outcome.variables_of(k)):
            slot = outcome.priors.get(k)
            text = f"{k} ~ {prior_text(p)}" + (f", {slot.description}" if slot else "")
            own = coefficient_priors_text(fit) if k == "beta" else ""
            if own:
                text += (f" (each coefficient without a prior of its own; the most specific of the spec's "
                         f"beta_<covariate>_<level>, beta_<covariate>, beta applies: {own})")
            used.append(text)
    return "Priors: " + "; ".join(used) + "." if used else ""


def methods_paragraph(fit, attempts: tuple[Attempt, ...]) -> str:
    a = attrs(fit)
    versions = attr_json(fit, "versions", {})
    units = fit.prepared.units
    outcome = outcomes.get(fit.spec.outcome)
    model = outcome.model_text or f"a Bayesian hierarchical model of {outcome.description}"
    text = [f"Model ({fit.spec.outcome}): {model}.",
            (f"Data: {plural(len(units), 'modelled unit')} from {plural(units['study'].nunique(), 'study', 'studies')} "
             f"(evidence folder {a.get('data_path', '?')}, data hash {a['data_hash']})."),
            likelihood_text(fit), outcome.units_text(units, fit.spec) if outcome.units_text else "",
            covariates_text(fit), priors_text(fit)]
    final = attempts[-1]
    sampler = (f"Sampling: NUTS (nutpie {versions.get('nutpie', '?')}) through PyMC {versions.get('pymc', '?')}, "
               f"{final.chains} chains × {final.draws} draws after {final.tune} tuning steps, target acceptance "
               f"{final.target_accept:g}, seed {a['seed']}.")
    if len(attempts) > 1:
        sampler += (f" A first run ({attempts[0].tune} tuning steps, target acceptance {attempts[0].target_accept:g}) "
                    f"failed the convergence gate ({'; '.join(attempts[0].reasons)}) and the model was refit with "
                    f"these settings.")
    text.append(sampler)
    text.append(f"Diagnostics and summaries: ArviZ {versions.get('arviz', '?')} (arviz-stats "
                f"{versions.get('arviz-stats', '?')}); intervals are {INTERVAL_PROB:.0%} equal-tailed intervals "
                f"({INTERVAL_KIND}) of the posterior; point estimates are posterior medians. Gate: {gate_text()}.")
    return " ".join(t for t in text if t)
