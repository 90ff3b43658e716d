"""Reading fitted results: one place that knows the DataTree layout.

Tables carry the interval in their headers (95% ETI by default, never ArviZ's 89%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import INTERVAL_PROB

#: Non-centred offsets are sampler plumbing, not parameters a reader interprets.
OFFSETS = ("study_offset", "sigma_offset", "event_offset", "study_event_offset")


def _quantile_names(prob: float) -> tuple[str, str, str]:
    lo = (1 - prob) / 2 * 100
    return f"q{lo:g}%", "q50%", f"q{100 - lo:g}%"


def _flat(ds: xr.Dataset, names) -> dict[str, np.ndarray]:
    """Every scalar element of the named variables as (chain, draw) arrays, labelled `name[coord,...]`."""
    out = {}
    for name in names:
        da = ds[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            out[name] = da.values
            continue
        stacked = da.stack(_cell=extra)
        for i, key in enumerate(stacked["_cell"].values):
            key = key if isinstance(key, tuple) else (key,)
            out[f"{name}[{','.join(str(k) for k in key)}]"] = stacked.values[..., i]
    return out


def summary(fit, *, prob: float = INTERVAL_PROB, groups=("posterior", "derived"), include_offsets: bool = False):
    """One row per scalar quantity: mean, sd, quantiles, mcse, ess_bulk, ess_tail, r_hat."""
    import arviz as az

    qs = _quantile_names(prob)
    frames = []
    for group in groups:
        if group not in fit.tree.children:
            continue
        ds = fit.tree[group].to_dataset()
        names = [v for v in ds.data_vars if include_offsets or v not in OFFSETS]
        names = [v for v in names if not v.endswith("_latent") or include_offsets]
        flat = _flat(ds, names)
        if not flat:
            continue
        # one array with a quantity dim: ArviZ's diagnostics vectorise over it (per-variable
        # Datasets cost ~1 s per fit in xarray overhead alone)
        values = np.stack([v.astype(float) for v in flat.values()], axis=-1)
        da = xr.DataArray(values, dims=("chain", "draw", "quantity"))
        dims = ["chain", "draw"]
        x = values.reshape(-1, values.shape[-1])
        lo, med, hi = np.quantile(x, [(1 - prob) / 2, 0.5, 1 - (1 - prob) / 2], axis=0)
        with np.errstate(invalid="ignore"):  # see msc_bayes.diagnostics.quantity_table
            diagnostics = {"mcse_mean": az.mcse(da, method="mean", sample_dims=dims).values,
                           "ess_bulk": az.ess(da, method="bulk", sample_dims=dims).values,
                           "ess_tail": az.ess(da, method="tail", sample_dims=dims).values,
                           "r_hat": az.rhat(da, sample_dims=dims).values}
        frames.append(pd.DataFrame({
            "quantity": list(flat), "group": group, "mean": x.mean(axis=0), "sd": x.std(axis=0, ddof=1),
            qs[0]: lo, qs[1]: med, qs[2]: hi, **diagnostics}))
    columns = ["quantity", "group", "mean", "sd", *qs, "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def probability(fit, name: str, *, below: float | None = None, above: float | None = None) -> float:
    """Posterior probability that a scalar quantity lies below/above a value."""
    ds = fit.derived if name in fit.derived else fit.posterior
    x = ds[name].values.ravel()
    if below is not None:
        return float(np.mean(x < below))
    return float(np.mean(x > above))


def interval(fit, name: str, *, prob: float = INTERVAL_PROB) -> tuple[float, float, float]:
    """(median, lower, upper) of a scalar quantity: equal-tailed interval of probability `prob`."""
    ds = fit.derived if name in fit.derived else fit.posterior
    x = ds[name].values.reshape(ds[name].sizes["chain"] * ds[name].sizes["draw"], -1)
    lo, med, hi = np.quantile(x, [(1 - prob) / 2, 0.5, 1 - (1 - prob) / 2], axis=0)
    return (float(med[0]), float(lo[0]), float(hi[0])) if x.shape[1] == 1 else (med, lo, hi)
