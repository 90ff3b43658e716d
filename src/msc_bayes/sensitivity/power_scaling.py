"""Power-scaling sensitivity (ArviZ ``psense``) of the hyperpriors of a fit (:func:`power_scaling`)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import outcomes, results
from msc_bayes.sensitivity.prior import log_prior
from msc_bayes.sweep import quantity_draws


def _log_likelihood_used(fit) -> xr.Dataset:
    """The per-arm log likelihood of the arms that were fitted (left-out studies dropped)."""
    ll = results.group(fit, "log_likelihood")
    excluded = results.attr_json(fit, "excluded_studies", [])
    if excluded:
        keep = ~fit.prepared.units["study"].isin(excluded).to_numpy()
        ll = ll.isel(arm=np.flatnonzero(keep))
    return ll


def power_scaling(fit, *, var_names: Sequence[str] = ("mu", "tau", "beta"), quantities: Sequence[str] | None = None,
                  threshold: float = 0.05, alphas: tuple[float, float] = (0.99, 1.01),
                  scenario: str = "base") -> pd.DataFrame:
    """Power-scaling prior/likelihood sensitivity (ArviZ ``psense_summary``) of the hyperpriors.

    The ``log_prior`` group holds only the priors of ``var_names`` (log densities of the draws
    by :meth:`Prior.logpdf`), so only these hyperpriors are power-scaled; the likelihood is the
    per-arm log likelihood of the fitted arms. Sensitivity is reported for ``quantities``
    (default: the ``var_names`` the fit has, plus ``msc_effect`` when modelled; any posterior
    or derived quantity or cell label such as ``route_contrast[IT vs IV]`` may be given).

    Columns: scenario, quantity, prior_sensitivity, likelihood_sensitivity, diagnosis
    (ArviZ: "potential prior-data conflict" when both are >= ``threshold``, "potential strong
    prior / weak likelihood" when only the prior one is, "✓" otherwise), threshold.
    """
    import arviz_stats as azs

    post = fit.posterior
    spec = fit.spec
    lp = {}
    for key in var_names:
        if key not in spec.priors:
            continue
        for var in outcomes.get(spec.outcome).variables_of(key):
            if var in post:
                da = post[var]
                lp[var] = xr.DataArray(log_prior(spec, key, da), dims=da.dims, coords=da.coords)  # per coefficient
    if not lp:
        raise ValueError(f"none of {list(var_names)} is a parameter of this fit")
    if quantities is None:
        quantities = [v for v in var_names if v in post] + (["msc_effect"] if "msc_effect" in post else [])
        quantities = list(dict.fromkeys(quantities))
    draws = quantity_draws(fit, quantities)
    chain, draw = post["chain"].values, post["draw"].values
    assess = xr.Dataset({k: (("chain", "draw"), v) for k, v in draws.items()}, coords={"chain": chain, "draw": draw})
    tree = xr.DataTree.from_dict({"posterior": assess, "log_prior": xr.Dataset(lp),
                                  "log_likelihood": _log_likelihood_used(fit)})
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = azs.psense_summary(tree, var_names=list(draws), threshold=threshold, alphas=alphas, round_to=10)
    finally:
        logger.setLevel(level)
    df = pd.DataFrame({"scenario": scenario, "quantity": list(res.index),
                       "prior_sensitivity": res["prior"].astype(float).to_numpy(),
                       "likelihood_sensitivity": res["likelihood"].astype(float).to_numpy(),
                       "diagnosis": res["diagnosis"].to_numpy(), "threshold": threshold,
                       "power_scaled": ", ".join(lp)})
    return df
