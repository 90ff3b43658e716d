"""How the report writes numbers of draws: an estimate with its interval, and the cells of a variable.

The rules for writing a number live in :mod:`msc_bayes.numbers` (shared with the findings and the figures);
this module keeps what reads draws.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from msc_bayes.numbers import interval
from msc_bayes.outcomes.base import ValueFormat
from msc_bayes.results import coord_text, interval_text, quantile_probs, stack_draws


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
