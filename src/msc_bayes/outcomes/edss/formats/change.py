"""Format ``change``: a mean change with its SD, SE or CI, y ~ N(theta, se) with se known."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from msc_bayes.outcomes.edss.formats.base import (
    BuildContext,
    CheckContext,
    Estimate,
    Format,
    Replicate,
    has,
    has_spread,
)


def change_mean_se(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean change and its SE from SD (sd/sqrt(n)), SE, or CI (t quantile with n-1 df)."""
    n = rows["n"].to_numpy(dtype=float)
    se = rows["change_se"].to_numpy(dtype=float)
    se = np.where(np.isnan(se), rows["change_sd"].to_numpy(dtype=float) / np.sqrt(n), se)
    level = rows["change_ci_level"].to_numpy(dtype=float)
    width = (rows["change_ci_upper"] - rows["change_ci_lower"]).to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        q = np.where(n > 1, stats.t.ppf((1 + level) / 2, np.maximum(n - 1, 1)), stats.norm.ppf((1 + level) / 2))
    se = np.where(np.isnan(se), width / (2 * q), se)
    return rows["change_mean"].to_numpy(dtype=float), se


def sd_logp(sd, n, sigma):
    """Log likelihood of reported SDs `sd` of `n` patients given the true SD `sigma`: (n - 1) sd^2 / sigma^2 ~
    chi2(n - 1), i.e. sd^2 ~ Gamma((n - 1) / 2, rate (n - 1) / (2 sigma^2)) (needs n >= 2)."""
    import pymc as pm

    return pm.logp(pm.Gamma.dist(alpha=(n - 1) / 2, beta=(n - 1) / (2 * sigma**2)), sd**2)


class Change(Format):
    name = "change"
    columns = ("change_mean", "change_sd", "change_se", "change_ci_lower", "change_ci_upper", "change_ci_level")
    text = "mean change with SD, SE or CI (normal with known SE)"

    def available(self, row, patients_at: set) -> bool:
        return has(row, "change_mean") and has_spread(row)

    def before_theta(self, ctx: BuildContext, idx: np.ndarray) -> None:
        n = ctx.n
        y, se = change_mean_se(ctx.units.iloc[idx])
        ctx.normal.append((idx, y, se))
        has_sigma = ctx.has_sigma[idx]
        if has_sigma.any():  # combine="all": the reported SD is also data on sigma
            j, sd = idx[has_sigma], (se * np.sqrt(n[idx]))[has_sigma]
            ctx.terms.append((j, sd_logp(sd, n[j], ctx.sigma[j])))

    def observed(self, r, ctx: CheckContext) -> Estimate | None:
        y, se = change_mean_se(pd.DataFrame([r._asdict()]))
        z = ctx.z
        return float(y[0]), float(y[0] - z * se[0]), float(y[0] + z * se[0]), f"mean change ± {z:.2f} SE"

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        y, se = change_mean_se(pd.DataFrame([r._asdict()]))
        return [("mean change", "mean change", y[0], ctx.rng.normal(theta, se[0]))]


FORMAT = Change()
