"""Covariate design: arms table + spec -> a numeric design matrix, shared by every model.

Rules (documented in ARCHITECTURE.md):
- Treatment characteristics (route, courses, administrations, cell source/origin, dose)
  describe the MSC given, so they act on `msc` arms only; a control arm's row is 0.
  Every other covariate (disease, follow-up, baseline EDSS, a user's column) acts on all arms.
- Categorical covariates get one column per non-reference level (`route[IT]`).
- Numeric covariates enter on the scale given; the spec may ask for `log`, centring (on the
  mean over the arms used, or on a value it names) and scaling. Priors refer to that final scale.
- `courses` reported only as a range (courses_min..courses_max) is an unknown: a latent
  parameter, uniform over the range, not an imputed number.
- An arm lacking a value the model needs is left out, with a note saying so.
- Each coefficient's prior is the spec's most specific of ``beta_<covariate>_<level>``, ``beta_<covariate>``,
  ``beta`` (:meth:`msc_bayes.spec.Spec.coefficient_prior`); a level key must name a non-reference level of
  the arms used (checked here, when the design is built).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from msc_bayes.errors import Problem, SpecError, did_you_mean

TREATMENT_COVARIATES = frozenset({
    "route", "courses", "administrations", "cell_source", "cell_origin", "dose_per_kg_million", "dose_cells_million",
})
#: Covariates read from the outcome row rather than arms.csv.
ROW_COVARIATES = frozenset({"timepoint_months"})


@dataclass(frozen=True)
class Latent:
    """An unknown covariate value: row `row`, column `column`, uniform on [low, high] (raw scale)."""

    row: int
    column: int
    low: float
    high: float


@dataclass(frozen=True)
class Term:
    """How one covariate becomes columns of the design matrix."""

    name: str
    kind: str  # "numeric" | "categorical"
    columns: tuple[str, ...]
    treatment: bool
    levels: tuple[str, ...] = ()  # categorical: all levels, reference first
    transform: str = "identity"
    centre: float = 0.0
    scale: float = 1.0

    def encode(self, value) -> np.ndarray:
        """Columns for one raw value (used to predict for a new study)."""
        if self.kind == "categorical":
            return np.array([1.0 if value == lvl else 0.0 for lvl in self.levels[1:]])
        x = np.log(value) if self.transform == "log" else float(value)
        return np.array([(x - self.centre) / self.scale])

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "columns": list(self.columns), "treatment": self.treatment,
                "levels": list(self.levels), "transform": self.transform, "centre": self.centre, "scale": self.scale}


@dataclass(frozen=True)
class Design:
    X: np.ndarray  # (units, columns); NaN where a value is latent
    columns: tuple[str, ...]
    terms: tuple[Term, ...]
    latent: tuple[Latent, ...]
    kept: np.ndarray  # boolean mask over the input rows
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "terms": [t.to_dict() for t in self.terms]}


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def design(units: pd.DataFrame, spec, label: pd.Series) -> Design:
    """Design matrix for `units` (one row per modelled unit, with the arms columns)."""
    problems = []
    for name in spec.covariates:
        if name not in units.columns and name not in ROW_COVARIATES:
            problems.append(Problem(spec.path or "<spec>", None, "covariates", name,
                                    "a column of arms.csv" + did_you_mean(name, [c for c in units.columns])))
    if problems:
        raise SpecError(problems)
    is_msc = (units["group"].fillna("msc") == "msc").to_numpy()
    keep = np.ones(len(units), dtype=bool)
    notes = []
    raw_columns: list[tuple[str, pd.Series, bool]] = []
    for name in spec.covariates:
        treatment = name in TREATMENT_COVARIATES
        values = units[name]
        needed = is_msc if treatment else np.ones(len(units), dtype=bool)
        if name == "courses" and {"courses_min", "courses_max"} <= set(units.columns):
            has_range = values.isna() & units["courses_min"].notna() & units["courses_max"].notna()
            missing = values.isna().to_numpy() & ~has_range.to_numpy()
        else:
            missing = np.array([_missing(v) for v in values])
        for i in np.flatnonzero(missing & needed & keep):
            notes.append(f"{label.iloc[i]} left out: {name} not reported")
        keep &= ~(missing & needed)
        raw_columns.append((name, values, treatment))

    terms, blocks, latent = [], [], []
    col = 0
    for name, values, treatment in raw_columns:
        active = keep & (is_msc if treatment else True)
        opts = spec.covariate_options.get(name)
        present = values[active & values.notna().to_numpy()]
        numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
        if numeric:
            transform = opts.transform if opts else "identity"
            x = values.to_numpy(dtype=float, na_value=np.nan)
            lo = hi = None
            if name == "courses" and "courses_min" in units:
                lo = units["courses_min"].to_numpy(dtype=float, na_value=np.nan)
                hi = units["courses_max"].to_numpy(dtype=float, na_value=np.nan)
            if transform == "log":
                bad = active & (x <= 0)
                if bad.any():
                    raise SpecError([Problem(spec.path or "<spec>", None, f"covariate_options.{name}.transform", "log",
                                             f"positive values of {name} (found {x[bad][0]:g})")])
            t = (lambda v: np.log(v)) if transform == "log" else (lambda v: v)
            # centring/scaling constants over the arms used; latent values at their range midpoint
            ref_vals = np.where(np.isnan(x) & (lo is not None), (t(lo) + t(hi)) / 2 if lo is not None else np.nan, t(x))
            ref_vals = ref_vals[active & ~np.isnan(ref_vals)]
            if opts and not isinstance(opts.centre, bool):
                centre = float(opts.centre)  # a value the spec names, e.g. 12 months
            else:
                centre = float(ref_vals.mean()) if opts and opts.centre and len(ref_vals) else 0.0
            scale = float(ref_vals.std(ddof=1)) if opts and opts.scale and len(ref_vals) > 1 else 1.0
            scale = scale if scale > 0 else 1.0
            block = np.where(active, (t(x) - centre) / scale, 0.0)[:, None]
            if lo is not None:
                for i in np.flatnonzero(active & np.isnan(x)):
                    block[i, 0] = np.nan
                    latent.append(Latent(int(i), col, float(lo[i]), float(hi[i])))
            terms.append(Term(name, "numeric", (name,), treatment, transform=transform, centre=centre, scale=scale))
        else:
            levels = sorted({str(v) for v in present})
            reference = opts.reference if opts and opts.reference else (levels[0] if levels else None)
            if reference is not None and reference not in levels:
                raise SpecError([Problem(spec.path or "<spec>", None, f"covariate_options.{name}.reference", reference,
                                         f"a level of {name} in the arms used: {levels}" + did_you_mean(reference, levels))])
            levels = [reference] + [lv for lv in levels if lv != reference] if levels else []
            cols = tuple(f"{name}[{lv}]" for lv in levels[1:])
            sv = values.astype(object).to_numpy()
            block = np.array([[1.0 if (a and str(v) == lv) else 0.0 for lv in levels[1:]] for v, a in zip(sv, active)])
            block = block.reshape(len(units), len(cols))
            terms.append(Term(name, "categorical", cols, treatment, levels=tuple(levels)))
        blocks.append(block)
        col += block.shape[1]
    X = np.hstack(blocks) if blocks else np.zeros((len(units), 0))
    columns = tuple(c for t in terms for c in t.columns)
    # renumber latent rows to the kept units
    new_index = np.cumsum(keep) - 1
    latent = tuple(Latent(int(new_index[lt.row]), lt.column, lt.low, lt.high) for lt in latent if keep[lt.row])
    for lt in latent:
        if lt.low == lt.high:
            raise AssertionError("a degenerate range is an exact value")  # pragma: no cover
    _check_coefficient_keys(spec, terms)
    return Design(X[keep], columns, tuple(terms), latent, keep, tuple(notes))


def _check_coefficient_keys(spec, terms) -> None:
    """SpecError when a ``beta_<covariate>_<level>`` prior names no coefficient of the design: a level the arms
    used do not have, the reference level (no coefficient of its own), or a level of a numeric covariate."""
    from msc_bayes.spec.checks import coefficient_target

    by_name = {t.name: t for t in terms}
    problems = []
    for key in spec.priors:
        target = coefficient_target(key, spec.covariates) if key not in spec.outcome_info.priors else None
        if target is None or target[1] is None or target[0] not in by_name:
            continue
        term, level = by_name[target[0]], target[1]
        if term.kind == "numeric":
            expected = f"beta_{term.name} ({term.name} is numeric: one coefficient, no levels)"
        elif level == (term.levels[0] if term.levels else None):
            expected = (f"a non-reference level of {term.name} ({level} is the reference level, which has no "
                        f"coefficient; other levels: {', '.join(term.levels[1:]) or 'none'})")
        elif level not in term.levels:
            expected = (f"beta_{term.name}_<level> with a level of {term.name} in the arms used: "
                        f"{', '.join(term.levels[1:]) or 'none'} (reference {term.levels[0] if term.levels else 'none'})"
                        + did_you_mean(level, term.levels[1:]))
        else:
            continue
        problems.append(Problem(spec.path or "<spec>", None, f"priors.{key}", key, expected))
    if problems:
        raise SpecError(problems)


def tensor(design_: Design, transforms: dict[str, str] | None = None):
    """The design as a PyTensor matrix inside the current model: latent entries become
    `<column>_latent` Uniform parameters on the raw scale, transformed like the column."""
    import pymc as pm
    import pytensor.tensor as pt

    X = np.nan_to_num(design_.X)
    if not design_.latent:
        return pt.as_tensor_variable(X)
    Xt = pt.as_tensor_variable(X)
    by_column: dict[int, list[Latent]] = {}
    for lt in design_.latent:
        by_column.setdefault(lt.column, []).append(lt)
    for column, items in by_column.items():
        name = design_.columns[column]
        term = next(t for t in design_.terms if name in t.columns)
        raw = pm.Uniform(f"{name}_latent", lower=np.array([lt.low for lt in items]),
                         upper=np.array([lt.high for lt in items]), shape=len(items))
        value = pt.log(raw) if term.transform == "log" else raw
        rows = np.array([lt.row for lt in items])
        Xt = pt.set_subtensor(Xt[rows, column], (value - term.centre) / term.scale)
    return Xt


def coefficient_priors(spec, columns) -> tuple:
    """Each design column's prior (:meth:`msc_bayes.spec.Spec.coefficient_prior`), in column order."""
    return tuple(spec.coefficient_prior(c) for c in columns)


def coefficient_groups(spec, columns) -> tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...]:
    """The columns sharing a prior family and parameter names: (dist, parameter names, column indices) per
    group, in order of first column. One group: ``beta`` is one random variable."""
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, prior in enumerate(coefficient_priors(spec, columns)):
        groups.setdefault((prior.dist, tuple(prior.params)), []).append(i)
    return tuple((dist, names, tuple(idx)) for (dist, names), idx in groups.items())


def _part_name(groups, j: int) -> str:
    """The random variable of coefficient group `j` when there are several: ``beta_<dist>_part`` (plumbing)."""
    dist = groups[j][0]
    same = [g for g in groups if g[0] == dist]
    return f"beta_{dist.lower()}{'' if len(same) == 1 else j}_part"


def coefficient_prior_data(spec, columns) -> dict[str, np.ndarray]:
    """{pm.Data name: vector} of the coefficients' prior parameters: ``prior_beta_<param>`` (one per column) when
    one family covers every column, else ``prior_<part>_<param>`` per group (``_part_name``). A refit under other
    values of the same families sets these and reuses the compiled model (``inference.sampling.data_updates``)."""
    from msc_bayes.spec import prior_data_name

    groups = coefficient_groups(spec, columns)
    priors = coefficient_priors(spec, columns)
    out = {}
    for j, (_, names, idx) in enumerate(groups):
        key = "beta" if len(groups) == 1 else _part_name(groups, j)
        for param in names:
            out[prior_data_name(key, param)] = np.array([priors[i].params[param] for i in idx], dtype=np.float64)
    return out


def coefficients(spec, columns):
    """The random variable ``beta`` (dims "covariate"), each coefficient under its own prior.

    One family over every column: ``beta`` itself, with vector ``pm.Data`` prior parameters. Several: one
    random variable per group (``beta_<dist>_part``, plumbing) and ``beta`` their Deterministic in column
    order, so every consumer reads ``beta`` with dim covariate either way.
    """
    import pymc as pm
    import pytensor.tensor as pt

    groups = coefficient_groups(spec, columns)
    data = coefficient_prior_data(spec, columns)

    def params(key, names):
        from msc_bayes.spec import prior_data_name

        return {p: pm.Data(prior_data_name(key, p), data[prior_data_name(key, p)]) for p in names}

    if len(groups) == 1:
        dist, names, _ = groups[0]
        return getattr(pm, dist)("beta", **params("beta", names), dims="covariate")
    beta = pt.zeros(len(columns))
    for j, (dist, names, idx) in enumerate(groups):
        name = _part_name(groups, j)
        part = getattr(pm, dist)(name, **params(name, names), shape=len(idx))
        beta = pt.set_subtensor(beta[np.array(idx)], part)
    return pm.Deterministic("beta", beta, dims="covariate")


def with_effects(eta, spec, design_: Design, control: np.ndarray):
    """`eta + X @ beta - msc_effect * control`, creating `beta` (dims "covariate": :func:`coefficients`, each
    coefficient under its own prior) only when there are covariates and `msc_effect` only when there are control
    arms."""
    if design_.columns:
        beta = coefficients(spec, design_.columns)
        # X @ beta as a product and a sum, not pt.dot: numba compiles PyTensor's Dot (and the
        # gemm of its gradient) in ~30 s on an empty cache; these tiny products need no BLAS.
        eta = eta + (tensor(design_) * beta[None, :]).sum(axis=1)
    if control.any():
        eta = eta - spec.priors["msc_effect"].create("msc_effect") * control
    return eta
