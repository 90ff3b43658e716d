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
    return f"{pct:.2g}%" if pct < 0.995 else f"{pct:.1f}%"  # 0.996% is "1.0%", not "1%"


def signed_g(x) -> str:
    """A coordinate value as :g with a true minus sign."""
    return f"{float(x):g}".replace("-", "−")


def _sig(v: float) -> str:
    return f"{v:.2g}".replace("-", "−")


def sig3(x: float) -> str:
    """A number with at most 3 significant digits and a true minus sign (a prior's parameter: −0.357, 0.5, 2)."""
    return f"{float(x):.3g}".replace("-", "−")


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n` with its noun, singular for exactly 1: "1 divergent transition", "0 divergent transitions"."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"


def interval(med: float, lo: float, hi: float, kind: ValueFormat = "num", *, label: str = "") -> str:
    """A median with its interval ends as a reader sees them: EDSS-like numbers to 2 decimals (2 significant
    digits when every end is below 0.1), risks in %, a log odds ratio with its odds ratio; `label` (e.g.
    "95% ETI") opens the bracket: "−0.31 (95% ETI −0.62 to 0.01)"."""
    if kind == "risk":
        f = risk
    elif kind == "sig" or (kind == "num" and 0 < max(abs(med), abs(lo), abs(hi)) < 0.1):
        f = _sig
    else:
        f = lambda v: fmt(v, 2)
    head = f"{label} " if label else ""
    text = f"{f(med)} ({head}{f(lo)} to {f(hi)})"
    if kind == "log_odds_ratio":
        q = np.exp([med, lo, hi])
        text += f", i.e. odds ratio {fmt(q[0])} ({head}{fmt(q[1])} to {fmt(q[2])})"
    return text


def estimate(x: np.ndarray, kind: ValueFormat = "num") -> str:
    """Median and interval of draws `x`, e.g. "−0.31 (95% ETI −0.62 to 0.01)"."""
    lo, hi = quantile_probs()
    med, a, b = np.quantile(x, [0.5, lo, hi])
    return interval(med, a, b, kind, label=interval_text())


def coord_cells(ds: xr.Dataset, name: str) -> list[tuple[str, np.ndarray]]:
    """(coordinate label, samples) of a variable with at most one non-sample dim."""
    x = stack_draws(ds[name])
    if x.ndim == 1:
        return [("", x)]
    dim = next(d for d in ds[name].dims if d not in ("chain", "draw"))
    return [(coord_text(c), x[:, j]) for j, c in enumerate(ds[name][dim].values)]
