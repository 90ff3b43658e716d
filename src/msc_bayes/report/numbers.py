"""How the report writes numbers: table cells, probabilities, risks, and an estimate with its interval."""

from __future__ import annotations

import numpy as np
import xarray as xr

from msc_bayes.outcomes.base import ValueFormat
from msc_bayes.results import coord_text, interval_text, quantile_probs, stack_draws


def fmt(x: float, digits: int = 2) -> str:
    """`x` to `digits` decimals with a true minus sign (no "−0.00"); NA when not finite."""
    if not np.isfinite(x):
        return "NA"
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{abs(x):.{digits}f}"
    return text.replace("-", "−")


def num(x: float) -> str:
    """A table number: 3 decimals, or 3 significant digits when smaller than 0.01."""
    if np.isfinite(x) and x != 0 and abs(x) < 0.01:
        return f"{x:.3g}".replace("-", "−")
    return fmt(x, 3)


def prob(p: float) -> str:
    """A probability: 3 decimals near 0 or 1, else 2."""
    return f"{p:.3f}" if p < 0.01 or p > 0.99 else f"{p:.2f}"


def risk(p: float) -> str:
    """A risk in percent: 2 significant digits below 1%, else 1 decimal."""
    pct = 100 * p
    return f"{pct:.2g}%" if pct < 1 else f"{pct:.1f}%"


def signed_g(x) -> str:
    """A coordinate value as :g with a true minus sign."""
    return f"{float(x):g}".replace("-", "−")


def _sig(v: float) -> str:
    return f"{v:.2g}".replace("-", "−")


def estimate(x: np.ndarray, kind: ValueFormat = "num") -> str:
    """Median and interval of draws `x`, e.g. "−0.31 (95% ETI −0.62 to 0.01)"."""
    lo, hi = quantile_probs()
    med, a, b = np.quantile(x, [0.5, lo, hi])
    f = {"risk": risk, "sig": _sig}.get(kind, lambda v: fmt(v, 2))
    text = f"{f(med)} ({interval_text()} {f(a)} to {f(b)})"
    if kind == "log_odds_ratio":
        q = np.exp([med, a, b])
        text += f", i.e. odds ratio {fmt(q[0])} ({interval_text()} {fmt(q[1])} to {fmt(q[2])})"
    return text


def coord_cells(ds: xr.Dataset, name: str) -> list[tuple[str, np.ndarray]]:
    """(coordinate label, samples) of a variable with at most one non-sample dim."""
    x = stack_draws(ds[name])
    if x.ndim == 1:
        return [("", x)]
    dim = next(d for d in ds[name].dims if d not in ("chain", "draw"))
    return [(coord_text(c), x[:, j]) for j, c in enumerate(ds[name][dim].values)]
