"""Reading fitted results: the one place that knows the DataTree layout.

- Access (:func:`group`, :func:`has`, :func:`variable`, :func:`draws`, :func:`cells`,
  :func:`attrs`, :func:`attr_json`): the rest of the package reads a fit through these and
  never indexes its groups by string. A scalar cell is labelled ``name[coord,...]`` (float
  coordinates as ``:g``) everywhere.
- The interval (:func:`interval_columns`, :func:`interval_text`, :func:`quantile_probs`): the
  package's one interval, ``INTERVAL_PROB`` equal-tailed, named in every table header (never
  ArviZ's default 89%).
- The one summary engine (:func:`quantity_summary`): per reported scalar quantity its mean,
  sd, median, interval ends, P(< 0), MCSE (mean, sd, interval ends), bulk/tail ESS, R-hat and
  whether it is constant, ArviZ run once over all quantities. :func:`summary` (``Fit.summary``,
  the report's summary CSV), ``diagnostics.quantity_table`` / ``convergence`` and
  ``sweep.summarise`` are column selections of it.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB

#: Variables that are sampler plumbing (non-centred offsets, latent draws), not quantities a reader interprets.
PLUMBING_SUFFIXES = ("_offset", "_latent", "_part")  # _part: a group of coefficients of one prior family (beta)

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
    return f"{name}[{','.join(coord_text(k) for k in keys)}]" if len(keys) else name


def coord_text(value) -> str:
    """A coordinate value as a label writes it (floats as :g)."""
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


def design_terms(fit) -> list[dict]:
    """The design's covariate terms (name, kind, levels, transform, centre, scale), from the fit's attrs."""
    return attr_json(fit, "design", {"terms": []}).get("terms", [])


def reference_covariates(fit) -> list[tuple[str, str]]:
    """(covariate, value) at the design's zero, where the pooled estimates hold: a categorical
    covariate's first level, a numeric one's centre on the raw scale, e.g. [('route', 'IV'), ('courses', '1')]."""
    out = []
    for t in design_terms(fit):
        if t["kind"] == "categorical" and t["levels"]:
            out.append((t["name"], str(t["levels"][0])))
        elif t["kind"] == "numeric":
            raw = float(np.exp(t["centre"])) if t["transform"] == "log" else float(t["centre"])
            out.append((t["name"], f"{raw:.3g}"))
    return out


def reference_text(fit) -> str:
    """The reference covariates (the design's zero), e.g. 'route IV, courses 1'."""
    return ", ".join(f"{name} {value}" for name, value in reference_covariates(fit))


# --------------------------------------------------------------------------------------
# The interval
# --------------------------------------------------------------------------------------


def interval_columns(prefix: str = "", *, prob: float = INTERVAL_PROB) -> tuple[str, str]:
    """Column names of the interval ends, e.g. ('eti95_lower', 'eti95_upper')."""
    tag = f"{INTERVAL_KIND.lower()}{prob * 100:g}"
    return f"{prefix}{tag}_lower", f"{prefix}{tag}_upper"


def interval_text() -> str:
    """'95% ETI' (the one interval used everywhere)."""
    return f"{INTERVAL_PROB:.0%} {INTERVAL_KIND}"


def quantile_probs(prob: float = INTERVAL_PROB) -> tuple[float, float]:
    """The probabilities of the interval ends, e.g. (0.025, 0.975)."""
    return (1 - prob) / 2, 1 - (1 - prob) / 2


def median_interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, lower, upper) over the first axis (the draws) of `x`: the interval of figures and study estimates."""
    lo, hi = quantile_probs()
    q = np.quantile(x, [0.5, lo, hi], axis=0)
    return q[0], q[1], q[2]


# --------------------------------------------------------------------------------------
# The summary engine
# --------------------------------------------------------------------------------------


def is_plumbing(name: str) -> bool:
    return name.endswith(PLUMBING_SUFFIXES)


def reported_cells(fit, quantities: Sequence[str] | None = None, *,
                   include_plumbing: bool = False) -> dict[tuple[Group, str], np.ndarray]:
    """{(group, label): (chain, draw) float array} of the quantities a summary reports.

    Default: every posterior and derived variable, plumbing left out (unless
    `include_plumbing`); a derived variable repeating a posterior one (e.g. ``msc_effect``) is
    listed once. `quantities` instead names, in order, variables (all their cells) or single
    cell labels (``route_contrast[IT vs IV]``), each looked up in the posterior, then the
    derived group; names the fit lacks are skipped.
    """
    tree = tree_of(fit)
    if quantities is None:
        quantities = [name for g in QUANTITY_GROUPS if g in tree.children for name in tree[g].data_vars
                      if include_plumbing or not is_plumbing(name)]
    out: dict[tuple[Group, str], np.ndarray] = {}
    for q in quantities:
        name = q.split("[", 1)[0]
        g = where(tree, name)
        if g is None:
            continue
        for label, values in iter_cells(tree[g].to_dataset()[name]):
            if q in (name, label):
                out.setdefault((g, label), values.astype(float))
    return out


#: Columns of :func:`quantity_summary`, in order.
LOWER, UPPER = interval_columns()
MCSE_LOWER, MCSE_UPPER = interval_columns("mcse_")
QUANTITY_COLUMNS = ("quantity", "group", "mean", "sd", "median", LOWER, UPPER, "prob_below_0", "mcse_mean",
                    "mcse_sd", MCSE_LOWER, MCSE_UPPER, "ess_bulk", "ess_tail", "r_hat", "constant")
#: Columns of :func:`summary` (``Fit.summary()``, indexed by the first; the report's ``<key>_summary.csv``), in order.
SUMMARY_COLUMNS = ("quantity", "group", "mean", "sd", LOWER, "median", UPPER, "mcse_mean", "ess_bulk", "ess_tail",
                   "r_hat")
_SUMMARIES: dict[int, tuple[weakref.ref, pd.DataFrame]] = {}  # the default table per tree, by id


def quantity_summary(fit, quantities: Sequence[str] | None = None, *, include_plumbing: bool = False,
                     prob: float = INTERVAL_PROB) -> pd.DataFrame:
    """One row per reported scalar quantity (:func:`reported_cells`), :data:`QUANTITY_COLUMNS`.

    Constant quantities (every draw equal) have MCSE 0 and no ESS or R-hat (NaN). The default
    table of a fit is computed once and kept while its DataTree lives.
    """
    tree = tree_of(fit)
    default = quantities is None and not include_plumbing and prob == INTERVAL_PROB
    ref, table = _SUMMARIES.get(id(tree), (None, None))
    if default and ref is not None and ref() is tree:
        return table.copy()
    table = _summarise(reported_cells(tree, quantities, include_plumbing=include_plumbing), prob)
    if default:
        for key in [k for k, (r, _) in _SUMMARIES.items() if r() is None]:
            del _SUMMARIES[key]
        _SUMMARIES[id(tree)] = (weakref.ref(tree), table)
    return table.copy()


def _summarise(cells: dict[tuple[str, str], np.ndarray], prob: float) -> pd.DataFrame:
    lower, upper = interval_columns(prob=prob)
    mcse_lower, mcse_upper = interval_columns("mcse_", prob=prob)
    columns = [{LOWER: lower, UPPER: upper, MCSE_LOWER: mcse_lower, MCSE_UPPER: mcse_upper}.get(c, c)
               for c in QUANTITY_COLUMNS]
    if not cells:
        return pd.DataFrame(columns=columns)
    values = np.stack(list(cells.values()), axis=-1)  # (chain, draw, quantity)
    x = values.reshape(-1, values.shape[-1])
    q_lo, q_hi = quantile_probs(prob)
    lo, med, hi = np.quantile(x, [q_lo, 0.5, q_hi], axis=0)
    constant = np.all(values == values[:1, :1], axis=(0, 1))
    table = pd.DataFrame({
        "quantity": [label for _, label in cells], "group": [g for g, _ in cells], "mean": x.mean(axis=0),
        "sd": x.std(axis=0, ddof=1) if len(x) > 1 else np.nan, "median": med, lower: lo, upper: hi,
        "prob_below_0": np.mean(x < 0, axis=0), "constant": constant})
    for c, v in (("mcse_mean", 0.0), ("mcse_sd", 0.0), (mcse_lower, 0.0), (mcse_upper, 0.0),
                 ("ess_bulk", np.nan), ("ess_tail", np.nan), ("r_hat", np.nan)):
        table[c] = v
    if (~constant).any():
        for c, r in _arviz_diagnostics(values[..., ~constant], q_lo, q_hi).items():
            table.loc[~constant, {"mcse_lower": mcse_lower, "mcse_upper": mcse_upper}.get(c, c)] = r
    return table[columns]


def _arviz_diagnostics(values: np.ndarray, q_lo: float, q_hi: float) -> dict[str, np.ndarray]:
    """ArviZ's R-hat, ESS and MCSE of (chain, draw, quantity) draws, vectorised over the quantity dim
    (per-variable Datasets cost ~1 s per fit in xarray overhead alone)."""
    import arviz as az

    da = xr.DataArray(values, dims=(*_SAMPLE_DIMS, "quantity"))
    dims = list(_SAMPLE_DIMS)
    # errstate: a two-valued quantity (a probability indicator) with exactly half its draws
    # at each value has its median halfway between them, so the folded draws |x - median|
    # behind the tail R-hat are constant and ArviZ divides 0 by 0, then uses the bulk R-hat.
    # Only that division's RuntimeWarning is silenced; the values are ArviZ's.
    with np.errstate(invalid="ignore"):
        results = {
            "r_hat": az.rhat(da, sample_dims=dims, method="rank"),
            "ess_bulk": az.ess(da, sample_dims=dims, method="bulk"),
            "ess_tail": az.ess(da, sample_dims=dims, method="tail"),
            "mcse_mean": az.mcse(da, sample_dims=dims, method="mean"),
            "mcse_sd": az.mcse(da, sample_dims=dims, method="sd"),
            "mcse_lower": az.mcse(da, sample_dims=dims, method="quantile", prob=q_lo),
            "mcse_upper": az.mcse(da, sample_dims=dims, method="quantile", prob=q_hi),
        }
    return {c: np.asarray(r.values, dtype=float) for c, r in results.items()}


def summary(fit, *, prob: float = INTERVAL_PROB) -> pd.DataFrame:
    """One row per reported scalar quantity, indexed by ``quantity`` (``mu``, ``beta[route[IT]]``), with the
    other :data:`SUMMARY_COLUMNS` of :func:`quantity_summary` (the columns of ``summary.csv``: the interval's
    ends named by it, ``eti95_lower``/``eti95_upper`` by default). ``.to_csv(path)`` writes ``summary.csv``
    (its first column ``quantity``); ``summary().loc["mu", "median"]`` reads one number."""
    lower, upper = interval_columns(prob=prob)
    table = quantity_summary(fit, prob=prob)[[{LOWER: lower, UPPER: upper}.get(c, c) for c in SUMMARY_COLUMNS]]
    return table.set_index("quantity")
