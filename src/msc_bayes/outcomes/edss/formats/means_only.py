"""Format ``means_only``: a mean change with no SD, ~ N(theta, sigma/sqrt(n)) through the arm's sigma."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msc_bayes.outcomes.edss.formats.base import (
    BuildContext,
    CheckContext,
    Estimate,
    Format,
    Replicate,
    has,
    has_spread,
    mean_replicate,
)
from msc_bayes.outcomes.edss.formats.baseline_followup import VISITS


class MeansOnly(Format):
    name = "means_only"
    columns = ("change_mean", "baseline_mean", "followup_mean")
    text = "a mean change without an SD (normal with the arm's within-arm SD sigma, hierarchical on the log scale)"
    needs_sigma = True

    def available(self, row, patients_at: set) -> bool:
        # means without a usable spread; not when the same means already enter with their SDs
        return (has(row, "change_mean") and not has_spread(row)) or (
            has(row, "baseline_mean", "followup_mean") and not has(row, *VISITS))

    def before_theta(self, ctx: BuildContext, idx: np.ndarray) -> None:
        sub = ctx.units.iloc[idx]
        y = sub["change_mean"].fillna(sub["followup_mean"] - sub["baseline_mean"]).to_numpy(dtype=float)
        ctx.normal.append((idx, y, ctx.sigma[idx] / np.sqrt(ctx.n[idx])))

    def reported_mean(self, r) -> float:
        """The mean change the row reports, as `before_theta` reads it."""
        return r.change_mean if pd.notna(r.change_mean) else r.followup_mean - r.baseline_mean

    def observed(self, r, ctx: CheckContext) -> Estimate | None:
        text = "mean change" if pd.notna(r.change_mean) else "follow-up minus baseline mean"
        return float(self.reported_mean(r)), np.nan, np.nan, text

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        return mean_replicate(self.reported_mean(r), float(r.n), theta, sigma, ctx)


FORMAT = MeansOnly()
