"""Declarative, validated model specs (TOML files in ``models/``).

A spec says *which* model to fit (the outcome), *which* covariates enter the
meta-regression, *which* priors to use, a few outcome-specific data-selection
options and the sampler settings. It is parsed with :mod:`tomllib` (never
``eval``) and validated completely before anything is fitted: every problem
found is collected and raised together as one :class:`~msc_bayes.errors.SpecError`.

Minimal spec::

    outcome = "edss_change"          # a key of msc_bayes.outcomes.OUTCOMES
    covariates = ["route", "courses"]  # [] = none
    [priors]                          # keys are the model's variable names
    tau = { dist = "HalfNormal", sigma = 0.5 }

Optional, with defaults (see :data:`msc_bayes.outcomes.OUTCOMES` for the per-outcome ones)::

    name = "EDSS change"             # default: file stem (spec_from_dict: the outcome)
    [covariate_options.courses]      # one table per covariate, all keys optional
    transform = "log"                # "identity" (default) | "log"
    centre = false                   # true: subtract the mean over the arms used; a number: subtract it (default false)
    scale = false                    # divide by the SD over the arms used (default false)
    reference = "IV"                 # categorical reference level (default: first sorted level)
    [options]                        # outcome-specific, see msc_bayes.outcomes.OUTCOMES[outcome].options
    [sampler]                        # draws=1000, tune=1000, chains=4, target_accept=0.9, seed=20261121

Rules worth knowing:

* ``outcome`` and ``covariates`` are required; ``[priors]`` may be omitted or
  partial: every prior key of the outcome that is not given gets its default,
  so :attr:`Spec.priors` and :attr:`Spec.options` are always complete.
  :attr:`Spec.covariate_options` likewise has an entry for every covariate.
* Priors use **one parametrisation per distribution** (the one in
  :data:`DISTRIBUTIONS`); e.g. ``Normal`` takes ``mu``/``sigma`` but not the
  precision ``tau`` (the name clashes with the between-study SD ``tau``).
  Allowed and required parameter names, and the defaults of optional ones, are
  read from the PyMC class's ``dist`` signature with :mod:`inspect`; a
  parameter is required when PyMC gives it no numeric default. Exceptions:
  ``TruncatedNormal`` ``lower``/``upper`` are optional (omitted = unbounded on
  that side) and ``Exponential`` takes exactly one of ``lam`` (rate) or
  ``scale``. Parameter values are finite scalar numbers (stored as floats):
  a positive one (a scale, rate or shape) lies in :data:`PRIOR_SCALE_RANGE`, a
  location or bound within +-:data:`PRIOR_LOCATION_LIMIT`, and a bounded prior's
  width ``upper - lower`` is at least the smallest scale.
* Prior keys with a restricted domain: ``tau``, ``tau_event``, ``sigma_tau``
  and ``sigma_edss`` need a distribution on [0, inf); ``rho`` needs support
  within [-1, 1] (e.g. Beta, Uniform(-1, 1), TruncatedNormal(lower=-1, upper=1)).
* ``[sampler]``: draws, tune and chains are integers >= 1 (nutpie panics on tune = 0), draws
  and tune at most 1,000,000, chains at most 64, draws x chains at most 4,000,000 (every draw is
  kept in memory; nutpie aborts the process when an allocation fails), seed an integer >= 0 and
  < 2**64 (nutpie's unsigned 64-bit integers; see :func:`check_sampler_settings`, which the CLI
  applies to its flags too);
  target_accept is strictly between 0 and 1.
* The spec file must be a regular UTF-8 file (a folder, FIFO, device or dangling link
  is refused without being read) holding valid TOML.
* Covariate names are checked against the evidence tables later, not here.
* ``Problem.row`` is the 1-based **line** of the TOML file when it can be
  located cheaply (syntax errors, and keys found by a simple line scan), else
  None; ``Problem.column`` is the dotted key, e.g. ``priors.tau.dist``.
"""

from __future__ import annotations

import codecs
import functools
import inspect
import json
import math
import numbers
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pymc as pm

from msc_bayes.errors import Problem, SpecError, did_you_mean
from msc_bayes.input_files import NotReadable, read_bytes

__all__ = [
    "CovariateOption",
    "DISTRIBUTIONS",
    "PRIOR_LOCATION_LIMIT",
    "PRIOR_SCALE_RANGE",
    "SAMPLER_INT_MAX",
    "SAMPLER_MAXIMUM",
    "SAMPLER_MAX_KEPT_DRAWS",
    "OptionInfo",
    "OutcomeInfo",
    "Prior",
    "PriorSlot",
    "SamplerSettings",
    "Spec",
    "check_sampler_settings",
    "load_spec",
    "spec_from_dict",
]

# --------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------

#: Parametrisation used for each allowed PyMC distribution: parameter -> its role,
#: "location" | "bound" (real) or "scale" | "rate" | "shape" (positive).
_PARAMETRISATIONS: dict[str, dict[str, str]] = {
    "Normal": {"mu": "location", "sigma": "scale"},
    "HalfNormal": {"sigma": "scale"},
    "HalfCauchy": {"beta": "scale"},
    "HalfStudentT": {"nu": "shape", "sigma": "scale"},
    "StudentT": {"nu": "shape", "mu": "location", "sigma": "scale"},
    "Cauchy": {"alpha": "location", "beta": "scale"},
    "Laplace": {"mu": "location", "b": "scale"},
    "LogNormal": {"mu": "location", "sigma": "scale"},
    "Exponential": {"lam": "rate", "scale": "scale"},
    "Gamma": {"alpha": "shape", "beta": "rate"},
    "InverseGamma": {"alpha": "shape", "beta": "scale"},
    "Beta": {"alpha": "shape", "beta": "shape"},
    "Uniform": {"lower": "bound", "upper": "bound"},
    "TruncatedNormal": {"mu": "location", "sigma": "scale", "lower": "bound", "upper": "bound"},
}
_REAL_ROLES = ("location", "bound")

#: Range of every positive prior parameter (a scale: sigma, b, beta of HalfCauchy, scale; a
#: rate: lam, beta of Gamma; a shape: nu, alpha/beta of Beta and Gamma) and smallest width
#: upper - lower of a bounded prior. The variables are EDSS points (0-10 in 0.5 steps),
#: log-odds or correlations: a scale below 1e-6 is a point mass in disguise, one above 1e6 a
#: flat prior in disguise. Beyond them float64 breaks: sigma = 1e-300 squares to 0 (nutpie
#: crashed with a Rust panic and a segfault), sigma = 1e300 overflows (no initial point).
PRIOR_SCALE_RANGE = (1e-6, 1e6)
#: Largest |value| of a location or bound (mu, alpha of Cauchy, lower, upper): far beyond any
#: EDSS change or log-odds, and (x - mu)**2 cannot overflow (mu = 1e300 leaves no initial point).
PRIOR_LOCATION_LIMIT = 1e6
_ROLE_WORDS = {
    "scale": "a scale, in the variable's units: EDSS points, log-odds, ...",
    "rate": "a rate, per unit of the variable",
    "shape": "a shape, without units",
    "location": "a location, in the variable's units: EDSS points, log-odds, ...",
    "bound": "a bound, in the variable's units",
}
#: Parameters that may be omitted although PyMC's default is None (omitted = unbounded).
_OPTIONAL_UNBOUNDED = {("TruncatedNormal", "lower"), ("TruncatedNormal", "upper")}
#: Distributions taking exactly one parameter out of a group.
_ONE_OF = {"Exponential": ("lam", "scale")}
_REQUIRED = object()


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of an allowed distribution."""

    kind: str  # "real" | "positive"
    default: float | None | object  # a number, None (optional, unbounded) or _REQUIRED
    role: str = "location"  # "location" | "bound" | "scale" | "rate" | "shape" (see _PARAMETRISATIONS)


def _derive_params(dist: str) -> Mapping[str, ParamInfo]:
    sig = inspect.signature(getattr(pm, dist).dist)
    wanted = _PARAMETRISATIONS[dist]
    out: dict[str, ParamInfo] = {}
    for pname, p in sig.parameters.items():
        if pname not in wanted:
            continue  # alternative parametrisations, *args, **kwargs
        if (dist, pname) in _OPTIONAL_UNBOUNDED:
            default: Any = None
        elif dist in _ONE_OF and pname in _ONE_OF[dist]:
            default = None
        elif p.default is inspect.Parameter.empty or p.default is None:
            default = _REQUIRED
        else:
            default = float(p.default)
        role = wanted[pname]
        out[pname] = ParamInfo("real" if role in _REAL_ROLES else "positive", default, role)
    missing = set(wanted) - set(out)
    if missing:  # PyMC API drift: fail loudly at import rather than mis-validate
        raise RuntimeError(f"pymc.{dist}.dist no longer takes {sorted(missing)}")
    return MappingProxyType(out)


#: Allowed distributions -> their parameters (name -> ParamInfo), in PyMC signature order.
DISTRIBUTIONS: Mapping[str, Mapping[str, ParamInfo]] = MappingProxyType(
    {d: _derive_params(d) for d in _PARAMETRISATIONS}
)

_POSITIVE_SUPPORT = {
    "HalfNormal", "HalfCauchy", "HalfStudentT", "LogNormal", "Exponential", "Gamma", "InverseGamma",
}  # fmt: skip


def _support(dist: str, params: Mapping[str, float]) -> tuple[float, float]:
    """Closed hull [lo, hi] of the support of a valid prior."""
    if dist in _POSITIVE_SUPPORT:
        return 0.0, math.inf
    if dist == "Beta":
        return 0.0, 1.0
    if dist == "Uniform":
        return params["lower"], params["upper"]
    if dist == "TruncatedNormal":
        return params.get("lower", -math.inf), params.get("upper", math.inf)
    return -math.inf, math.inf


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _finite_float(x: object) -> float | None:
    """float(x) if x is a finite real number (not a bool), else None."""
    if not _is_number(x):
        return None
    try:
        f = float(x)  # type: ignore[arg-type]
    except (OverflowError, ValueError, TypeError):
        return None
    return f if math.isfinite(f) else None


def _sci(x: float) -> str:
    """1e-06 -> '1e-6', 1000000.0 -> '1e6' (how the bounds are written in messages)."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _param_issue(dist: str, name: str, info: ParamInfo, value: object) -> str | None:
    """What a value of parameter `name` of `dist` should have been, or None if it is valid."""
    f = _finite_float(value)
    where = f"for {dist} parameter '{name}' ({_ROLE_WORDS[info.role]})"
    if info.kind == "positive":
        lo, hi = PRIOR_SCALE_RANGE
        if f is None or not lo <= f <= hi:
            return f"a finite number > 0, between {_sci(lo)} and {_sci(hi)}, {where}"
    elif f is None or abs(f) > PRIOR_LOCATION_LIMIT:
        limit = _sci(PRIOR_LOCATION_LIMIT)
        return f"a finite number between -{limit} and {limit} {where}"
    return None


def _bounds_issue(dist: str, lo: float | None, hi: float | None) -> tuple[str, object, str] | None:
    """The problem with a bounded prior's (lower, upper), or None: upper > lower, by at least the smallest scale."""
    if lo is None or hi is None:
        return None
    if not lo < hi:
        return ("upper", hi, f"upper > lower (= {_fmt(lo)}) for {dist}")
    if hi - lo < PRIOR_SCALE_RANGE[0]:
        return ("upper", hi, f"upper - lower at least {_sci(PRIOR_SCALE_RANGE[0])} for {dist} "
                             f"(lower = {_fmt(lo)}; a narrower prior is a point mass in disguise)")
    return None


def _validate_prior(dist: object, params: Mapping[Any, Any]):
    """Check a distribution name and its parameters.

    Returns ``(normalised_params or None, [(subkey, value, expected), ...])`` where
    subkey is "dist" or a parameter name. Normalised params are floats in PyMC
    signature order, with numeric defaults filled in.
    """
    issues: list[tuple[str, object, str]] = []
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        issues.append(("dist", dist, "one of " + ", ".join(DISTRIBUTIONS) + did_you_mean(dist, DISTRIBUTIONS)))
        for k, v in params.items():
            if _finite_float(v) is None:
                issues.append((str(k), v, "a finite number"))
        return None, issues
    info = DISTRIBUTIONS[dist]
    given: dict[str, float] = {}
    for k, v in params.items():
        if not isinstance(k, str) or k not in info:
            extra = ""
            if dist == "Normal" and k == "tau":
                extra = " (Normal is parametrised by its SD sigma here, not the precision tau)"
            issues.append(
                (str(k), v, f"a parameter of {dist}: one of {', '.join(info)}{extra}" + did_you_mean(k, info))
            )
            continue
        issue = _param_issue(dist, k, info[k], v)
        if issue is None:
            given[k] = float(v)
        else:
            issues.append((k, v, issue))
    for pname, pinfo in info.items():
        if pinfo.default is _REQUIRED and pname not in params:
            issues.append((pname, None, f"parameter '{pname}' (required by {dist})"))
    if dist in _ONE_OF:
        group = _ONE_OF[dist]
        n = sum(p in params for p in group)
        if n != 1:
            found = {p: params[p] for p in group if p in params} or None
            issues.append((group[0], found, f"exactly one of {' or '.join(group)} for {dist}"))
    if issues:
        return None, issues
    lo, hi = given.get("lower"), given.get("upper")
    if dist == "Uniform":
        lo = given.get("lower", float(info["lower"].default))  # type: ignore[arg-type]
        hi = given.get("upper", float(info["upper"].default))  # type: ignore[arg-type]
    bounds = _bounds_issue(dist, lo, hi)
    if bounds is not None:
        return None, [bounds]
    out: dict[str, float] = {}
    for pname, pinfo in info.items():
        if pname in given:
            out[pname] = given[pname]
        elif isinstance(pinfo.default, float):
            out[pname] = pinfo.default
    return out, issues


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


@functools.lru_cache(maxsize=256)
def _logp_function(dist: str, items: tuple[tuple[str, float], ...]):
    import pytensor
    import pytensor.tensor as pt

    # PyTensor's default cast policy ("custom") turns Python constants inside PyMC's logp
    # code, e.g. log(2) in HalfCauchy, into int8/float32, costing ~1e-8 relative accuracy;
    # build this graph with NumPy's casting rules so the density is float64-exact.
    with pytensor.config.change_flags(cast_policy="numpy+floatX"):
        x = pt.dvector("x")
        rv = getattr(pm, dist).dist(**{k: np.float64(v) for k, v in items})
        return pytensor.function([x], pm.logp(rv, x))


def prior_data_name(key: str, param: str) -> str:
    """Name of the ``pm.Data`` holding one prior parameter, e.g. ``prior_tau_sigma``."""
    return f"prior_{key}_{param}"


@dataclass(frozen=True)
class Prior:
    """A prior: a PyMC distribution name and scalar parameters, e.g. ``HalfNormal(sigma=0.5)``.

    Validated on construction (raises SpecError); ``params`` is normalised to an
    immutable mapping of floats with PyMC's numeric defaults filled in, so
    ``Prior("Normal", {"sigma": 1}) == Prior("Normal", {"mu": 0.0, "sigma": 1.0})``.
    """

    dist: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = self.params if isinstance(self.params, Mapping) else {}
        normalised, issues = _validate_prior(self.dist, params)
        if not isinstance(self.params, Mapping):
            issues.append(("params", self.params, "a mapping of parameter name to number"))
        if issues or normalised is None:
            raise SpecError([Problem("<Prior>", None, k, v, e) for k, v, e in issues])
        object.__setattr__(self, "params", MappingProxyType(normalised))

    def __hash__(self) -> int:
        return hash((self.dist, tuple(self.params.items())))

    def __reduce__(self):
        return (Prior, (self.dist, dict(self.params)))

    def __str__(self) -> str:
        return f"{self.dist}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items()) + ")"

    @property
    def support(self) -> tuple[float, float]:
        """Closed hull (lower, upper) of the support, e.g. (0, inf) for HalfNormal."""
        return _support(self.dist, self.params)

    def _pm_kwargs(self) -> dict[str, np.float64]:
        # np.float64, not Python float: PyTensor's cast policy would make e.g. 0.5 a float32
        # constant (exactly representable), computing log(sigma) etc. in single precision.
        return {k: np.float64(v) for k, v in self.params.items()}

    def create(self, name: str, dims=None, model: pm.Model | None = None, key: str | None = None,
               transform=None):
        """Create the random variable ``name`` in ``model`` (default: the current model context).

        Each parameter is a scalar ``pm.Data`` named ``prior_<key>_<param>`` (``key`` defaults
        to ``name``; variables sharing a prior key share the data), so a compiled model can be
        refitted under other parameter values of the same family without recompiling.
        ``transform`` replaces PyMC's default transform (the sampler's coordinates only).
        """
        model = pm.modelcontext(model)
        with model:
            params = {}
            for param, value in self._pm_kwargs().items():
                data_name = prior_data_name(key or name, param)
                if data_name not in model.named_vars:
                    pm.Data(data_name, value)
                params[param] = model[data_name]
            extra = {"default_transform": transform} if transform is not None else {}
            return getattr(pm, self.dist)(name, **params, dims=dims, **extra)

    def dist_rv(self):
        """The unregistered PyMC distribution, ``pm.<dist>.dist(**params)`` (float64 parameters)."""
        return getattr(pm, self.dist).dist(**self._pm_kwargs())

    def logpdf(self, x) -> np.ndarray:
        """Exact log density at each element of ``x`` (-inf outside the support), same shape as x.

        Uses ``pm.logp`` on ``pm.<dist>.dist(**params)``, compiled once per prior.
        """
        arr = np.asarray(x, dtype=float)
        fn = _logp_function(self.dist, tuple(self.params.items()))
        return np.asarray(fn(arr.ravel()), dtype=float).reshape(arr.shape)

    def to_dict(self) -> dict:
        """Flat TOML/JSON form: ``{"dist": "HalfNormal", "sigma": 0.5}``."""
        return {"dist": self.dist, **self.params}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prior:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, Mapping):
            raise SpecError([Problem("<Prior>", None, None, d, 'a table like { dist = "Normal", sigma = 1 }')])
        d = dict(d)
        if "dist" not in d:
            raise SpecError([Problem("<Prior>", None, "dist", None, "a distribution name under 'dist'")])
        dist = d.pop("dist")
        return cls(dist, d)


# --------------------------------------------------------------------------------------
# Outcome registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorSlot:
    """An allowed prior key of an outcome: its default prior, meaning and required domain."""

    default: Prior
    description: str
    domain: str = "real"  # "real" | "positive" ([0, inf)) | "correlation" ([-1, 1])


@dataclass(frozen=True)
class OptionInfo:
    """An allowed ``[options]`` key of an outcome.

    kind: "choice" (one string of ``choices``), "subset" (non-empty list of unique
    strings from ``choices``, order kept), "strings" (list of unique non-empty
    strings), "bool", "positive_float".
    """

    kind: str
    default: object
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutcomeInfo:
    description: str
    priors: Mapping[str, PriorSlot]
    options: Mapping[str, OptionInfo]


# --------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------

_TRANSFORMS = ("identity", "log")


def _centre(value) -> bool | float:
    return bool(value) if isinstance(value, (bool, np.bool_)) else float(value)


@dataclass(frozen=True)
class CovariateOption:
    """How one covariate enters the regression.

    transform: "identity" | "log" (numeric covariates, applied before centring);
    centre: false, true (subtract the mean over the arms used) or a number (subtract that
    value, on the transformed scale: e.g. 12 for follow-up in months, so the intercept is
    the 12-month value); scale: divide by the SD over the arms used;
    reference: reference level of a categorical covariate (None = first level in sorted order).
    """

    transform: str = "identity"
    centre: bool | float = False
    scale: bool = False
    reference: str | int | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"transform": self.transform, "centre": self.centre, "scale": self.scale}
        if self.reference is not None:
            d["reference"] = self.reference
        return d


#: Largest draws, tune, chains or seed: nutpie takes them as unsigned 64-bit integers (a
#: negative or larger value is an OverflowError inside nutpie).
SAMPLER_INT_MAX = 2**64 - 1
#: Smallest value of each integer sampler setting. tune = 0 makes nutpie's adaptation panic
#: (Rust "assertion failed: early_end < num_tune"), so at least one tuning step.
_SAMPLER_MINIMUM = {"draws": 1, "tune": 1, "chains": 1, "seed": 0}
_SAMPLER_KEYS = ("draws", "tune", "chains", "target_accept", "seed")


#: Largest draws/tune per chain and number of chains: every draw of every chain is kept in memory,
#: and nutpie aborts the process (no exception) when an allocation fails (--chains 100000 or
#: --draws 10**12 did). A million draws per chain is far beyond any use on this evidence.
SAMPLER_MAXIMUM = {"draws": 1_000_000, "tune": 1_000_000, "chains": 64, "seed": SAMPLER_INT_MAX}
#: Largest draws x chains kept (memory: a few GB for the EDSS model's quantities).
SAMPLER_MAX_KEPT_DRAWS = 4_000_000


def _sampler_int_issue(value: object, key: str) -> str | None:
    minimum, maximum = _SAMPLER_MINIMUM[key], SAMPLER_MAXIMUM[key]
    integral = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if integral and minimum <= value <= maximum:  # type: ignore[operator]
        return None
    if maximum == SAMPLER_INT_MAX:
        return f"an integer >= {minimum} and < 2**64 (nutpie takes unsigned 64-bit integers)"
    return f"an integer >= {minimum} and <= {maximum:,}"


def _target_accept_issue(value: object) -> str | None:
    f = _finite_float(value)
    return None if f is not None and 0 < f < 1 else "a number strictly between 0 and 1"


def _sampler_issues(settings: Mapping[str, object]) -> list[tuple[str, object, str]]:
    """(key, value, expected) for each invalid setting among `settings` (keys of _SAMPLER_KEYS)."""
    issues = []
    for key, value in settings.items():
        if key == "target_accept":
            expected = _target_accept_issue(value)
        else:
            expected = _sampler_int_issue(value, key)
        if expected is not None:
            issues.append((key, value, expected))
    draws, chains = settings.get("draws"), settings.get("chains")
    if not issues and draws is not None and chains is not None and draws * chains > SAMPLER_MAX_KEPT_DRAWS:
        issues.append(("draws", draws, f"at most {SAMPLER_MAX_KEPT_DRAWS:,} draws in all chains together "
                                        f"(here {chains} chains: at most {SAMPLER_MAX_KEPT_DRAWS // chains:,} each)"))
    return issues


def check_sampler_settings(*, draws: object = None, tune: object = None, chains: object = None,
                           seed: object = None, target_accept: object = None, source: str = "<sampler>",
                           prefix: str = "") -> list[Problem]:
    """The problems with sampler settings, by the rules of a spec's ``[sampler]`` table (empty if none).

    None means "not given" and is not checked. Each Problem names ``source`` as its file and
    ``prefix + setting`` as its column, e.g. for command-line flags::

        problems = check_sampler_settings(draws=args.draws, tune=args.tune, chains=args.chains,
                                          seed=args.seed, source="command line", prefix="--")
        if problems:
            raise SpecError(problems)

    Rules: draws, tune and chains are integers >= 1, seed an integer >= 0 and at most
    :data:`SAMPLER_INT_MAX`; draws and tune at most 1,000,000, chains at most 64 and draws x chains
    at most :data:`SAMPLER_MAX_KEPT_DRAWS` (when both are given); target_accept a number strictly
    between 0 and 1.
    """
    given = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept}
    given = {k: v for k, v in given.items() if v is not None}
    return [Problem(source, None, prefix + k, v, e) for k, v, e in _sampler_issues(given)]


@dataclass(frozen=True)
class SamplerSettings:
    """nutpie's settings; validated on construction (raises SpecError, see :func:`check_sampler_settings`)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    seed: int = 20261121

    def __post_init__(self) -> None:
        problems = check_sampler_settings(**self.to_dict(), source="<SamplerSettings>")
        if problems:
            raise SpecError(problems)

    def to_dict(self) -> dict:
        return {
            "draws": self.draws, "tune": self.tune, "chains": self.chains,
            "target_accept": self.target_accept, "seed": self.seed,
        }  # fmt: skip


_TOP_KEYS = ("name", "outcome", "covariates", "covariate_options", "priors", "options", "sampler")
_COVOPT_KEYS = ("transform", "centre", "scale", "reference")


@dataclass(frozen=True)
class Spec:
    """A validated model spec. Build with :func:`load_spec`, :func:`spec_from_dict` or :meth:`replace`.

    ``priors``, ``options`` and ``covariate_options`` are complete (defaults filled in)
    and immutable. ``path`` is provenance only: it is not part of equality or ``to_dict``.
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
    def outcome_info(self) -> OutcomeInfo:
        return _outcome_infos()[self.outcome]

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
        merged key by key). ``covariates`` replaces the list; option tables of
        covariates no longer listed are dropped. Raises SpecError like loading does.
        """
        d = self.to_dict()
        if name is not None:
            d["name"] = name
        if covariates is not None:
            d["covariates"] = list(covariates) if isinstance(covariates, (list, tuple)) else covariates
            if isinstance(covariates, (list, tuple)):
                d["covariate_options"] = {k: v for k, v in d["covariate_options"].items() if k in covariates}
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


def _outcome_infos() -> Mapping[str, OutcomeInfo]:
    """Outcome name -> its declaration (the outcomes registry imports this module, so it is imported here)."""
    from msc_bayes.outcomes import OUTCOMES

    return OUTCOMES


def _rebuild(d: dict, path: str | None) -> Spec:
    return _build(d, file=path or "<dict>", path=path, default_name=d.get("name", "spec"))


# --------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEYVAL_RE = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_INLINE_KEY_RE = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")
_TOML_LINE_RE = re.compile(r"at line (\d+)")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _key_lines(text: str) -> dict[str, int]:
    """Best-effort map dotted key -> first 1-based line defining it (a cheap scan, not a parser)."""
    lines: dict[str, int] = {}
    table: tuple[str, ...] = ()
    for i, line in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(line)
        if m:
            table = _split_key(m.group(1))
            lines.setdefault(".".join(table), i)
            continue
        m = _KEYVAL_RE.match(line)
        if m:
            key = table + _split_key(m.group(1))
            lines.setdefault(".".join(key), i)
            for sub in _INLINE_KEY_RE.findall(line[m.end() :]):
                lines.setdefault(".".join(key + _split_key(sub)), i)
    return lines


class _Collector:
    def __init__(self, file: str, text: str | None = None):
        self.file = file
        self.problems: list[Problem] = []
        self._lines = _key_lines(text) if text else {}

    def row(self, column: str | None) -> int | None:
        parts = re.sub(r"\[\d+\]", "", column).split(".") if column else []
        while parts:
            line = self._lines.get(".".join(parts))
            if line is not None:
                return line
            parts.pop()
        return None

    def add(self, column: str | None, value: object, expected: str) -> None:
        self.problems.append(Problem(self.file, self.row(column), column, value, expected))


def _table(c: _Collector, d: dict, key: str) -> dict | None:
    """d[key] as a dict with string keys, or None (problem added) / {} when absent."""
    v = d.get(key, {})
    if not isinstance(v, Mapping):
        c.add(key, v, f"a table [{key}]")
        return None
    out = {}
    for k, x in v.items():
        if isinstance(k, str):
            out[k] = x
        else:
            c.add(f"{key}.{k}", k, "a string key")
    return out


def _check_prior(c: _Collector, column: str, body: object) -> Prior | None:
    if not isinstance(body, Mapping):
        c.add(column, body, 'an inline table like { dist = "Normal", mu = 0, sigma = 1 }')
        return None
    params = {k: v for k, v in body.items() if k != "dist"}
    if "dist" not in body:
        c.add(f"{column}.dist", None, 'a distribution name, e.g. dist = "Normal"')
        for k, v in params.items():
            if _finite_float(v) is None:
                c.add(f"{column}.{k}", v, "a finite number")
        return None
    normalised, issues = _validate_prior(body["dist"], params)
    for sub, value, expected in issues:
        c.add(f"{column}.{sub}", value, expected)
    return None if normalised is None else Prior(body["dist"], normalised)


def _check_option(c: _Collector, column: str, value: object, info: OptionInfo) -> tuple[bool, object]:
    kind, choices = info.kind, info.choices
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return True, bool(value)
        c.add(column, value, "true or false")
    elif kind == "positive_float":
        f = _finite_float(value)
        if f is not None and f > 0:
            return True, f
        c.add(column, value, "a finite number > 0")
    elif kind == "choice":
        if isinstance(value, str) and value in choices:
            return True, value
        c.add(column, value, "one of " + ", ".join(repr(x) for x in choices) + did_you_mean(value, choices))
    elif kind in ("subset", "strings"):
        if not isinstance(value, (list, tuple)):
            what = "a list of " + ("strings from " + ", ".join(repr(x) for x in choices) if choices else "strings")
            c.add(column, value, what)
            return False, None
        ok = True
        seen: set[str] = set()
        for i, x in enumerate(value):
            if not isinstance(x, str) or not x:
                c.add(f"{column}[{i}]", x, "a non-empty string")
                ok = False
            elif kind == "subset" and x not in choices:
                c.add(f"{column}[{i}]", x, "one of " + ", ".join(repr(y) for y in choices) + did_you_mean(x, choices))
                ok = False
            elif x in seen:
                c.add(f"{column}[{i}]", x, "no duplicates")
                ok = False
            else:
                seen.add(x)
        if kind == "subset" and not value:
            c.add(column, value, "at least one of " + ", ".join(repr(y) for y in choices))
            ok = False
        if ok:
            return True, tuple(value)
    else:  # pragma: no cover - registry bug
        raise AssertionError(kind)
    return False, None


def _check_sampler(c: _Collector, table: Mapping[str, object] | None) -> dict[str, Any]:
    """The valid settings of a ``[sampler]`` table as ints / a float (problems added for the rest)."""
    table = table or {}
    for key, value in table.items():
        if key not in _SAMPLER_KEYS:
            c.add(f"sampler.{key}", value, "one of " + ", ".join(_SAMPLER_KEYS) + did_you_mean(key, _SAMPLER_KEYS))
    known = {k: v for k, v in table.items() if k in _SAMPLER_KEYS}
    bad = set()
    for key, value, expected in _sampler_issues(known):
        c.add(f"sampler.{key}", value, expected)
        bad.add(key)
    valid = {k: v for k, v in known.items() if k not in bad}
    return {k: float(v) if k == "target_accept" else int(v) for k, v in valid.items()}  # type: ignore[arg-type]


def _build(d: object, *, file: str, path: str | None, default_name: str, text: str | None = None) -> Spec:
    c = _Collector(file, text)
    if not isinstance(d, Mapping):
        c.add(None, d, "a table of spec keys (outcome, covariates, priors, ...)")
        raise SpecError(c.problems)
    d = dict(d)
    for k in d:
        if not isinstance(k, str) or k not in _TOP_KEYS:
            c.add(str(k), d[k], "a top-level key: one of " + ", ".join(_TOP_KEYS) + did_you_mean(k, _TOP_KEYS))

    # name
    name = d.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        c.add("name", name, "a non-empty string")

    # outcome
    info: OutcomeInfo | None = None
    OUTCOMES = _outcome_infos()
    if "outcome" not in d:
        c.add("outcome", None, "outcome = one of " + ", ".join(repr(o) for o in OUTCOMES))
    else:
        outcome = d["outcome"]
        if isinstance(outcome, str) and outcome in OUTCOMES:
            info = OUTCOMES[outcome]
        else:
            expected = "one of " + ", ".join(repr(o) for o in OUTCOMES)
            c.add("outcome", outcome, expected + did_you_mean(outcome, OUTCOMES))

    # covariates
    covariates: list[str] = []
    if "covariates" not in d:
        c.add("covariates", None, "covariates = a list of column names ([] for none)")
    elif not isinstance(d["covariates"], (list, tuple)):
        c.add("covariates", d["covariates"], "a list of column names ([] for none)")
    else:
        for i, cov in enumerate(d["covariates"]):
            if not isinstance(cov, str) or not cov.strip():
                c.add(f"covariates[{i}]", cov, "a non-empty string (a column of the arms table)")
            elif cov in covariates:
                c.add(f"covariates[{i}]", cov, "no duplicate covariates")
            else:
                covariates.append(cov)

    # covariate options
    cov_options: dict[str, CovariateOption] = {}
    table = _table(c, d, "covariate_options")
    for cov, body in (table or {}).items():
        col = f"covariate_options.{cov}"
        if cov not in covariates:
            c.add(col, cov, "a covariate listed in covariates: " + (", ".join(covariates) or "(none)")
                  + did_you_mean(cov, covariates))  # fmt: skip
            continue
        if not isinstance(body, Mapping):
            c.add(col, body, f"a table [{col}] with keys " + ", ".join(_COVOPT_KEYS))
            continue
        ok = True
        for k, v in body.items():
            kcol = f"{col}.{k}"
            if k not in _COVOPT_KEYS:
                c.add(kcol, v, "one of " + ", ".join(_COVOPT_KEYS) + did_you_mean(k, _COVOPT_KEYS))
                ok = False
            elif k == "transform" and not (isinstance(v, str) and v in _TRANSFORMS):
                c.add(kcol, v, "one of " + ", ".join(repr(t) for t in _TRANSFORMS) + did_you_mean(v, _TRANSFORMS))
                ok = False
            elif k == "scale" and not isinstance(v, (bool, np.bool_)):
                c.add(kcol, v, "true or false")
                ok = False
            elif k == "centre" and not (isinstance(v, (bool, np.bool_)) or _finite_float(v) is not None):
                c.add(kcol, v, "true, false, or a number to subtract")
                ok = False
            elif k == "reference" and not (
                (isinstance(v, str) and v != "")
                or (isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)))
            ):
                c.add(kcol, v, "a level of the covariate (a non-empty string or an integer)")
                ok = False
        if ok:
            ref = body.get("reference")
            cov_options[cov] = CovariateOption(
                transform=body.get("transform", "identity"),
                centre=_centre(body.get("centre", False)),
                scale=bool(body.get("scale", False)),
                reference=int(ref) if isinstance(ref, numbers.Integral) else ref,
            )
    for cov in covariates:
        cov_options.setdefault(cov, CovariateOption())
    cov_options = {cov: cov_options[cov] for cov in covariates}

    # priors
    priors: dict[str, Prior] = {}
    table = _table(c, d, "priors")
    for key, body in (table or {}).items():
        col = f"priors.{key}"
        if info is not None and key not in info.priors:
            expected = f"a prior of {d['outcome']}: one of " + ", ".join(info.priors)
            c.add(col, key, expected + did_you_mean(key, info.priors))
        prior = _check_prior(c, col, body)
        if prior is None or info is None or key not in info.priors:
            continue
        lo, hi = prior.support
        domain = info.priors[key].domain
        if domain == "positive" and lo < 0:
            c.add(f"{col}.dist", str(prior), f"a distribution on positive values for '{key}' (e.g. HalfNormal)")
        elif domain == "correlation" and (lo < -1 or hi > 1):
            c.add(f"{col}.dist", str(prior),
                  f"a distribution with support within [-1, 1] for '{key}' (e.g. Beta, Uniform(-1, 1))")  # fmt: skip
        else:
            priors[key] = prior
    if info is not None:
        priors = {k: priors.get(k, slot.default) for k, slot in info.priors.items()}

    # options
    options: dict[str, object] = {}
    table = _table(c, d, "options")
    for key, value in (table or {}).items():
        col = f"options.{key}"
        if info is None:
            continue  # cannot judge without a valid outcome
        if key not in info.options:
            expected = f"an option of {d['outcome']}: one of " + ", ".join(info.options)
            c.add(col, value, expected + did_you_mean(key, info.options))
            continue
        ok, v = _check_option(c, col, value, info.options[key])
        if ok:
            options[key] = v
    if info is not None:
        options = {k: options.get(k, oi.default) for k, oi in info.options.items()}

    sampler_kw = _check_sampler(c, _table(c, d, "sampler"))

    if c.problems:
        raise SpecError(c.problems)
    assert info is not None
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


#: Largest spec file read (bytes); the bundled specs are ~5 kB.
MAX_SPEC_BYTES = 2**20
def _read_spec_bytes(p: Path, file: str) -> bytes:
    try:
        return read_bytes(p, MAX_SPEC_BYTES)
    except NotReadable as exc:
        raise SpecError([Problem(file, None, None, str(exc), "a readable TOML file (a regular file)")]) from None


def _decode_spec(raw: bytes, file: str) -> str:
    """The text of a UTF-8 spec (a leading byte-order mark dropped); SpecError naming the line otherwise."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        found = raw[max(exc.start - 10, 0) : exc.end + 10]
        expected = f"UTF-8 text (byte {column} of line {line} is not UTF-8; save the file as UTF-8)"
        raise SpecError([Problem(file, line, None, found, expected)]) from None


def _parse_toml(text: str, file: str) -> dict:
    """tomllib.loads(text); SpecError with the line (row) and tomllib's message (with the column) otherwise."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE_RE.search(str(exc))
        row = int(m.group(1)) if m else None
        lines = text.splitlines()
        line = lines[row - 1] if row and row <= len(lines) else None
        raise SpecError([Problem(file, row, None, line, f"valid TOML ({exc})")]) from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file; raises SpecError listing every problem found.

    The file must be a regular file (a folder, FIFO, device or dangling link is a SpecError,
    and is never read) of at most MAX_SPEC_BYTES, UTF-8 and valid TOML.
    """
    p = Path(path)
    file = str(path)
    text = _decode_spec(_read_spec_bytes(p, file), file)
    return _build(_parse_toml(text, file), file=file, path=file, default_name=p.stem, text=text)


def spec_from_dict(d: Mapping[str, Any], *, source: str = "<dict>") -> Spec:
    """Validate a spec given as a dict (same rules as :func:`load_spec`).

    ``source`` names the origin in error messages. The default name is the outcome.
    """
    default = d.get("outcome") if isinstance(d, Mapping) else None
    return _build(d, file=source, path=None, default_name=default if isinstance(default, str) else "spec")
