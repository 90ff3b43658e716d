"""Format ``baseline_followup``: baseline and follow-up means and SDs.

Follow-up minus baseline mean ~ N(theta, sigma/sqrt(n)) with sigma^2 = sd_b^2 + sd_f^2 -
2 rho sd_b sd_f; rho (pre-post correlation) is a parameter with a prior, and the reported
SDs are data on sd_b, sd_f ((n-1)s^2/sd^2 ~ chi2(n-1)).
"""

from __future__ import annotations

import numpy as np

from msc_bayes.outcomes.edss.formats.base import (
    BuildContext,
    CheckContext,
    Estimate,
    Format,
    Replicate,
    has,
    mean_replicate,
)

VISITS = ("baseline_mean", "baseline_sd", "followup_mean", "followup_sd")


class BaselineFollowup(Format):
    name = "baseline_followup"
    columns = ("baseline_mean", "baseline_sd", "followup_mean", "followup_sd")
    text = ("baseline and follow-up means and SDs (follow-up minus baseline mean normal with the SD of "
            "change from the two visit SDs and the pre–post correlation rho; the reported SDs are data "
            "with uncertainty on the visit SDs σ, (n − 1) s² / σ² ~ χ²(n − 1), not plugged in: in a small "
            "arm σ's posterior is wide and right-skewed, so its interval is wider than a plug-in SD would give)")
    gives_sigma = True

    def available(self, row, patients_at: set) -> bool:
        return has(row, *VISITS)

    def before_theta(self, ctx: BuildContext, idx: np.ndarray) -> None:
        import pymc as pm
        import pytensor.tensor as pt

        spec, units = ctx.spec, ctx.units
        ctx.model.add_coord("arm_bf", [units["label"][i] for i in idx])
        rho = spec.priors["rho"].create("rho")
        sd_b = spec.priors["sigma_edss"].create("sd_baseline", dims="arm_bf", key="sigma_edss")
        sd_f = spec.priors["sigma_edss"].create("sd_followup", dims="arm_bf", key="sigma_edss")
        ctx.sigma = pt.set_subtensor(ctx.sigma[idx], pt.sqrt(sd_b**2 + sd_f**2 - 2 * rho * sd_b * sd_f))
        nb = ctx.n[idx]
        for col, sd in (("baseline_sd", sd_b), ("followup_sd", sd_f)):
            s2 = units[col].to_numpy(dtype=float)[idx] ** 2
            ctx.terms.append((idx, pm.logp(pm.Gamma.dist(alpha=(nb - 1) / 2, beta=(nb - 1) / (2 * sd**2)), s2)))
        diff = (units["followup_mean"] - units["baseline_mean"]).to_numpy(dtype=float)[idx]
        ctx.normal.append((idx, diff, ctx.sigma[idx] / np.sqrt(nb)))

    def reported_mean(self, r) -> float:
        """The mean change the row reports, as `before_theta` reads it."""
        return r.followup_mean - r.baseline_mean

    def observed(self, r, ctx: CheckContext) -> Estimate | None:
        return float(self.reported_mean(r)), np.nan, np.nan, "follow-up minus baseline mean"

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        return mean_replicate(self.reported_mean(r), float(r.n), theta, sigma, ctx)


FORMAT = BaselineFollowup()
