"""A fitted model (`Fit`: the posterior DataTree plus what produced it) and the versions it records."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import xarray as xr

from msc_bayes import INTERVAL_PROB, results

#: Packages whose versions every fit records (attrs ``versions``) and a report lists.
_PACKAGES = ("msc_bayes", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats", "numpy", "xarray", "pandas")


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
        return results.group(self, "posterior")

    @property
    def derived(self) -> xr.Dataset:
        return results.group(self, "derived")

    @property
    def notes(self) -> list[str]:
        return results.attr_json(self, "notes", [])

    def summary(self, prob: float = INTERVAL_PROB):
        """One row per quantity, indexed by ``quantity``: group, mean, sd, the interval's ends and median
        (95% equal-tailed by default: ``eti95_lower``, ``median``, ``eti95_upper``), mcse_mean, ess_bulk, ess_tail,
        r_hat (:func:`msc_bayes.results.summary`; the columns of ``summary.csv``)."""
        return results.summary(self, prob=prob)

    def convergence(self):
        """The convergence gate's verdict on this fit, as ``fit`` and ``report`` judge it
        (:func:`msc_bayes.diagnostics.convergence`): ``passed``, ``reasons`` (R-hat, ESS, divergences) and
        ``warnings`` (E-BFMI, tree depth). ``mb.fit`` samples once and never refits: check it."""
        from msc_bayes.diagnostics import convergence

        return convergence(self)

    def to_netcdf(self, path) -> None:
        """Write the DataTree; Ctrl-C or SIGTERM meanwhile waits until the file is written."""
        from msc_bayes.output import signals_deferred

        with signals_deferred():
            self.tree.to_netcdf(path)
