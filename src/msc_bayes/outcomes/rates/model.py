"""Event rates: a Poisson log-link random-effects meta-regression of events over person-time.

A unit u is one (study, arm, event) row with an event count k and its exposure E (person-years, or
administrations; :mod:`.prepare`). Its log rate per unit of exposure is the event outcomes' linear predictor
(:func:`msc_bayes.outcomes.events.model.linear_predictor`, shared, not copied):

    theta[u] = mu + event_effect[event[u]] + X[u] @ beta - msc_effect * control[u]
               + tau * study_offset[study_event[u]]

and ``k ~ Poisson(E exp(theta))``: brms's ``poisson`` family with ``offset(log(exposure))``. ``mu`` is the log
rate per person-year (per administration) of MSC arms at reference covariates; ``tau`` the between-study SD
of the log rate; ``msc_effect`` the MSC-minus-control log rate ratio. Zero events are data, exact.
The log likelihood per unit is the ``loglik`` Deterministic, summed with ``unit_weight``
(:func:`msc_bayes.outcomes.likelihood.observe`); counts and exposures are ``pm.Data``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from msc_bayes.evidence import Evidence
from msc_bayes.outcomes.events.model import coords_of, linear_predictor
from msc_bayes.outcomes.likelihood import observe
from msc_bayes.outcomes.rates.prepare import PER, Prepared, prepare

#: Rates (per 100 person-years, or per 100 administrations) of `p_rate_above`: one event per 100, per 10 and
#: per 1 unit of exposure, decades to read a new study's rate against (not clinical thresholds).
RATE_THRESHOLDS = (1.0, 10.0, 100.0)


def poisson_log_logp(k, exposure, theta):
    """log Poisson(k | exposure · exp(theta)) (tensors or numbers): k (log E + theta) − E exp(theta) − log k!."""
    import pytensor.tensor as pt

    return k * (pt.log(exposure) + theta) - exposure * pt.exp(theta) - pt.gammaln(k + 1)


def build(spec, evidence: Evidence):
    """The PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared)."""
    import pymc as pm

    prep = prepare(spec, evidence)
    units = prep.units
    with pm.Model(coords=coords_of(prep)) as model:
        exposure = pm.Data("exposure", units["model_exposure"].to_numpy(dtype=float), dims="arm")
        k = pm.Data("event_count", units["event_count"].to_numpy(dtype=float), dims="arm")
        theta = linear_predictor(spec, prep)
        observe(poisson_log_logp(k, exposure, theta))
    return model, prep


def derive(posterior: xr.Dataset, prepared: Prepared, spec) -> xr.Dataset:
    """Quantities computed from the draws (dims chain, draw, ...); rates per 100 units of exposure (`PER`).

    A *new study* is an MSC arm of a study not in the data at reference covariates, with study effect
    ``tau · z_new``, z_new ~ N(0, 1) per draw from ``numpy.random.default_rng(spec.sampler.seed)`` (then
    ``predicted_count`` from the same generator); with several event types, a typical one.

    - ``rate_pooled``: 100 exp(mu); ``rate_new``: 100 exp(mu + tau z_new); ``theta_new``: mu + tau z_new
      (the log rate per unit, for the forest plot);
    - ``rate_pooled_event`` / ``rate_new_event`` (dim event; several event types): the same per event type;
    - ``rate_new_control`` and ``rate_ratio`` = exp(msc_effect) (MSC over control; with control arms);
    - ``rate_by_route`` (dim route) and ``route_contrast`` (dim contrast: log rate ratio of each level over the
      reference) when route is a covariate;
    - ``p_rate_above`` (dim threshold): indicator rate_new > threshold per draw (`RATE_THRESHOLDS`), so its
      posterior mean is P(rate_new > threshold);
    - ``rate_arm`` (dim arm): 100 exp(theta); ``expected_events`` (dim arm): E exp(theta);
      ``predicted_count`` (dim arm): a Poisson(E exp(theta)) replicate of each unit's count.
    """
    rng = np.random.default_rng(spec.sampler.seed)
    mu, tau = posterior["mu"], posterior["tau"]
    sample = mu.dims
    z_new = xr.DataArray(rng.standard_normal(mu.shape), dims=sample, coords=mu.coords)
    eta_new = mu + tau * z_new
    out = {"rate_pooled": PER * np.exp(mu), "rate_new": PER * np.exp(eta_new), "theta_new": eta_new}
    if "event_effect" in posterior:
        out["rate_pooled_event"] = PER * np.exp(mu + posterior["event_effect"])
        out["rate_new_event"] = PER * np.exp(eta_new + posterior["event_effect"])
    if "msc_effect" in posterior:
        out["rate_new_control"] = PER * np.exp(eta_new - posterior["msc_effect"])
        out["rate_ratio"] = np.exp(posterior["msc_effect"])
    route = next((t for t in prepared.design.terms if t.name == "route"), None)
    if route is not None and route.levels:
        beta = posterior["beta"]
        effects = [xr.zeros_like(mu)] + [beta.sel(covariate=c, drop=True) for c in route.columns]
        by_route = xr.concat([PER * np.exp(eta_new + e) for e in effects], dim="route")
        out["rate_by_route"] = by_route.assign_coords(route=list(route.levels)).transpose(*sample, "route")
        if route.columns:
            contrast = xr.concat([beta.sel(covariate=c, drop=True) for c in route.columns], dim="contrast")
            labels = [f"{lv} vs {route.levels[0]}" for lv in route.levels[1:]]
            out["route_contrast"] = contrast.assign_coords(contrast=labels).transpose(*sample, "contrast")
    thresholds = xr.DataArray(list(RATE_THRESHOLDS), dims="threshold", coords={"threshold": list(RATE_THRESHOLDS)})
    out["p_rate_above"] = (out["rate_new"] > thresholds).astype(float).transpose(*sample, "threshold")
    theta = posterior["theta"].transpose(*sample, "arm")
    exposure = xr.DataArray(prepared.units["model_exposure"].to_numpy(dtype=float), dims="arm",
                            coords={"arm": theta["arm"].values})
    out["rate_arm"] = PER * np.exp(theta)
    out["expected_events"] = (exposure * np.exp(theta)).transpose(*sample, "arm")
    counts = rng.poisson(out["expected_events"].values)
    out["predicted_count"] = xr.DataArray(counts, dims=(*sample, "arm"), coords=theta.coords)
    ds = xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims], errors="ignore")
                     for k, v in out.items()})
    per = f"per {PER:g} {prepared.exposure_words}"
    for name in ("rate_pooled", "rate_new", "rate_arm", "rate_pooled_event", "rate_new_event", "rate_new_control",
                 "rate_by_route"):
        if name in ds:
            ds[name].attrs["units"] = f"events {per}"
    ds["p_rate_above"].attrs["meaning"] = "per-draw indicator rate_new > threshold; its mean is the probability"
    ds["predicted_count"].attrs["meaning"] = "replicate of each unit's event count, Poisson(exposure exp(theta))"
    ds.attrs["new_study"] = "MSC arm at reference covariates; z_new ~ N(0,1) seeded by spec.sampler.seed"
    return ds
