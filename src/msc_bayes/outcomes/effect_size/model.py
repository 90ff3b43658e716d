"""A plain effect-size meta-(regression) on a user's scale: one normal likelihood per modelled unit.

Each unit u (a row of ``effect_sizes.csv``: a study arm at its chosen timepoint) has

    theta[u] = mu + X[u] @ beta - msc_effect * control[u] + tau * e[study[u]],   e[s] ~ N(0, 1)
    y[u] ~ N(theta[u], se[u])

- ``se`` and ``ci`` units: se[u] known (reported, or from the CI; :mod:`.prepare`). With one unit per study,
  no covariates and no control arm this is exactly the normal–normal random-effects model of
  :func:`msc_bayes.oracle.normal_normal` (the sweep answers such scenarios with it).
- ``sd`` units: se[u] = sigma[u] / sqrt(n[u]), the arm's true SD ``sigma`` a parameter (dim ``arm_sd``),
  and the reported SD data on it, (n − 1) sd² / sigma² ~ chi²(n − 1) (the EDSS formats' `sd_logp`). sigma
  has the scale-free Jeffreys prior p(sigma) ∝ 1/sigma (``log_sigma`` flat): no prior key, since the
  scale of y is the data's. Integrating sigma out gives y[u] − theta[u] ~ (sd / sqrt(n)) · t(n − 1)
  exactly, so a small arm's interval is as wide as the t distribution's, not the plug-in SD's
  (tests/test_effect_size.py checks the integral).

The study effects are the EDSS model's standardised offsets (``study_offset``: each study's effect
standardised by its conditional normal posterior given the normal terms, the Jacobian a Potential;
:func:`msc_bayes.outcomes.edss.model.standardised_study_offset`): the same posterior as the plain non-centred
form, without its funnels for precise studies. ``beta`` exists with covariates, ``msc_effect`` with
control arms (:func:`msc_bayes.outcomes.covariates.with_effects`). The per-unit log likelihood is
``loglik`` (:mod:`msc_bayes.outcomes.likelihood`), weighted by ``unit_weight``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from msc_bayes.evidence import Evidence
from msc_bayes.outcomes.covariates import with_effects
from msc_bayes.outcomes.edss.formats.change import sd_logp
from msc_bayes.outcomes.edss.model import derive as _derive_predictions
from msc_bayes.outcomes.edss.model import standardised_study_offset
from msc_bayes.outcomes.effect_size.prepare import Prepared, prepare
from msc_bayes.outcomes.likelihood import observe
from msc_bayes.outcomes.sizes import zeros


def build(spec, evidence: Evidence):
    """The PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared)."""
    import pymc as pm
    import pytensor.tensor as pt

    prep = prepare(spec, evidence)
    units, d = prep.units, prep.design
    studies = prep.studies
    study_idx = np.array([studies.index(s) for s in units["study"]])
    control = (units["group"] == "control").to_numpy(dtype=float)
    coords = {"study": studies, "arm": list(units["label"])}
    if d.columns:
        coords["covariate"] = list(d.columns)
    y = units["y"].to_numpy(dtype=float)
    by_sd = np.flatnonzero((units["likelihood"] == "sd").to_numpy())
    with pm.Model(coords=coords) as model:
        mu = spec.priors["mu"].create("mu")
        tau = spec.priors["tau"].create("tau")
        z = pm.Normal("study_offset", 0.0, 1.0, dims="study")
        fixed = with_effects(mu + zeros("arm"), spec, d, control)
        se = pt.as_tensor_variable(np.nan_to_num(units["se_known"].to_numpy(dtype=float), nan=1.0))
        if len(by_sd):
            model.add_coord("arm_sd", [units["label"][i] for i in by_sd])
            n = units["n"].to_numpy(dtype=float)[by_sd]
            log_sigma = pm.Flat("log_sigma", dims="arm_sd")  # Jeffreys: p(sigma) ∝ 1/sigma
            sigma = pm.Deterministic("sigma", pt.exp(log_sigma), dims="arm_sd")
            se = pt.set_subtensor(se[by_sd], sigma / np.sqrt(n))
        offset = standardised_study_offset(z, tau, fixed, [(np.arange(len(units)), y, se)], study_idx)
        theta = pm.Deterministic("theta", fixed + tau * offset[study_idx], dims="arm")
        ll = pm.logp(pm.Normal.dist(theta, se), y)
        if len(by_sd):
            sd = units["sd"].to_numpy(dtype=float)[by_sd]
            ll = pt.inc_subtensor(ll[by_sd], sd_logp(sd, n, sigma))
        observe(ll)
    return model, prep


def derive(posterior, prepared: Prepared, spec) -> xr.Dataset:
    """A new study's effect ``theta_new`` = mu + tau·N(0, 1) (seeded by ``spec.sampler.seed``), route contrasts
    and predictions by design (as the EDSS model derives them, :func:`msc_bayes.outcomes.edss.model.derive`),
    and ``p_new_below[threshold]`` = 1{theta_new < t} at the spec's ``thresholds`` (none: no such variable)."""
    ds = _derive_predictions(posterior, prepared, spec)
    ds = ds.drop_vars(["p_new_below", "threshold"])
    thresholds = list(spec.options["thresholds"])
    if thresholds:
        new = ds["theta_new"].values
        below = np.stack([new < t for t in thresholds], axis=-1).astype(float)
        ds["p_new_below"] = xr.DataArray(below, dims=("chain", "draw", "threshold"),
                                         coords={"threshold": thresholds})
    return ds
