"""Fitting: spec + evidence -> a self-describing posterior `xarray.DataTree`.

Each outcome module provides `build(spec, evidence) -> (pm.Model, prepared)` (pure,
never samples) and `derive(posterior, prepared, spec) -> xarray.Dataset` (quantities
computed from the draws: contrasts, predictions, probability statements).
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import xarray as xr

from msc_bayes import INTERVAL_KIND, INTERVAL_PROB
from msc_bayes.evidence import Evidence

#: The one seed used where none is given (specs carry their own).
DEFAULT_SEED = 20261121
_PACKAGES = ("msc_bayes", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats", "numpy", "xarray", "pandas")


#: Which module models each outcome (spec `outcome` -> module with build/derive).
OUTCOME_MODULES = {"edss_change": "edss", "adverse_events": "adverse_events", "mri_activity": "adverse_events"}


def _module(outcome: str):
    return importlib.import_module(f"msc_bayes.{OUTCOME_MODULES[outcome]}")


def versions() -> dict[str, str]:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:  # pragma: no cover - an optional package
            out[p] = "not installed"
    return out


@dataclass(frozen=True)
class Fit:
    """A fitted model: the posterior DataTree plus what produced it."""

    tree: xr.DataTree
    spec: object
    prepared: object

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def derived(self) -> xr.Dataset:
        return self.tree["derived"].to_dataset()

    @property
    def notes(self) -> list[str]:
        return json.loads(self.tree.attrs["notes"])

    def summary(self, prob: float = INTERVAL_PROB):
        from msc_bayes.results import summary

        return summary(self, prob=prob)

    def to_netcdf(self, path) -> None:
        self.tree.to_netcdf(path)


def build(spec, evidence: Evidence):
    """The PyMC model for a spec (no sampling): (model, prepared)."""
    return _module(spec.outcome).build(spec, evidence)


#: Compiled models kept in this process: a refit with other prior values (same families),
#: other unit weights or another seed reuses the compiled model instead of recompiling.
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_MAX = 16
#: One fit at a time per process (nutpie already uses every core): the cached models' data
#: are set for the fit in hand.
_FIT_LOCK = threading.RLock()


def _structure_key(spec, evidence: Evidence) -> str:
    """What fixes a model's compiled form: everything but prior values and sampler settings."""
    d = spec.to_dict()
    d.pop("sampler", None)
    d["priors"] = {k: v["dist"] for k, v in d.get("priors", {}).items()}
    return json.dumps(d, sort_keys=True, default=str) + "|" + evidence.data_hash


def compiled(spec, evidence: Evidence):
    """(nutpie compiled model, pm.Model, prepared) for this spec's structure, compiled once per process
    (and loaded from :mod:`msc_bayes.compile_cache` when another process compiled the same graph)."""
    from msc_bayes.compile_cache import compile_model

    key = _structure_key(spec, evidence)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    model, prepared = build(spec, evidence)
    entry = (compile_model(model), model, prepared)
    _COMPILED[key] = entry
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return entry


def fit(spec, evidence: Evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, target_accept: float | None = None, exclude_studies=(),
        progress: bool = False) -> Fit:
    """Sample the posterior of `spec` on `evidence` with nutpie; settings default to the spec's.

    `exclude_studies` gives those studies' arms zero likelihood weight: an exact
    leave-out refit of the same compiled model (their arms stay in `loglik`, so the
    left-out study's predictive density can be read off the draws).
    """
    import nutpie

    from msc_bayes.spec import prior_data_name

    s = spec.sampler
    draws, tune, chains = draws or s.draws, tune or s.tune, chains or s.chains
    seed = s.seed if seed is None else seed
    target_accept = target_accept or s.target_accept
    model_c, model, prepared = compiled(spec, evidence)
    data_names = {d.name for d in model.data_vars}
    updates = {prior_data_name(k, p): v for k, prior in spec.priors.items() for p, v in prior.params.items()
               if prior_data_name(k, p) in data_names}
    unknown = set(exclude_studies) - set(prepared.units["study"])
    if unknown:
        raise ValueError(f"exclude_studies: {sorted(unknown)} not among the modelled studies")
    updates["unit_weight"] = (~prepared.units["study"].isin(list(exclude_studies))).to_numpy(dtype=float)
    # nutpie's initial point (support point + jitter) is computed from the PyMC model's own
    # pm.Data, while with_data only reaches the sampler's logp: set both, so the draws depend
    # only on (spec, evidence, settings), never on which spec compiled the cached model.
    with _FIT_LOCK:
        for name, value in updates.items():
            model[name].set_value(np.asarray(value, dtype=model[name].dtype))
        sampler = model_c.with_data(**updates)
        start = time.perf_counter()
        tree = nutpie.sample(sampler, draws=draws, tune=tune, chains=chains, seed=int(seed),
                             target_accept=target_accept, progress_bar=progress, save_warmup=False)
        elapsed = time.perf_counter() - start
    posterior = tree["posterior"].to_dataset()
    if "loglik" in posterior:  # the per-arm log likelihood belongs in its own group (for LOO)
        tree["log_likelihood"] = xr.DataTree(posterior[["loglik"]].rename({"loglik": spec.outcome}))
        posterior = posterior.drop_vars("loglik")
        tree["posterior"] = xr.DataTree(posterior)
    seeded = spec if spec.sampler.seed == seed else spec.replace(sampler={"seed": int(seed)})
    tree["derived"] = xr.DataTree(_module(spec.outcome).derive(posterior, prepared, seeded))
    tree.attrs.update({
        "spec": json.dumps(spec.to_dict()),
        "priors": json.dumps({k: str(v) for k, v in spec.priors.items()}),
        "seed": int(seed), "draws": int(draws), "tune": int(tune), "chains": int(chains),
        "target_accept": float(target_accept), "data_hash": evidence.data_hash, "data_path": str(evidence.path),
        "excluded_studies": json.dumps(sorted(exclude_studies)),
        "versions": json.dumps(versions()), "sampling_seconds": float(elapsed),
        "interval": f"{INTERVAL_PROB:.0%} {INTERVAL_KIND}", "notes": json.dumps(list(prepared.notes)),
        "design": json.dumps(prepared.design.to_dict()),
        "units": json.dumps(list(prepared.units["label"])),
    })
    return Fit(tree, spec, prepared)


def draws_of(ds: xr.Dataset, name: str) -> np.ndarray:
    """(chain, draw, ...) array of a variable, or zeros of (chain, draw) if the model has none."""
    if name in ds:
        return ds[name].values
    return np.zeros((ds.sizes["chain"], ds.sizes["draw"]))
