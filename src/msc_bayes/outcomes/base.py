"""What an outcome is: the `Outcome` a spec's ``outcome`` names, and the `Quantity` a report headlines.

An outcome declares, as data, everything the rest of the package needs to know about it:
its prior slots and ``[options]`` (checked when a spec is loaded), the evidence tables and
reporting formats it reads, `prepare` / `build` / `derive`, the quantities a report
headlines (label, unit, direction), its probability thresholds, and the sentences that
describe its model and formats in a report's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from msc_bayes.spec import OptionInfo, PriorSlot

Direction = Literal["lower_better", "higher_better", "none"]


@dataclass(frozen=True)
class Quantity:
    """A headline quantity: a variable of the fit (posterior or derived) and how a reader sees it.

    ``direction`` says which way is good ("lower_better": negative = improvement for a
    change in EDSS, a lower risk for events); ``scale`` is the axis a figure draws it on.
    """

    name: str
    label: str
    unit: str
    direction: Direction = "none"
    scale: str = ""


@dataclass(frozen=True)
class Outcome:
    """One modelled outcome (a spec's ``outcome``), registered in :mod:`msc_bayes.outcomes`.

    - ``prepare(spec, evidence) -> prepared`` selects the modelled units (pure; no PyMC);
    - ``build(spec, evidence) -> (pm.Model, prepared)`` never samples;
    - ``derive(posterior, prepared, spec) -> xarray.Dataset`` the derived quantities
      (``spec.sampler.seed`` seeds any random draw);
    - ``study_estimates(posterior, prepared)`` / ``observed_estimates(prepared)`` /
      ``predictive_checks(posterior, prepared, spec, rng)``: the per-unit shrunken and
      observed estimates and the posterior-predictive checks (see `msc_bayes.diagnostics`).
    """

    name: str
    description: str
    priors: Mapping[str, PriorSlot]
    options: Mapping[str, OptionInfo]
    tables: tuple[str, ...]
    formats: tuple[str, ...]
    prepare: Callable
    build: Callable
    derive: Callable
    #: the per-unit estimate variable of the posterior (dim ``arm``), e.g. theta or risk_arm
    unit_estimate: str = "theta"
    #: the quantities a report headlines, in order
    headline: tuple[Quantity, ...] = ()
    #: thresholds of the derived probability statements (on the outcome's scale)
    thresholds: tuple[float, ...] = ()
    #: prior key -> the posterior variables it sets when they are not named after the key
    prior_variables: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: the methods sentence of the model, and of each reporting format
    model_text: str = ""
    format_text: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: whether a report gives the outcome a sensitivity section
    sensitivity: bool = False
    study_estimates: Callable | None = None
    observed_estimates: Callable | None = None
    predictive_checks: Callable | None = None

    def quantity(self, name: str) -> Quantity:
        """The headline `Quantity` called `name` (KeyError if the outcome headlines none of that name)."""
        for q in self.headline:
            if q.name == name:
                return q
        raise KeyError(name)
