"""The checks of each part of a spec (top-level keys, name, outcome, covariates, covariate
options, priors, options, sampler): each adds its problems to a `_Collector` and returns the
valid values, with defaults filled in."""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from msc_bayes.errors import Problem, did_you_mean
from msc_bayes.spec.options import (
    _COVOPT_KEYS,
    _TRANSFORMS,
    CovariateOption,
    OptionInfo,
    _centre,
    _outcome_infos,
)
from msc_bayes.spec.priors import Prior, _finite_float, _validate_prior
from msc_bayes.spec.sampler import _SAMPLER_KEYS, _sampler_issues

_TOP_KEYS = ("name", "outcome", "covariates", "covariate_options", "priors", "options", "sampler")


class _Collector:
    """The problems found in one spec, each placed on the line that defines its key (`lines`)."""

    def __init__(self, file: str, lines: Mapping[str, int] | None = None):
        self.file = file
        self.problems: list[Problem] = []
        self._lines = lines or {}

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
    if value is None and info.default is None:  # an option with no default, not given (a spec's to_dict writes None)
        return True, None
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return True, bool(value)
        c.add(column, value, "true or false")
    elif kind == "positive_float":
        f = _finite_float(value)
        if f is not None and f > 0:
            return True, f
        c.add(column, value, "a finite number > 0")
    elif kind == "numbers":  # a list of finite numbers (thresholds on the outcome's own scale), no duplicates
        floats = [_finite_float(x) if not isinstance(x, bool) else None for x in value] \
            if isinstance(value, (list, tuple)) else None
        if floats is not None and None not in floats and len(set(floats)) == len(floats):
            return True, tuple(floats)
        c.add(column, value, "a list of distinct finite numbers, e.g. [-0.5, 0]")
    elif kind == "text":
        if isinstance(value, str) and value.strip():
            return True, value.strip()
        c.add(column, value, "a non-empty string")
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


def _check_top_keys(c: _Collector, d: dict) -> None:
    for k, value in d.items():
        if not isinstance(k, str) or k not in _TOP_KEYS:
            c.add(str(k), value, "a top-level key: one of " + ", ".join(_TOP_KEYS) + did_you_mean(k, _TOP_KEYS))


def _check_name(c: _Collector, d: dict, default_name: str) -> object:
    name = d.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        c.add("name", name, "a non-empty string")
    return name


def _check_outcome(c: _Collector, d: dict):
    """The declaration of the spec's outcome (:data:`msc_bayes.outcomes.OUTCOMES`), or None."""
    OUTCOMES = _outcome_infos()
    if "outcome" not in d:
        c.add("outcome", None, "outcome = one of " + ", ".join(repr(o) for o in OUTCOMES))
        return None
    outcome = d["outcome"]
    if isinstance(outcome, str) and outcome in OUTCOMES:
        return OUTCOMES[outcome]
    expected = "one of " + ", ".join(repr(o) for o in OUTCOMES)
    c.add("outcome", outcome, expected + did_you_mean(outcome, OUTCOMES))
    return None


def _check_covariates(c: _Collector, d: dict) -> list[str]:
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
    return covariates


def _check_covariate_options(c: _Collector, d: dict, covariates: list[str]) -> dict[str, CovariateOption]:
    """Every covariate's options, in the order of `covariates` (defaults for those not given)."""
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
        option = _check_covariate_option(c, col, body)
        if option is not None:
            cov_options[cov] = option
    for cov in covariates:
        cov_options.setdefault(cov, CovariateOption())
    return {cov: cov_options[cov] for cov in covariates}


def _check_covariate_option(c: _Collector, col: str, body: Mapping) -> CovariateOption | None:
    """The CovariateOption of one ``[covariate_options.<name>]`` table, or None (problems added)."""
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
    if not ok:
        return None
    ref = body.get("reference")
    return CovariateOption(
        transform=body.get("transform", "identity"),
        centre=_centre(body.get("centre", False)),
        scale=bool(body.get("scale", False)),
        reference=int(ref) if isinstance(ref, numbers.Integral) else ref,
    )


#: The prior key every covariate coefficient defaults to, and the prefix of a coefficient's own key:
#: ``beta_<covariate>`` (every column of a covariate), ``beta_<covariate>_<level>`` (one level's column)
COEFFICIENT_KEY = "beta"
COEFFICIENT_PREFIX = COEFFICIENT_KEY + "_"


def coefficient_target(key: str, covariates) -> tuple[str, str | None] | None:
    """(covariate, level or None) a coefficient prior key names, or None when it names no covariate of
    `covariates`. Covariate names hold underscores, so the longest covariate the key starts with wins:
    ``beta_timepoint_months`` is covariate ``timepoint_months``; ``beta_route_IT+IV`` is route's level
    ``IT+IV`` (in TOML a quoted key, ``"beta_route_IT+IV"``)."""
    if not key.startswith(COEFFICIENT_PREFIX):
        return None
    rest = key[len(COEFFICIENT_PREFIX):]
    for cov in sorted(covariates, key=len, reverse=True):
        if rest == cov:
            return cov, None
        if rest.startswith(cov + "_") and len(rest) > len(cov) + 1:
            return cov, rest[len(cov) + 1:]
    return None


def _check_domain(c: _Collector, col: str, key: str, prior: Prior, domain: str) -> bool:
    """Whether `prior`'s support fits the slot's `domain` (a problem added when not)."""
    lo, hi = prior.support
    if domain == "positive" and lo < 0:
        c.add(f"{col}.dist", str(prior), f"a distribution on positive values for '{key}' (e.g. HalfNormal)")
    elif domain == "correlation" and (lo < -1 or hi > 1):
        c.add(f"{col}.dist", str(prior),
              f"a distribution with support within [-1, 1] for '{key}' (e.g. Beta, Uniform(-1, 1))")  # fmt: skip
    elif domain == "share" and (lo < 0 or hi > 1):
        c.add(f"{col}.dist", str(prior), f"a distribution with support within [0, 1] for '{key}' (e.g. Beta)")
    else:
        return True
    return False


def _check_priors(c: _Collector, d: dict, info, covariates=()) -> dict[str, Prior]:
    """The priors of the outcome `info` declares (defaults for those not given), then the coefficient priors
    given (``beta_<covariate>``, ``beta_<covariate>_<level>``: :func:`coefficient_target`, resolved against
    `covariates`; levels are checked when the design is built); {} without an outcome."""
    priors: dict[str, Prior] = {}
    table = _table(c, d, "priors")
    coefficient_ok = info is not None and COEFFICIENT_KEY in info.priors
    for key, body in (table or {}).items():
        col = f"priors.{key}"
        known = info is not None and key in info.priors
        coefficient = (not known and coefficient_ok and coefficient_target(key, covariates) is not None)
        if info is not None and not known and not coefficient:
            if coefficient_ok and key.startswith(COEFFICIENT_PREFIX):
                names = [COEFFICIENT_PREFIX + cov for cov in covariates]
                expected = ("beta_<covariate> or beta_<covariate>_<level>, a covariate of covariates: "
                            + (", ".join(covariates) or "(none listed)") + did_you_mean(key, names))
            else:
                choices = list(info.priors) + (["beta_<covariate>", "beta_<covariate>_<level>"] if coefficient_ok
                                               else [])
                expected = f"a prior of {d['outcome']}: one of " + ", ".join(choices) + did_you_mean(key, info.priors)
            c.add(col, key, expected)
        prior = _check_prior(c, col, body)
        if prior is None or not (known or coefficient):
            continue
        slot = info.priors[COEFFICIENT_KEY if coefficient else key]
        if _check_domain(c, col, key, prior, slot.domain):
            priors[key] = prior
    for key in getattr(info, "required_priors", ()):  # no default can be defended (e.g. an effect size's scale)
        if key not in (table or {}):
            c.add(f"priors.{key}", None, f"a prior stated by the spec: {d['outcome']} has no default for "
                  f"'{key}' ({info.priors[key].description})")
    if info is not None:
        extra = {k: p for k, p in priors.items() if k not in info.priors}
        priors = {k: priors.get(k, slot.default) for k, slot in info.priors.items()} | extra
    return priors


def _check_options(c: _Collector, d: dict, info) -> dict[str, object]:
    """The options of the outcome `info` declares (defaults for those not given); {} without an outcome."""
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
    return options
