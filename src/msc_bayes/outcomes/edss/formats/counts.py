"""Format ``counts``: numbers improved / stable / worsened (or collapsed categories).

A multinomial over every split of n consistent with what is reported, in closed form (a
multinomial, or a binomial of the one category the report fixes; see `count_groups`); with
threshold t, improved means a rounded change <= -t, i.e. Delta < -t + 0.25, worsened
Delta >= t - 0.25.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import special, stats

from msc_bayes.evidence import COUNT_COLUMNS
from msc_bayes.outcomes.edss.formats.base import (
    HALF_STEP,
    BuildContext,
    CheckContext,
    Format,
    Replicate,
)

#: Groups of categories a count can refer to: (improved, stable, worsened) membership.
COUNT_GROUPS = {"improved": (1, 0, 0), "stable": (0, 1, 0), "worsened": (0, 0, 1),
                "stable_or_improved": (1, 1, 0), "stable_or_worsened": (0, 1, 1), "improved_or_worsened": (1, 0, 1)}


CATEGORIES = ("improved", "stable", "worsened")
#: What a reported count fixes: one of i = improved, s = stable, t = improved + stable
#: (= n - worsened), and its value, given n and the count.
_FIXES = {
    "improved": lambda n, v: ("i", v),
    "stable": lambda n, v: ("s", v),
    "worsened": lambda n, v: ("t", n - v),
    "stable_or_improved": lambda n, v: ("t", v),
    "stable_or_worsened": lambda n, v: ("i", n - v),
}
#: When only one of i, s, t is fixed: (the fixed category, the other two merged); for t the
#: fixed category is worsened = n - t.
_BINOMIALS = {"i": ("improved", "stable_or_worsened"), "s": ("stable", "improved_or_worsened"),
              "t": ("worsened", "stable_or_improved")}


def _reported(row, column: str) -> int | None:
    v = row.get(column) if isinstance(row, dict) else getattr(row, column, None)
    return None if v is None or pd.isna(v) else int(v)


def _fixed(n: int, reported: Mapping[str, int]) -> dict[str, int]:
    """Which of i, s, t the reported counts fix, and their values (see `_FIXES`)."""
    fixed: dict[str, int] = {}
    for column, v in reported.items():
        key, value = _FIXES[column](n, v)
        if fixed.setdefault(key, value) != value:
            raise ValueError(f"the counts {dict(reported)} of n = {n} disagree")
    if not fixed:
        raise ValueError("no improved/stable/worsened count reported")
    return fixed


def _full_split(n: int, fixed: Mapping[str, int], reported: Mapping[str, int]) -> tuple[int, int, int] | None:
    """(improved, stable, worsened) when the fixed values leave one split, else None.

    Two of i, s, t fix the third; one category holding all n patients (i = n, s = n or
    t = 0) leaves the others none.
    """
    i, s, t = fixed.get("i"), fixed.get("s"), fixed.get("t")
    if s is not None and t is not None and i is None:
        i = t - s
    elif i is not None and t is not None and s is None:
        s = t - i
    elif len(fixed) == 1 and (i == n or s == n or t == 0):
        i, s = (n if i == n else 0), (n if s == n else 0)
    if i is None or s is None:
        return None
    if i < 0 or s < 0 or i + s > n or (t is not None and t != i + s):
        raise ValueError(f"no split of n = {n} into improved + stable + worsened has the counts {dict(reported)}")
    return i, s, n - i - s


def count_groups(n: int, row) -> tuple[float, dict[str, int]]:
    """The counts likelihood in closed form: (log coefficient, patients per category group).

    The reported counts fix either every category (one split: a multinomial) or exactly one
    (a line of splits, (n - k + 1) of them). Summing the multinomial over a line is a binomial
    of the fixed category against the other two merged (binomial theorem), so the sum over
    every consistent split is ``coef + sum_g count_g * log P(group g)`` exactly. Computed from
    the reported counts alone: O(1) in n, no split is enumerated.
    """
    reported = {c: v for c in COUNT_COLUMNS if (v := _reported(row, c)) is not None}
    fixed = _fixed(n, reported)
    split = _full_split(n, fixed, reported)
    if split is not None:
        coef = special.gammaln(n + 1) - special.gammaln(np.array(split) + 1).sum()
        return float(coef), dict(zip(CATEGORIES, split))
    ((key, value),) = fixed.items()
    k = n - value if key == "t" else value
    if not 0 <= k <= n:
        raise ValueError(f"the counts {reported} do not fit n = {n}")
    name, rest = _BINOMIALS[key]
    return float(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)), {name: k, rest: n - k}


def counts_logp(rows: pd.DataFrame, theta, sigma, default_threshold: float):
    """Per-unit log likelihood of improved/stable/worsened counts (see :func:`count_groups`)."""
    import pymc as pm
    import pytensor.tensor as pt

    grouped = [count_groups(int(r.n), r) for r in rows.itertuples(index=False)]
    used = [g for g in COUNT_GROUPS if any(counts.get(g, 0) for _, counts in grouped)]
    C = np.array([[counts.get(g, 0) for g in used] for _, counts in grouped], dtype=float)
    coef = np.array([c for c, _ in grouped])
    thr = rows["threshold"].fillna(default_threshold).to_numpy(dtype=float)
    dist = pm.Normal.dist(theta, sigma)
    below_lo = pm.logcdf(dist, -thr + HALF_STEP)  # improved: Delta < -t + 1/4
    below_hi = pm.logcdf(dist, thr - HALF_STEP)
    above_hi = pm.logccdf(dist, thr - HALF_STEP)  # worsened: Delta >= t - 1/4
    log_p = {"improved": lambda: below_lo, "worsened": lambda: above_hi,
             "stable": lambda: pm.math.logdiffexp(below_hi, below_lo),
             "stable_or_improved": lambda: below_hi, "stable_or_worsened": lambda: pm.logccdf(dist, -thr + HALF_STEP),
             "improved_or_worsened": lambda: pt.logaddexp(below_lo, above_hi)}
    lp = pt.stack([log_p[g]() for g in used], axis=1)
    return coef + pt.switch(C > 0, C * lp, 0.0).sum(axis=1)


def count_loglik_numpy(theta: float, sigma: float, n: int, row, threshold: float) -> float:
    """The counts likelihood with scipy (tests, checks): the closed form of :func:`count_groups`,
    its coefficient plus each category group's count times the group's log probability."""
    coef, counts = count_groups(n, row)
    lo, hi = -threshold + HALF_STEP, threshold - HALF_STEP
    dist = stats.norm(theta, sigma)
    log_p = {"improved": dist.logcdf(lo), "worsened": dist.logsf(hi), "stable": np.log(dist.cdf(hi) - dist.cdf(lo)),
             "stable_or_improved": dist.logcdf(hi), "stable_or_worsened": dist.logsf(lo),
             "improved_or_worsened": np.logaddexp(dist.logcdf(lo), dist.logsf(hi))}
    return float(coef + sum(c * log_p[g] for g, c in counts.items() if c > 0))


class Counts(Format):
    name = "counts"
    columns = ("improved", "stable", "worsened", "stable_or_improved", "stable_or_worsened", "threshold")
    text = ("numbers improved / stable / worsened (multinomial over the rounded latent change, summed over every "
            "split consistent with what is reported)")
    needs_sigma = True
    no_estimate = "counts only (no mean reported)"

    def available(self, row, patients_at: set) -> bool:
        return any(pd.notna(getattr(row, c)) for c in COUNT_COLUMNS)

    def after_theta(self, ctx: BuildContext, idx: np.ndarray, theta) -> None:
        threshold = ctx.spec.options["default_threshold"]
        lp = counts_logp(ctx.units.iloc[idx], theta[idx], ctx.sigma[idx], threshold)
        w = np.ones(len(idx)) if ctx.counts_weight is None else ctx.counts_weight[idx]
        ctx.terms.append((idx, lp if (w == 1).all() else lp * w))

    def replicates(self, r, theta: np.ndarray, sigma: np.ndarray | None, ctx: CheckContext) -> list[Replicate]:
        """Counts replicated from a multinomial over the rounded latent change."""
        if sigma is None:
            return []
        t = r.threshold if pd.notna(r.threshold) else ctx.default_threshold
        lo, hi = -t + HALF_STEP, t - HALF_STEP
        p_i = stats.norm.cdf(lo, theta, sigma)
        p_w = stats.norm.sf(hi, theta, sigma)
        p = np.clip(np.stack([p_i, 1 - p_i - p_w, p_w], axis=1), 0, 1)
        counts = ctx.rng.multinomial(int(float(r.n)), p / p.sum(axis=1, keepdims=True))
        parts = {"improved": counts[:, 0], "stable": counts[:, 1], "worsened": counts[:, 2],
                 "stable_or_improved": counts[:, 0] + counts[:, 1],
                 "stable_or_worsened": counts[:, 1] + counts[:, 2]}
        return [("counts", f"{c.replace('_', ' ')} (threshold {t:g})", float(getattr(r, c)), parts[c])
                for c in COUNT_COLUMNS if pd.notna(getattr(r, c))]


FORMAT = Counts()
