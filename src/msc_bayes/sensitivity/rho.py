"""The pre-post correlation rho held (almost) fixed at given values vs its prior (:func:`rho_sensitivity`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from msc_bayes.sensitivity.base import (
    ReportRequest,
    add_note,
    finish,
    fit_kwargs,
    prepare,
    sig,
)
from msc_bayes.spec import Prior
from msc_bayes.sweep import DEFAULT_QUANTITIES, Scenario, concat, run_scenarios


def _tight_prior(base: Prior, value: float, sd: float) -> Prior:
    """A prior concentrated at `value` (SD `sd`) in the base family when it is Beta (no recompile),
    else a narrow TruncatedNormal on [-1, 1]."""
    if base.dist == "Beta" and 0 < value < 1:
        n = value * (1 - value) / sd**2 - 1
        return Prior("Beta", {"alpha": sig(value * n, 6), "beta": sig((1 - value) * n, 6)})
    return Prior("TruncatedNormal", {"mu": value, "sigma": sd, "lower": -1, "upper": 1})


def rho_sensitivity(spec, evidence, *, values: Sequence[float] = (0.2, 0.5, 0.8), sd: float = 0.01,
                    quantities: Sequence[str] | None = None, include_base: bool = True, draws: int | None = None,
                    tune: int | None = None, chains: int | None = None, seed: int | None = None,
                    target_accept: float | None = None, scheduler=None, on_error: str = "record",
                    progress: bool = False) -> pd.DataFrame:
    """The pre-post correlation rho held (almost) fixed at each of ``values`` vs its prior.

    rho only enters arms reported as baseline/follow-up mean and SD. "Fixed" is a prior with
    SD ``sd`` at the value: a concentrated Beta when the spec's rho prior is Beta (same
    family, so no recompile), else TruncatedNormal(value, sd, -1, 1). Extra columns:
    ``rho_value`` (NaN for the prior) and ``prior``.
    """
    base_prior = spec.priors["rho"]
    quantities = list(DEFAULT_QUANTITIES if quantities is None else quantities)
    quantities += [] if "rho" in quantities else ["rho"]
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    scenarios = [Scenario(f"rho ~ {base_prior} (prior)", spec, evidence, fkw, quantities=quantities, method="mcmc",
                          meta={"family": "rho", "rho_value": np.nan, "prior": str(base_prior)})] if include_base else []
    for v in values:
        p = _tight_prior(base_prior, float(v), sd)
        scenarios.append(Scenario(f"rho = {v:g}", spec.replace(priors={"rho": p}), evidence, fkw,
                                  quantities=quantities, method="mcmc",
                                  meta={"family": "rho", "rho_value": float(v), "prior": str(p)}))
    df = concat(run_scenarios(scenarios, scheduler=scheduler, on_error=on_error, progress=progress))
    if "quantity" in df and not (df["quantity"] == "rho").any():
        df["notes"] = [add_note(n, "rho is not in this model (no baseline/follow-up arms)") for n in df["notes"]]
    return finish(df)


class RhoFamily:
    """The report's "rho" family: rho held near fixed values (EDSS models with baseline/follow-up arms)."""

    family = "rho"

    def applies(self, spec, evidence) -> bool:
        return spec.outcome == "edss_change" and "baseline_followup" in {
            f for fs in prepare(spec, evidence).units["formats"] for f in fs}

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        return rho_sensitivity(spec, evidence, values=request.rho_values, quantities=request.quantities,
                               include_base=False, **request.kw)
