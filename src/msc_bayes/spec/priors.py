"""Priors as declared data: the allowed distributions and their one parametrisation each
(`DISTRIBUTIONS`, read from PyMC's signatures), the validation of a prior's parameters, `Prior`
and an outcome's `PriorSlot`."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pymc as pm

from msc_bayes.errors import Problem, SpecError, did_you_mean

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
        return ("upper", hi, (f"upper - lower at least {_sci(PRIOR_SCALE_RANGE[0])} for {dist} "
                              f"(lower = {_fmt(lo)}; a narrower prior is a point mass in disguise)"))
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


@functools.lru_cache(maxsize=64)
def _logp_function(dist: str, names: tuple[str, ...]):
    """``f(x, *parameter values)``: the log density of `dist`, compiled once per family and
    parameter names (a sensitivity grid of many prior values compiles each family once). Python
    ops (``FAST_COMPILE``): it runs a few times per analysis, where a numba compile cost 3-6 s."""
    import pytensor
    import pytensor.tensor as pt

    # PyTensor's default cast policy ("custom") turns Python constants inside PyMC's logp
    # code, e.g. log(2) in HalfCauchy, into int8/float32, costing ~1e-8 relative accuracy;
    # build this graph with NumPy's casting rules so the density is float64-exact.
    with pytensor.config.change_flags(cast_policy="numpy+floatX"):
        x = pt.dvector("x")
        params = [pt.dscalar(name) for name in names]
        rv = getattr(pm, dist).dist(**dict(zip(names, params)))
        return pytensor.function([x, *params], pm.logp(rv, x), mode="FAST_COMPILE")


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

        Uses ``pm.logp`` on ``pm.<dist>.dist(**params)``, compiled once per family (the values are inputs).
        """
        arr = np.asarray(x, dtype=float)
        fn = _logp_function(self.dist, tuple(self.params))
        values = [np.float64(v) for v in self.params.values()]
        return np.asarray(fn(arr.ravel(), *values), dtype=float).reshape(arr.shape)

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


@dataclass(frozen=True)
class PriorSlot:
    """An allowed prior key of an outcome: its default prior, meaning and required domain."""

    default: Prior
    description: str
    domain: str = "real"  # "real" | "positive" ([0, inf)) | "correlation" ([-1, 1]) | "share" ([0, 1])
