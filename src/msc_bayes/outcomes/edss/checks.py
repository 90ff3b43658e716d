"""The EDSS model's checks against the data: per unit, the estimate its format gives and the
posterior predictive replicates of what it reports (each format supplies its own; see
:class:`~msc_bayes.outcomes.edss.formats.base.Format`). `msc_bayes.diagnostics` lays them out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from msc_bayes.outcomes.edss.formats import FORMATS, HALF_STEP, CheckContext
from msc_bayes.outcomes.edss.formats.patient import patient_changes
from msc_bayes.results import group, stack_draws


def _patients(fit, evidence) -> pd.DataFrame | None:
    if evidence is None:
        return None
    ev = evidence.without_secondary() if fit.spec.options.get("exclude_secondary") else evidence
    return patient_changes(ev.patients)


def _context(fit, evidence, rng, probs: tuple[float, float]) -> CheckContext:
    return CheckContext(patients=_patients(fit, evidence), rng=rng, z=float(stats.norm.ppf(probs[1])),
                        default_threshold=float(fit.spec.options.get("default_threshold", 2 * HALF_STEP)))


def observed(fit, *, evidence, probs: tuple[float, float], interval: str) -> list[tuple]:
    """Per unit: (observed, lower, upper, what it is) from its first format that gives an estimate."""
    ctx = _context(fit, evidence, None, probs)
    rows = []
    for r in fit.prepared.units.itertuples(index=False):
        found = next((e for f in r.formats if (e := FORMATS[f].observed(r, ctx)) is not None), None)
        if found is None:
            found = np.nan, np.nan, np.nan, next((FORMATS[f].no_estimate for f in r.formats
                                                  if FORMATS[f].no_estimate), "")
        rows.append(found)
    return rows


def unit_sigma(posterior: xr.Dataset, labels: list[str]) -> dict[str, np.ndarray]:
    """Within-arm SD of change per unit label (samples,), from the EDSS posterior, where modelled."""
    out = {}
    if "sigma_offset" in posterior:
        s_mu, s_tau = stack_draws(posterior["sigma_mu"]), stack_draws(posterior["sigma_tau"])
        z = stack_draws(posterior["sigma_offset"])
        for j, label in enumerate(posterior["arm_sd"].values):
            out[str(label)] = np.exp(s_mu + s_tau * z[:, j])
    if "sd_baseline" in posterior:
        rho = stack_draws(posterior["rho"])
        sb, sf = stack_draws(posterior["sd_baseline"]), stack_draws(posterior["sd_followup"])
        for j, label in enumerate(posterior["arm_bf"].values):
            out[str(label)] = np.sqrt(sb[:, j] ** 2 + sf[:, j] ** 2 - 2 * rho * sb[:, j] * sf[:, j])
    return {k: v for k, v in out.items() if k in labels}


def replicates(fit, *, evidence, rng: np.random.Generator, probs: tuple[float, float]) -> list[tuple]:
    """(check, label, statistic, observed, replicate draws) per reported number, unit by unit,
    format by format (the order the generator is drawn in)."""
    posterior = group(fit, "posterior")
    theta = stack_draws(posterior["theta"])
    labels = [str(x) for x in posterior["arm"].values]
    sigma = unit_sigma(posterior, labels)
    ctx = _context(fit, evidence, rng, probs)
    rows = []
    for r in fit.prepared.units.itertuples(index=False):
        th, sd = theta[:, labels.index(r.label)], sigma.get(r.label)
        for f in r.formats:
            rows += [(check, r.label, stat, obs, rep) for check, stat, obs, rep in FORMATS[f].replicates(r, th, sd, ctx)]
    return rows
