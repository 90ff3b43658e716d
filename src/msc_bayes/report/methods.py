"""The methods paragraph (model, data, likelihood, covariates, priors, sampler, diagnostics) and the gate's words."""

from __future__ import annotations

import pandas as pd

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB, outcomes
from msc_bayes.diagnostics import thresholds
from msc_bayes.inference import Attempt
from msc_bayes.results import attr_json, attrs, design_terms, group


def gate_text() -> str:
    return (f"rank-normalised split R-hat ≤ {thresholds()['r_hat_max']:g}, bulk and tail ESS ≥ "
            f"{thresholds()['ess_bulk_min']:g}, {thresholds()['max_divergences']} divergent transitions")


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
    parts = [f"{format_text.get(k, k)}: {v} arm{'s' if v != 1 else ''}" for k, v in counts.items()]
    return "Likelihood, per reporting format (each an exact likelihood of what the source reports): " + \
        "; ".join(parts) + "."


def priors_text(fit) -> str:
    posterior = group(fit, "posterior").data_vars
    variables_of = outcomes.get(fit.spec.outcome).variables_of
    used = [f"{k} ~ {p}" for k, p in fit.spec.priors.items() if any(v in posterior for v in variables_of(k))]
    unused = [k for k, _ in fit.spec.priors.items() if not any(v in posterior for v in variables_of(k))]
    text = "Priors (as written in the spec): " + "; ".join(used) + "."
    if unused:
        text += f" Not used by this model (no such parameter with these data): {', '.join(unused)}."
    return text


def methods_paragraph(fit, attempts: tuple[Attempt, ...]) -> str:
    a = attrs(fit)
    versions = attr_json(fit, "versions", {})
    units = fit.prepared.units
    outcome = outcomes.get(fit.spec.outcome)
    model = outcome.model_text or f"a Bayesian hierarchical model of {outcome.description}"
    text = [f"Model ({fit.spec.outcome}): {model}.",
            (f"Data: {len(units)} modelled units from {units['study'].nunique()} studies "
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
