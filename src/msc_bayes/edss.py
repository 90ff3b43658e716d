"""EDSS change: one hierarchical model in which every reporting format is an exact likelihood.

Each modelled unit u (a study arm at its chosen timepoint) has a latent mean EDSS change

    theta[u] = mu + X[u] @ beta - msc_effect * control[u] + e[study[u]],   e[s] ~ N(0, tau)

and, where a format needs it, a within-arm SD of change sigma[u]. A patient's change is
a latent normal Delta ~ N(theta, sigma) observed on the 0.5-step EDSS grid, i.e. rounded
to the nearest half point. The formats (a row contributes through what it has):

- ``change``: mean change with SD, SE or CI: y ~ N(theta, se), se known (exactly the
  normal-normal random-effects model in the plain case);
- ``baseline_followup``: follow-up minus baseline mean ~ N(theta, sigma/sqrt(n)) with
  sigma^2 = sd_b^2 + sd_f^2 - 2 rho sd_b sd_f; rho (pre-post correlation) is a parameter
  with a prior, and the reported SDs are data on sd_b, sd_f ((n-1)s^2/sd^2 ~ chi2(n-1));
- ``means_only``: a mean change with no SD: ~ N(theta, sigma/sqrt(n)) through sigma;
- ``counts``: improved / stable / worsened (or collapsed categories): a multinomial over
  every split of n consistent with what is reported, in closed form (a multinomial, or a
  binomial of the one category the report fixes; see `count_groups`); with threshold t,
  improved means a rounded change <= -t, i.e. Delta < -t + 0.25, worsened Delta >= t - 0.25;
- ``patient``: each patient's change d (a multiple of 0.5): P(d - 0.25 <= Delta < d + 0.25).

Per unit, the formats are used in the spec's priority order (only the first available, so
the same patients are not counted twice) unless `combine = "all"`.

Parameterisation of the study effects e. The formats ``change``,
``baseline_followup`` and ``means_only`` are normal terms y ~ N(theta, se) (weight w =
`unit_weight`); given every other parameter, e is then normal with precision
(1 + r) / tau^2, r = tau^2 * sum(w / se^2) over the study's normal terms, and mean
tau^2 * b / (1 + r), b = sum(w * (y - theta + e) / se^2). The free ``study_offset`` z is e
standardised by that conditional mean and SD: e / tau = tau * b / (1 + r) + z / sqrt(1 + r),
and the Potential ``study_offset_jacobian`` adds the N(0, 1) prior of e / tau and the
Jacobian, so the posterior is exactly that of the plain non-centred model (e / tau ~ N(0, 1)).
This removes the funnels of the plain form between a precise study's effect and tau
(Petrou 2020) or the SD of change (Petrou 2021, sigma -> 0 as rho -> 1): on the bundled data
at target_accept 0.99, 0 divergences on 6 seeds and ~40% fewer leapfrog steps than the plain
form (which diverged on some seeds). A study with no normal term (counts, patient data only,
or left out with weight 0) has r = b = 0, i.e. the plain non-centred form. ``theta`` and every
reported quantity keep their meaning; ``study_offset`` is the standardised coordinate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats

from msc_bayes.covariates import Design, design, with_effects
from msc_bayes.errors import EvidenceError, Problem
from msc_bayes.evidence import COUNT_COLUMNS, EDSS_STEP, Evidence
from msc_bayes.likelihood import observe, unit_weight
from msc_bayes.selection import count_once, pick_timepoints

FORMATS = ("patient", "change", "baseline_followup", "counts", "means_only")
HALF_STEP = EDSS_STEP / 2
_NEEDS_SIGMA = {"counts", "means_only", "patient"}


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs, as plain arrays: inspectable and testable without PyMC."""

    units: pd.DataFrame  # one row per modelled unit: study, arm, label, timepoint_months, n, formats, arm columns
    design: Design
    notes: tuple[str, ...]

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))


def _available(row, patients_at: set) -> list[str]:
    has = lambda *cols: all(pd.notna(getattr(row, c)) for c in cols)  # noqa: E731
    spread = has("change_sd") or has("change_se") or has("change_ci_lower")
    out = []
    if (row.study, row.arm, row.timepoint_months) in patients_at:
        out.append("patient")
    if has("change_mean") and spread:
        out.append("change")
    if has("baseline_mean", "baseline_sd", "followup_mean", "followup_sd"):
        out.append("baseline_followup")
    if any(pd.notna(getattr(row, c)) for c in COUNT_COLUMNS):
        out.append("counts")
    # means without a usable spread; not when the same means already enter with their SDs
    if (has("change_mean") and not spread) or (has("baseline_mean", "followup_mean") and "baseline_followup" not in out):
        out.append("means_only")
    return out


def patient_changes(patients: pd.DataFrame) -> pd.DataFrame:
    """study, arm, patient, timepoint_months, change: reported changes plus follow-up EDSS minus baseline."""
    direct = patients[patients["change"].notna()][["study", "arm", "patient", "timepoint_months", "change"]]
    values = patients[patients["edss"].notna()]
    base = values[values["timepoint_months"] == 0][["study", "arm", "patient", "edss"]]
    later = values[values["timepoint_months"] > 0]
    paired = later.merge(base, on=["study", "arm", "patient"], suffixes=("", "_baseline"))
    paired = paired.assign(change=paired["edss"] - paired["edss_baseline"])
    return pd.concat([direct, paired[direct.columns]], ignore_index=True)


def _table_file(evidence: Evidence, table: str) -> str:
    """The file of `table` as evidence errors name it: its path, or the bare name for tables built in memory."""
    folder = Path(evidence.path)
    return str(folder / f"{table}.csv") if folder.is_dir() else f"{table}.csv"


def _require_rows(evidence: Evidence, allowed: list[str]) -> None:
    """No rows in any table the spec's formats read (a header only, or no file) is an EvidenceError
    naming the table, not a model without data or a confusing failure later. One empty table beside
    another with rows is not an error: a folder of patient-level data alone has no edss.csv."""
    from_edss = [f for f in allowed if f != "patient"]
    with_patients = "patient" in allowed and not evidence.patients.empty
    if from_edss and evidence.edss.empty and not with_patients:
        raise EvidenceError([Problem(_table_file(evidence, "edss"), None, None, "no rows (a header only, or no file)",
                                     f"at least one row of EDSS data: the spec's formats {', '.join(from_edss)} "
                                     "read edss.csv")])
    if not from_edss and evidence.patients.empty:
        raise EvidenceError([Problem(_table_file(evidence, "patients"), None, None,
                                     "no rows (a header only, or no file)",
                                     "at least one patient's EDSS: options.formats = ['patient'] reads patients.csv only")])


def _none_selected(evidence: Evidence, edss: pd.DataFrame, patients_at: set, opts) -> EvidenceError:
    """The error when no arm reports any format the spec enables (say which formats the data have)."""
    found = {f for row in edss.itertuples(index=False) for f in _available(row, patients_at)}
    found |= {"patient"} if patients_at else set()
    reported = ", ".join(f for f in FORMATS if f in found) or "none"
    secondary = " once secondary values are left out (exclude_secondary = true)" if opts["exclude_secondary"] else ""
    return EvidenceError([Problem(_table_file(evidence, "edss"), None, "formats",
                                  f"no usable EDSS rows: no arm reports a format of options.formats = "
                                  f"{list(opts['formats'])}",
                                  f"at least one arm reporting one of them; the data report: {reported}{secondary}")])


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select units and formats for the EDSS model (pure; no PyMC)."""
    opts = spec.options
    allowed = [f for f in opts["formats"] if f in FORMATS]
    _require_rows(evidence, allowed)
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    edss = evidence.edss
    changes = patient_changes(evidence.patients)
    patients_at = set(zip(changes["study"], changes["arm"], changes["timepoint_months"]))

    rows = []
    for row in edss.itertuples(index=False):
        formats = [f for f in allowed if f in _available(row, patients_at)]
        if formats:
            rows.append({**row._asdict(), "formats": formats})
    have = {(r["study"], r["arm"], r["timepoint_months"]) for r in rows}
    if "patient" in allowed:  # patient-level data without an edss.csv row (a set lookup: linear in the arms)
        for (s, a, t), n in changes.groupby(["study", "arm", "timepoint_months"]).size().items():
            if (s, a, t) not in have:
                rows.append({"study": s, "arm": a, "timepoint_months": t, "n": int(n), "formats": ["patient"]})
    if not rows:
        raise _none_selected(evidence, edss, patients_at, opts)
    units = pd.DataFrame(rows, columns=list(edss.columns) + ["formats"])

    arms = evidence.arms
    has = arms.set_index(["study", "arm"]).index.isin(list(zip(units["study"], units["arm"])))
    notes: list[str] = []
    if opts["exclude_overlapping"]:
        arms_used, notes = count_once(arms, pd.Series(has, index=arms.index))
    else:
        arms_used = arms[has]
    units = units.merge(arms_used[["study", "arm"]], on=["study", "arm"])
    units = pick_timepoints(units, opts["timepoint"])
    units["formats"] = [f if opts["combine"] == "all" else f[:1] for f in units["formats"]]
    arm_cols = [c for c in arms_used.columns if c not in units.columns or c in ("study", "arm")]
    units = units.merge(arms_used[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    # keep the order of arms.csv, then time
    order = {k: i for i, k in enumerate(zip(arms["study"], arms["arm"]))}
    units = units.assign(_o=[order[(s, a)] for s, a in zip(units["study"], units["arm"])])
    units = units.sort_values(["_o", "timepoint_months"]).drop(columns="_o").reset_index(drop=True)
    many = units.duplicated(["study", "arm"], keep=False)
    units["label"] = [f"{s}:{a}" + (f"@{t:g}mo" if m else "") for s, a, t, m in
                      zip(units["study"], units["arm"], units["timepoint_months"], many)]

    problems = []
    for i, r in units.iterrows():
        thr = r["threshold"] if pd.notna(r.get("threshold")) else opts["default_threshold"]
        if "counts" in r["formats"] and (thr < EDSS_STEP or abs(thr / EDSS_STEP - round(thr / EDSS_STEP)) > 1e-9):
            problems.append(Problem("edss.csv", None, "threshold", thr, f"a multiple of {EDSS_STEP} EDSS points"))
    if problems:
        raise EvidenceError(problems)
    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise EvidenceError([Problem(_table_file(evidence, "arms"), None, None, "no arm with every covariate",
                                     "at least one arm with an EDSS format the spec enables whose arms.csv row "
                                     "has every covariate of the spec: " + ", ".join(spec.covariates))])
    return Prepared(units, d, tuple(notes) + d.notes)


def count_loglik_numpy(theta: float, sigma: float, n: int, row, threshold: float) -> float:
    """The counts likelihood with scipy (tests, checks): the closed form of :func:`count_groups`,
    its coefficient plus each category group's count times the group's log probability."""
    coef, counts = count_groups(n, row)
    lo, hi = -threshold + HALF_STEP, threshold - HALF_STEP
    dist = stats.norm(theta, sigma)
    log_p = {"improved": dist.logcdf(lo), "worsened": dist.logsf(hi), "stable": np.log(dist.cdf(hi) - dist.cdf(lo)),
             "stable_or_improved": dist.logcdf(hi), "stable_or_worsened": dist.logsf(lo),
             "improved_or_worsened": np.logaddexp(dist.logcdf(lo), dist.logsf(hi))}
    return float(coef + sum(c * log_p[g] for g, c in counts.items() if c > 0))


def build(spec, evidence: Evidence, *, standardise: bool = True):
    """The PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared).

    `standardise=False` gives the plain non-centred study effects (study_offset = effect / tau):
    the same posterior in another parameterisation, kept for tests and comparisons.
    """
    import pymc as pm
    import pytensor.tensor as pt

    prep = prepare(spec, evidence)
    units, d = prep.units, prep.design
    studies = prep.studies
    study_idx = np.array([studies.index(s) for s in units["study"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    coords = {"study": studies, "arm": list(units["label"])}
    if d.columns:
        coords["covariate"] = list(d.columns)
    U = len(units)
    fmt = lambda f: np.array([f in fs for fs in units["formats"]])  # noqa: E731
    use = {f: fmt(f) for f in FORMATS}
    bf = use["baseline_followup"]
    hier = np.array([bool(set(fs) & _NEEDS_SIGMA) for fs in units["formats"]]) & ~bf
    n = units["n"].to_numpy(dtype=float)

    with pm.Model(coords=coords) as model:
        mu = spec.priors["mu"].create("mu")
        tau = spec.priors["tau"].create("tau")
        z = pm.Normal("study_offset", 0.0, 1.0, dims="study")
        fixed = with_effects(mu + pt.zeros(U), spec, d, control)  # theta without the study effect

        sigma = pt.zeros(U)
        if hier.any():
            idx = np.flatnonzero(hier)
            model.add_coord("arm_sd", [units["label"][i] for i in idx])
            s_mu = spec.priors["sigma_mu"].create("sigma_mu")
            s_tau = spec.priors["sigma_tau"].create("sigma_tau")
            s_z = pm.Normal("sigma_offset", 0.0, 1.0, dims="arm_sd")
            sigma = pt.set_subtensor(sigma[idx], pt.exp(s_mu + s_tau * s_z))
        terms = []  # (units, log likelihood terms): summed per unit into `loglik` at the end
        normal = []  # (units, y, se): the terms y ~ N(theta[units], se)
        if bf.any():
            idx = np.flatnonzero(bf)
            model.add_coord("arm_bf", [units["label"][i] for i in idx])
            rho = spec.priors["rho"].create("rho")
            sd_b = spec.priors["sigma_edss"].create("sd_baseline", dims="arm_bf", key="sigma_edss")
            sd_f = spec.priors["sigma_edss"].create("sd_followup", dims="arm_bf", key="sigma_edss")
            sigma = pt.set_subtensor(sigma[idx], pt.sqrt(sd_b**2 + sd_f**2 - 2 * rho * sd_b * sd_f))
            nb = n[idx]
            for col, sd in (("baseline_sd", sd_b), ("followup_sd", sd_f)):
                s2 = units[col].to_numpy(dtype=float)[idx] ** 2
                terms.append((idx, pm.logp(pm.Gamma.dist(alpha=(nb - 1) / 2, beta=(nb - 1) / (2 * sd**2)), s2)))
            diff = (units["followup_mean"] - units["baseline_mean"]).to_numpy(dtype=float)[idx]
            normal.append((idx, diff, sigma[idx] / np.sqrt(nb)))
        if use["change"].any():
            idx = np.flatnonzero(use["change"])
            y, se = _change_mean_se(units.iloc[idx])
            normal.append((idx, y, se))
            has_sigma = hier[idx] | bf[idx]
            if has_sigma.any():  # combine="all": the reported SD is also data on sigma
                j, sd = idx[has_sigma], (se * np.sqrt(n[idx]))[has_sigma]
                terms.append((j, pm.logp(pm.Gamma.dist(alpha=(n[j] - 1) / 2, beta=(n[j] - 1) / (2 * sigma[j] ** 2)), sd**2)))
        if use["means_only"].any():
            idx = np.flatnonzero(use["means_only"])
            sub = units.iloc[idx]
            y = sub["change_mean"].fillna(sub["followup_mean"] - sub["baseline_mean"]).to_numpy(dtype=float)
            normal.append((idx, y, sigma[idx] / np.sqrt(n[idx])))

        offset = _study_offset(z, tau, fixed, normal if standardise else [], study_idx, len(studies))
        theta = pm.Deterministic("theta", fixed + tau * offset[study_idx], dims="arm")
        for idx, y, se in normal:
            terms.append((idx, pm.logp(pm.Normal.dist(theta[idx], se), y)))
        if use["counts"].any():
            idx = np.flatnonzero(use["counts"])
            terms.append((idx, _counts_logp(units.iloc[idx], theta[idx], sigma[idx], spec.options["default_threshold"])))
        if use["patient"].any():
            idx = np.flatnonzero(use["patient"])
            unit_of, lp = _patient_logp(units.iloc[idx], evidence, theta[idx], sigma[idx], spec)
            terms.append((idx[unit_of], lp))
        # one accumulation of every term into its unit (few graph nodes: each node costs compile
        # time and ~60 ns per gradient in the numba backend)
        at = np.concatenate([i for i, _ in terms])
        observe(pt.inc_subtensor(pt.zeros(U)[at], pt.concatenate([t for _, t in terms])))
    return model, prep


def _study_offset(z, tau, fixed, normal, study_idx: np.ndarray, n_studies: int):
    """Each study's effect / tau from the free standardised `study_offset` z (module docstring).

    `normal` lists the normal terms (units, y, se), y ~ N(fixed[units] + e[study], se).
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not normal:
        return z
    weight = unit_weight()
    prec, b = pt.zeros(n_studies), pt.zeros(n_studies)  # per study: sum of w / se^2 and of w (y - fixed) / se^2
    for idx, y, se in normal:
        p = weight[idx] / se**2
        prec = pt.inc_subtensor(prec[study_idx[idx]], p)  # repeated studies accumulate
        b = pt.inc_subtensor(b[study_idx[idx]], p * (y - fixed[idx]))
    r = tau**2 * prec
    offset = tau * b / (1 + r) + z / pt.sqrt(1 + r)
    pm.Potential("study_offset_jacobian", (-(offset**2 - z**2) / 2 - pt.log1p(r) / 2).sum())
    return offset


def _change_mean_se(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean change and its SE from SD (sd/sqrt(n)), SE, or CI (t quantile with n-1 df)."""
    n = rows["n"].to_numpy(dtype=float)
    se = rows["change_se"].to_numpy(dtype=float)
    se = np.where(np.isnan(se), rows["change_sd"].to_numpy(dtype=float) / np.sqrt(n), se)
    level = rows["change_ci_level"].to_numpy(dtype=float)
    width = (rows["change_ci_upper"] - rows["change_ci_lower"]).to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        q = np.where(n > 1, stats.t.ppf((1 + level) / 2, np.maximum(n - 1, 1)), stats.norm.ppf((1 + level) / 2))
    se = np.where(np.isnan(se), width / (2 * q), se)
    return rows["change_mean"].to_numpy(dtype=float), se


#: Groups of categories a count can refer to: (improved, stable, worsened) membership.
COUNT_GROUPS = {"improved": (1, 0, 0), "stable": (0, 1, 0), "worsened": (0, 0, 1),
                "stable_or_improved": (1, 1, 0), "stable_or_worsened": (0, 1, 1), "improved_or_worsened": (1, 0, 1)}


CATEGORIES = ("improved", "stable", "worsened")
#: What a reported count fixes: one of i = improved, s = stable, t = improved + stable
#: (= n - worsened), and its value, given n and the count.
_FIXES = {
    "improved": lambda n, v: ("i", v),
    "stable": lambda n, v: ("s", v),
    "worsened": lambda n, v: ("t", n - v),
    "stable_or_improved": lambda n, v: ("t", v),
    "stable_or_worsened": lambda n, v: ("i", n - v),
}
#: When only one of i, s, t is fixed: (the fixed category, the other two merged); for t the
#: fixed category is worsened = n - t.
_BINOMIALS = {"i": ("improved", "stable_or_worsened"), "s": ("stable", "improved_or_worsened"),
              "t": ("worsened", "stable_or_improved")}


def _reported(row, column: str) -> int | None:
    v = row.get(column) if isinstance(row, dict) else getattr(row, column, None)
    return None if v is None or pd.isna(v) else int(v)


def _fixed(n: int, reported: Mapping[str, int]) -> dict[str, int]:
    """Which of i, s, t the reported counts fix, and their values (see `_FIXES`)."""
    fixed: dict[str, int] = {}
    for column, v in reported.items():
        key, value = _FIXES[column](n, v)
        if fixed.setdefault(key, value) != value:
            raise ValueError(f"the counts {dict(reported)} of n = {n} disagree")
    if not fixed:
        raise ValueError("no improved/stable/worsened count reported")
    return fixed


def _full_split(n: int, fixed: Mapping[str, int], reported: Mapping[str, int]) -> tuple[int, int, int] | None:
    """(improved, stable, worsened) when the fixed values leave one split, else None.

    Two of i, s, t fix the third; one category holding all n patients (i = n, s = n or
    t = 0) leaves the others none.
    """
    i, s, t = fixed.get("i"), fixed.get("s"), fixed.get("t")
    if s is not None and t is not None and i is None:
        i = t - s
    elif i is not None and t is not None and s is None:
        s = t - i
    elif len(fixed) == 1 and (i == n or s == n or t == 0):
        i, s = (n if i == n else 0), (n if s == n else 0)
    if i is None or s is None:
        return None
    if i < 0 or s < 0 or i + s > n or (t is not None and t != i + s):
        raise ValueError(f"no split of n = {n} into improved + stable + worsened has the counts {dict(reported)}")
    return i, s, n - i - s


def count_groups(n: int, row) -> tuple[float, dict[str, int]]:
    """The counts likelihood in closed form: (log coefficient, patients per category group).

    The reported counts fix either every category (one split: a multinomial) or exactly one
    (a line of splits, (n - k + 1) of them). Summing the multinomial over a line is a binomial
    of the fixed category against the other two merged (binomial theorem), so the sum over
    every consistent split is ``coef + sum_g count_g * log P(group g)`` exactly. Computed from
    the reported counts alone: O(1) in n, no split is enumerated.
    """
    reported = {c: v for c in COUNT_COLUMNS if (v := _reported(row, c)) is not None}
    fixed = _fixed(n, reported)
    split = _full_split(n, fixed, reported)
    if split is not None:
        coef = special.gammaln(n + 1) - special.gammaln(np.array(split) + 1).sum()
        return float(coef), dict(zip(CATEGORIES, split))
    ((key, value),) = fixed.items()
    k = n - value if key == "t" else value
    if not 0 <= k <= n:
        raise ValueError(f"the counts {reported} do not fit n = {n}")
    name, rest = _BINOMIALS[key]
    return float(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)), {name: k, rest: n - k}


def _counts_logp(rows: pd.DataFrame, theta, sigma, default_threshold: float):
    """Per-unit log likelihood of improved/stable/worsened counts (see :func:`count_groups`)."""
    import pymc as pm
    import pytensor.tensor as pt

    grouped = [count_groups(int(r.n), r) for r in rows.itertuples(index=False)]
    used = [g for g in COUNT_GROUPS if any(counts.get(g, 0) for _, counts in grouped)]
    C = np.array([[counts.get(g, 0) for g in used] for _, counts in grouped], dtype=float)
    coef = np.array([c for c, _ in grouped])
    thr = rows["threshold"].fillna(default_threshold).to_numpy(dtype=float)
    dist = pm.Normal.dist(theta, sigma)
    below_lo = pm.logcdf(dist, -thr + HALF_STEP)  # improved: Delta < -t + 1/4
    below_hi = pm.logcdf(dist, thr - HALF_STEP)
    above_hi = pm.logccdf(dist, thr - HALF_STEP)  # worsened: Delta >= t - 1/4
    log_p = {"improved": lambda: below_lo, "worsened": lambda: above_hi,
             "stable": lambda: pm.math.logdiffexp(below_hi, below_lo),
             "stable_or_improved": lambda: below_hi, "stable_or_worsened": lambda: pm.logccdf(dist, -thr + HALF_STEP),
             "improved_or_worsened": lambda: pt.logaddexp(below_lo, above_hi)}
    lp = pt.stack([log_p[g]() for g in used], axis=1)
    return coef + pt.switch(C > 0, C * lp, 0.0).sum(axis=1)


def _patient_logp(rows: pd.DataFrame, evidence: Evidence, theta, sigma, spec):
    """The patients' changes: (row of each term, term), terms summing to log P(d - 1/4 <= Delta < d + 1/4)
    over a row's patients.

    Changes lie on the 0.5-step grid, so patients share values and neighbouring values share
    an interval end: each distinct change enters once with its count, and the normal CDF is
    evaluated once per distinct interval end (exactly the per-patient sum, far fewer terms).
    """
    import pymc as pm

    ev = evidence.without_secondary() if spec.options["exclude_secondary"] else evidence
    changes = patient_changes(ev.patients)
    by_unit = {k: g["change"].to_numpy(dtype=float) for k, g in changes.groupby(["study", "arm", "timepoint_months"])}
    ends, lower, upper, unit_of, count = [], [], [], [], []  # ends: (unit, x); intervals index into ends
    for u, r in enumerate(rows.itertuples(index=False)):
        values, counts = np.unique(by_unit.get((r.study, r.arm, r.timepoint_months), np.empty(0)), return_counts=True)
        at = {}
        for x in np.unique(np.concatenate([values - HALF_STEP, values + HALF_STEP])):
            at[x] = len(ends)
            ends.append((u, x))
        for d, m in zip(values, counts):
            lower.append(at[d - HALF_STEP])
            upper.append(at[d + HALF_STEP])
            unit_of.append(u)
            count.append(m)
    end_unit, end_x = (np.array(c) for c in zip(*ends))
    log_cdf = pm.logcdf(pm.Normal.dist(theta[end_unit], sigma[end_unit]), end_x)
    lp = np.array(count, dtype=float) * pm.math.logdiffexp(log_cdf[np.array(upper)], log_cdf[np.array(lower)])
    return np.array(unit_of), lp


#: Thresholds for probability statements about EDSS change (points; negative = improvement).
CHANGE_THRESHOLDS = (-0.5, 0.0)
#: Follow-up at which predictions are made when follow-up is a covariate (months).
PREDICTION_MONTHS = 12.0


def derive(posterior, prepared: Prepared, spec):
    """Quantities computed from the draws (dims chain, draw, ...).

    Predictions are for a new study's MSC arm at the covariates' zero on the model's scale
    (the reference level; for numeric covariates 0, or the mean when the spec centres them);
    `*_by_design` gives them over a grid of route levels and numbers of courses. Random
    draws (a new study's effect) use `spec.sampler.seed`, which `fit` sets to its seed.
    """
    import xarray as xr

    rng = np.random.default_rng(spec.sampler.seed)
    mu, tau = posterior["mu"].values, posterior["tau"].values
    shape = mu.shape
    new = mu + tau * rng.standard_normal(shape)
    out = {"theta_new": (("chain", "draw"), new)}
    below = np.stack([new < t for t in CHANGE_THRESHOLDS], axis=-1).astype(float)
    out["p_new_below"] = (("chain", "draw", "threshold"), below)
    coords = {"threshold": list(CHANGE_THRESHOLDS)}
    terms = {t.name: t for t in prepared.design.terms}
    beta = posterior["beta"].values if "beta" in posterior else np.zeros(shape + (0,))
    columns = list(prepared.design.columns)

    def effect(values: dict) -> np.ndarray:
        x = np.zeros(len(columns))
        for name, term in terms.items():
            value = values.get(name)
            if value is None:
                continue
            enc = term.encode(value)
            for c, v in zip(term.columns, enc):
                x[columns.index(c)] = v
        return beta @ x

    if "route" in terms and terms["route"].kind == "categorical":
        levels = list(terms["route"].levels)
        pairs = [(a, b) for i, b in enumerate(levels) for a in levels[i + 1:]]
        out["route_contrast"] = (("chain", "draw", "contrast"),
                                 np.stack([effect({"route": a}) - effect({"route": b}) for a, b in pairs], axis=-1))
        coords["contrast"] = [f"{a} vs {b}" for a, b in pairs]
    grid_names = [n for n in ("route", "courses") if n in terms]
    if grid_names:
        axes = {"route": list(terms["route"].levels) if "route" in terms else [],
                "courses": list(range(1, 10))}
        fixed = {"timepoint_months": PREDICTION_MONTHS} if "timepoint_months" in terms else {}
        grid = np.zeros(shape + tuple(len(axes[n]) for n in grid_names))
        for idx in np.ndindex(*[len(axes[n]) for n in grid_names]):
            values = {**fixed, **{n: axes[n][i] for n, i in zip(grid_names, idx)}}
            grid[(..., *idx)] = mu + effect(values)
        dims = ("chain", "draw") + tuple(grid_names)
        out["change_by_design"] = (dims, grid)
        out["new_study_by_design"] = (dims, grid + (tau * rng.standard_normal(shape))[(...,) + (None,) * len(grid_names)])
        coords.update({n: axes[n] for n in grid_names})
    ds = xr.Dataset(out, coords={"chain": posterior["chain"], "draw": posterior["draw"], **coords})
    ds.attrs["prediction_months"] = PREDICTION_MONTHS if "timepoint_months" in terms else "follow-up not in the model"
    return ds
