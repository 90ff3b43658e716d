"""The effect-size model's checks against the data: per unit, the reported estimate with its interval, and
posterior predictive replicates of it (y_rep ~ N(theta, se), se from the draws of sigma for ``sd`` units)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from msc_bayes.results import group, stack_draws

#: What each format's observed interval is
_WHAT = {"se": "estimate ± {z:.2f} SE", "ci": "estimate ± {z:.2f} SE (SE from the CI)",
         "sd": "estimate ± {z:.2f} SD/√n (reported SD)"}


def reported_se(r) -> float:
    """The unit's SE as reported: the known SE, or its reported SD over sqrt(n)."""
    return float(r.se_known) if r.likelihood != "sd" else float(r.sd) / np.sqrt(float(r.n))


def observed(fit, *, evidence, probs: tuple[float, float], interval: str) -> list[tuple]:
    """Per unit: (estimate, lower, upper, what it is), the interval normal at the package's probability."""
    z = float(stats.norm.ppf(probs[1]))
    return [(float(r.y), float(r.y) - z * reported_se(r), float(r.y) + z * reported_se(r), _WHAT[r.likelihood].format(z=z))
            for r in fit.prepared.units.itertuples(index=False)]


def replicates(fit, *, evidence, rng: np.random.Generator, probs: tuple[float, float]) -> list[tuple]:
    """(check, label, statistic, observed, replicate draws) per unit: the estimate beside N(theta, se) draws."""
    post = group(fit, "posterior")
    theta = stack_draws(post["theta"])
    sigma = {str(a): stack_draws(post["sigma"])[:, j] for j, a in enumerate(post["arm_sd"].values)} \
        if "sigma" in post else {}
    rows = []
    for j, r in enumerate(fit.prepared.units.itertuples(index=False)):
        se = sigma[r.label] / np.sqrt(float(r.n)) if r.likelihood == "sd" else float(r.se_known)
        rows.append(("estimate", r.label, "estimate", float(r.y), rng.normal(theta[:, j], se)))
    return rows


def unit_variances(fit) -> np.ndarray:
    """(draws, units) within-unit variance of each estimate on the scale of tau (the summary of findings' I²):
    the known SE², or sigma² / n per draw for an arm reported with SD and n."""
    post = group(fit, "posterior")
    draws = stack_draws(post["tau"]).shape[0]
    sigma = {str(a): stack_draws(post["sigma"])[:, j] for j, a in enumerate(post["arm_sd"].values)} \
        if "sigma" in post else {}
    return np.column_stack([sigma[r.label] ** 2 / float(r.n) if r.likelihood == "sd" else np.full(draws, r.se_known ** 2)
                            for r in fit.prepared.units.itertuples(index=False)])
