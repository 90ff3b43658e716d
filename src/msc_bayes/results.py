"""Reading fitted results: one place that knows the DataTree layout.

Tables carry the interval in their headers (95% ETI by default, never ArviZ's 89%).
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import INTERVAL_PROB

#: Non-centred offsets are sampler plumbing, not parameters a reader interprets.
OFFSETS = ("study_offset", "sigma_offset", "event_offset", "study_event_offset")

#: Groups of a fitted DataTree.
Group = Literal["posterior", "derived", "sample_stats", "log_likelihood", "prior", "prior_predictive",
                "posterior_predictive", "observed_data", "constant_data"]
#: Where a named quantity is looked up, in order.
QUANTITY_GROUPS: tuple[Group, ...] = ("posterior", "derived")
_SAMPLE_DIMS = ("chain", "draw")


# --------------------------------------------------------------------------------------
# Access: the only code that indexes a fitted DataTree's groups
# --------------------------------------------------------------------------------------


def tree_of(fit) -> xr.DataTree:
    """The DataTree of a fit (anything with a ``.tree``) or the DataTree itself."""
    return fit if isinstance(fit, xr.DataTree) else fit.tree


def group(fit, name: Group) -> xr.Dataset | None:
    """One group of a fit as a Dataset, or None when the fit has no such group."""
    tree = tree_of(fit)
    return tree[name].to_dataset() if name in tree.children else None


def where(fit, name: str) -> Group | None:
    """The group holding a quantity: posterior first, then derived; None if neither has it."""
    tree = tree_of(fit)
    for g in QUANTITY_GROUPS:
        if g in tree.children and name in tree[g].data_vars:
            return g
    return None


def has(fit, name: str) -> bool:
    """Whether a variable is in the posterior or derived group."""
    return where(fit, name) is not None


def variable(fit, name: str) -> xr.DataArray:
    """A posterior or derived variable (posterior first); KeyError naming both groups if absent."""
    g = where(fit, name)
    if g is None:
        raise KeyError(f"{name!r} is in neither the posterior nor the derived group")
    return tree_of(fit)[g].to_dataset()[name]


def draws(fit, name: str) -> np.ndarray:
    """(samples,) or (samples, *other dims) array of a posterior or derived variable, chains stacked."""
    return stack_draws(variable(fit, name))


def stack_draws(da: xr.DataArray) -> np.ndarray:
    """A variable's values with chain and draw stacked into the first axis (other dims kept in order)."""
    extra = [d for d in da.dims if d not in _SAMPLE_DIMS]
    da = da.transpose(*_SAMPLE_DIMS, *extra)
    return da.values.reshape(da.sizes["chain"] * da.sizes["draw"], *[da.sizes[d] for d in extra])


def cell_label(name: str, keys) -> str:
    """The one label of a scalar cell: ``name`` or ``name[coord,...]`` (float coords as :g)."""
    return f"{name}[{','.join(_coord_text(k) for k in keys)}]" if len(keys) else name


def _coord_text(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def iter_cells(da: xr.DataArray):
    """(label, (chain, draw) array) for every scalar cell of a variable, in C order of its other dims."""
    extra = [d for d in da.dims if d not in _SAMPLE_DIMS]
    da = da.transpose(*_SAMPLE_DIMS, *extra)
    if not extra:
        yield da.name, da.values
        return
    for idx in np.ndindex(*[da.sizes[d] for d in extra]):
        yield cell_label(da.name, [da[d].values[i] for d, i in zip(extra, idx)]), da.values[(..., *idx)]


def cells(fit, name: str) -> dict[str, np.ndarray]:
    """{label: (chain, draw) array} of every scalar cell of a posterior or derived variable."""
    return dict(iter_cells(variable(fit, name)))


def attrs(fit) -> dict:
    """The fit's provenance attributes (spec, priors, seed, data hash, versions, notes)."""
    return dict(tree_of(fit).attrs)


def attr_json(fit, key: str, default=None):
    """A JSON-encoded attribute decoded, or `default` when the fit does not carry it."""
    value = tree_of(fit).attrs.get(key)
    return default if value is None else json.loads(value)


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
