"""Fitting: spec + evidence -> a self-describing posterior `xarray.DataTree`.

Each outcome module provides `build(spec, evidence) -> (pm.Model, prepared)` (pure,
never samples) and `derive(posterior, prepared, spec) -> xarray.Dataset` (quantities
computed from the draws: contrasts, predictions, probability statements).
"""

from __future__ import annotations

import importlib
import json
import time
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


def fit(spec, evidence: Evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, target_accept: float | None = None, progress: bool = False) -> Fit:
    """Sample the posterior of `spec` on `evidence` with nutpie; settings default to the spec's."""
    import pymc as pm

    s = spec.sampler
    draws, tune, chains = draws or s.draws, tune or s.tune, chains or s.chains
    seed = s.seed if seed is None else seed
    target_accept = target_accept or s.target_accept
    model, prepared = build(spec, evidence)
    start = time.perf_counter()
    with model:
        tree = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, target_accept=target_accept,
                         nuts_sampler="nutpie", progressbar=progress, compute_convergence_checks=False)
    elapsed = time.perf_counter() - start
    posterior = tree["posterior"].to_dataset()
    if "loglik" in posterior:  # the per-arm log likelihood belongs in its own group (for LOO)
        tree["log_likelihood"] = xr.DataTree(posterior[["loglik"]].rename({"loglik": spec.outcome}))
        tree["posterior"] = xr.DataTree(posterior.drop_vars("loglik"))
        posterior = posterior.drop_vars("loglik")
    tree["derived"] = xr.DataTree(_module(spec.outcome).derive(posterior, prepared, spec))
    tree.attrs.update({
        "spec": json.dumps(spec.to_dict()),
        "priors": json.dumps({k: str(v) for k, v in spec.priors.items()}),
        "seed": int(seed), "draws": int(draws), "tune": int(tune), "chains": int(chains),
        "target_accept": float(target_accept), "data_hash": evidence.data_hash, "data_path": str(evidence.path),
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
