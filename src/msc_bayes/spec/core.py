"""`Spec`, a validated model spec, and `_build`, which checks every part of a spec
(:mod:`msc_bayes.spec.checks`) and makes one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from msc_bayes.errors import SpecError
from msc_bayes.spec.checks import (
    _check_covariate_options,
    _check_covariates,
    _check_name,
    _check_options,
    _check_outcome,
    _check_priors,
    _check_sampler,
    _check_top_keys,
    _Collector,
    _table,
    coefficient_target,
)
from msc_bayes.spec.options import CovariateOption, _outcome_infos
from msc_bayes.spec.priors import Prior
from msc_bayes.spec.sampler import SamplerSettings

if TYPE_CHECKING:
    from msc_bayes.outcomes import Outcome


@dataclass(frozen=True)
class Spec:
    """A validated model spec. Build with :func:`load_spec`, :func:`spec_from_dict` or :meth:`replace`.

    ``priors``, ``options`` and ``covariate_options`` are complete (defaults filled in)
    and immutable; ``priors`` also holds the coefficient priors the spec gives (``beta_<covariate>``,
    ``beta_<covariate>_<level>``: :meth:`coefficient_prior`). ``path`` is provenance only: it is not part
    of equality or ``to_dict``.
    """

    path: str | None = field(compare=False)
    name: str
    outcome: str
    covariates: tuple[str, ...]
    covariate_options: Mapping[str, CovariateOption]
    priors: Mapping[str, Prior]
    options: Mapping[str, object]
    sampler: SamplerSettings

    def __post_init__(self) -> None:
        object.__setattr__(self, "covariates", tuple(self.covariates))
        for f in ("covariate_options", "priors", "options"):
            value = getattr(self, f)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, f, MappingProxyType(dict(value)))

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __reduce__(self):
        return (_rebuild, (self.to_dict(), self.path))

    @property
    def outcome_info(self) -> Outcome:
        return _outcome_infos()[self.outcome]

    def coefficient_key(self, column: str) -> str:
        """The prior key that sets the coefficient of design column `column` (``"route[IT]"``, ``"courses"``):
        the most specific given of ``beta_<covariate>_<level>``, ``beta_<covariate>``, else ``beta``."""
        covariate, level = column, None
        if column.endswith("]") and "[" in column:
            covariate, level = column[:column.index("[")], column[column.index("[") + 1:-1]
        own = self.outcome_info.priors
        given = {coefficient_target(k, self.covariates): k for k in self.priors if k not in own}
        return given.get((covariate, level)) or given.get((covariate, None)) or "beta"

    def coefficient_prior(self, column: str) -> Prior:
        """The prior of the coefficient of design column `column` (:meth:`coefficient_key`'s prior): the one
        home of "which prior does this covariate effect have", for the model, the findings, the sensitivity
        analyses, the figures and the report."""
        return self.priors[self.coefficient_key(column)]

    def to_dict(self) -> dict:
        """Complete, JSON-serialisable form; itself a valid spec (``spec_from_dict`` inverts it)."""
        return {
            "name": self.name,
            "outcome": self.outcome,
            "covariates": list(self.covariates),
            "covariate_options": {k: v.to_dict() for k, v in self.covariate_options.items()},
            "priors": {k: p.to_dict() for k, p in self.priors.items()},
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
            "sampler": self.sampler.to_dict(),
        }

    def replace(
        self,
        *,
        name: str | None = None,
        covariates=None,
        covariate_options: Mapping[str, Any] | None = None,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        options: Mapping[str, Any] | None = None,
        sampler: SamplerSettings | Mapping[str, Any] | None = None,
    ) -> Spec:
        """A new validated Spec with some fields changed.

        ``priors``, ``options``, ``sampler`` and ``covariate_options`` are merged into the
        current values (only the keys given change; a covariate's option table is
        merged key by key). ``covariates`` replaces the list; option tables and coefficient priors of
        covariates no longer listed are dropped. Raises SpecError like loading does.
        """
        d = self.to_dict()
        if name is not None:
            d["name"] = name
        if covariates is not None:
            d["covariates"] = list(covariates) if isinstance(covariates, (list, tuple)) else covariates
            if isinstance(covariates, (list, tuple)):
                d["covariate_options"] = {k: v for k, v in d["covariate_options"].items() if k in covariates}
                own = self.outcome_info.priors  # coefficient priors of covariates no longer listed are dropped too
                d["priors"] = {k: v for k, v in d["priors"].items()
                               if k in own or coefficient_target(k, covariates) is not None}
        if covariate_options is not None:
            for k, v in dict(covariate_options).items():
                v = v.to_dict() if isinstance(v, CovariateOption) else v
                old = d["covariate_options"].get(k, {})
                d["covariate_options"][k] = {**old, **v} if isinstance(v, Mapping) else v
        if priors is not None:
            for k, p in dict(priors).items():
                d["priors"][k] = p.to_dict() if isinstance(p, Prior) else p
        if options is not None:
            d["options"].update(dict(options))
        if sampler is not None:
            d["sampler"].update(sampler.to_dict() if isinstance(sampler, SamplerSettings) else dict(sampler))
        return _build(d, file=self.path or "<dict>", path=self.path, default_name=self.name)


def _rebuild(d: dict, path: str | None) -> Spec:
    return _build(d, file=path or "<dict>", path=path, default_name=d.get("name", "spec"))


def _build(d: object, *, file: str, path: str | None, default_name: str,
           lines: Mapping[str, int] | None = None) -> Spec:
    """The validated Spec of `d`, or one SpecError listing every problem, part by part in the
    order of the spec's keys. `lines` (dotted key -> line of the file) places each problem."""
    c = _Collector(file, lines)
    if not isinstance(d, Mapping):
        c.add(None, d, "a table of spec keys (outcome, covariates, priors, ...)")
        raise SpecError(c.problems)
    d = dict(d)
    _check_top_keys(c, d)
    name = _check_name(c, d, default_name)
    info = _check_outcome(c, d)
    covariates = _check_covariates(c, d)
    cov_options = _check_covariate_options(c, d, covariates)
    priors = _check_priors(c, d, info, covariates)
    options = _check_options(c, d, info)
    sampler_kw = _check_sampler(c, _table(c, d, "sampler"))
    if c.problems:
        raise SpecError(c.problems)
    assert info is not None
    sampler_kw.setdefault("target_accept", info.target_accept)  # none given: the outcome's (Outcome.target_accept)
    sampler_kw.setdefault("tune", info.tune)  # likewise (Outcome.tune)
    return Spec(
        path=path,
        name=name,
        outcome=d["outcome"],
        covariates=tuple(covariates),
        covariate_options=MappingProxyType(cov_options),
        priors=MappingProxyType(priors),
        options=MappingProxyType(options),
        sampler=SamplerSettings(**sampler_kw),
    )
