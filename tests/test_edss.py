"""Tests of the EDSS-change model (msc_bayes.outcomes.edss) and its fitting path.

Every reference value is computed independently of the code under test: hand-written log
densities with scipy, brute-force enumeration of count splits, the exact normal-normal
posterior (msc_bayes.oracle, itself tested against quadrature in test_oracle.py), or known
simulation truths. Synthetic data are written as CSV files and read with `load_evidence`,
so the tests run the same path as real data.

Tolerances:
- deterministic log densities: relative ``FLOAT_RTOL`` (PyMC/PyTensor may hold a few
  Python constants in float32, whose relative rounding is 2**-24 ~ 6e-8);
- MCMC vs exact: a multiple of the Monte Carlo standard error (see ``MCSE_MULTIPLIER``);
- recovery/consistency on simulated data: posterior uncertainty (posterior SDs or
  intervals), since the sampling variability of the data, not MCMC error, dominates there.

Sampling tests are marked ``slow``; each `fit` compiles a model (~5-10 s), so the file
keeps to few fits (3 oracle + 1 recovery + 4 consistency + 1 SBC compile).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from msc_bayes.evidence import DAYS_PER_MONTH, load_evidence
from msc_bayes.oracle import normal_normal
from msc_bayes.outcomes import edss
from msc_bayes.outcomes.edss.formats.counts import count_groups, count_loglik_numpy
from msc_bayes.outcomes.edss.formats.patient import patient_changes
from msc_bayes.spec import load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
SEED = 20261121

#: Relative tolerance for comparing compiled log densities with scipy: a float32 constant
#: is off by at most float32 eps/2 relative; 8 eps (~1e-6) leaves room for a few such
#: constants entering one sum.
FLOAT_RTOL = 8 * float(np.finfo(np.float32).eps)

#: |MCMC estimate - exact value| < MCSE_MULTIPLIER * MCSE. An MCMC estimate is ~normal
#: around the exact value with SD = MCSE, so one comparison fails by chance with probability
#: 2*Phi(-4) = 6e-5; with the ~20 comparisons in this file the family-wise false-alarm rate
#: stays ~1e-3, while MCSE itself is estimated only to ~5-10%, which 4 absorbs. A real bias
#: larger than ~4 MCSE (here 0.01-0.03 EDSS points) is detected.
MCSE_MULTIPLIER = 4.0

#: Quantile z of a two-sided 99.9% normal interval: used where several truths are checked
#: against posteriors at once, so that by Bonferroni the family-wise miss rate stays ~1%.
Z_999 = float(stats.norm.ppf(0.9995))

#: PyTensor mode of this file's own checks of a model graph (log densities and theta at a few points): the ops'
#: Python implementations, compiled in under a second, where the default (numba) mode spends seconds per new
#: graph on empty caches. The graph is the same; nutpie compiles the sampler's code itself, so no fit changes.
CHECK_MODE = "FAST_COMPILE"

PRIORS = {
    "mu": {"dist": "Normal", "mu": 0, "sigma": 1},
    "tau": {"dist": "HalfNormal", "sigma": 0.5},
    "beta": {"dist": "Normal", "mu": 0, "sigma": 0.5},
}


# --------------------------------------------------------------------------- helpers
def rng_for(*key: int) -> np.random.Generator:
    """An independent random stream per use, all derived from the one SEED."""
    return np.random.default_rng([SEED, *key])


def write_tables(folder: Path, **tables) -> Path:
    """Write each table (a DataFrame or list of dicts) as `<name>.csv` in `folder`; return folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def edss_spec(covariates=(), covariate_options=None, **options):
    d = {"outcome": "edss_change", "covariates": list(covariates), "priors": PRIORS,
         "sampler": {"seed": SEED}}
    if covariate_options:
        d["covariate_options"] = covariate_options
    if options:
        d["options"] = options
    return spec_from_dict(d)


def rounded_changes(rng: np.random.Generator, theta: float, sigma: float, n: int) -> np.ndarray:
    """Observed EDSS changes: latent Delta ~ N(theta, sigma) rounded to the 0.5-point grid."""
    return np.round(rng.normal(theta, sigma, n) * 2) / 2


def counts_of(d: np.ndarray, threshold: float) -> dict:
    return {"improved": int((d <= -threshold).sum()), "worsened": int((d >= threshold).sum()),
            "stable": int(((d > -threshold) & (d < threshold)).sum())}


def free_rv_fn(model, out):
    """Compiled function of `out` taking the free random variables on their natural scale."""
    return model.compile_fn(out, inputs=model.free_RVs, on_unused_input="ignore", mode=CHECK_MODE)


def draws(fit, name: str, group: str = "posterior") -> np.ndarray:
    ds = fit.posterior if group == "posterior" else fit.derived
    return np.asarray(ds[name].values, dtype=float)


def quantile_mcse(x: np.ndarray, prob: float) -> float:
    import arviz_stats as azs

    return float(azs.mcse(x, method="quantile", prob=prob))


def summary_row(fit, quantity: str) -> pd.Series:
    return fit.summary().loc[quantity]


def plain_table(y, se, *, n=30, timepoint=6.0) -> pd.DataFrame:
    k = len(y)
    return pd.DataFrame({"study": [f"s{i + 1}" for i in range(k)], "arm": "a", "timepoint_months": timepoint,
                         "n": n, "change_mean": y, "change_se": se})


def normal_normal_logp(mu, tau, offset, y, se, *, beta=None, x=None, jacobian=False) -> float:
    """Hand-written log density of the non-centred normal-normal model (meta-regression on
    one covariate x if beta is given) with PRIORS."""
    eta = mu + tau * offset
    lp = stats.norm.logpdf(mu, 0, 1) + stats.halfnorm.logpdf(tau, scale=0.5) + stats.norm.logpdf(offset).sum()
    if beta is not None:
        eta = eta + np.asarray(x) * beta
        lp += stats.norm.logpdf(beta, 0, 0.5).sum()
    lp += stats.norm.logpdf(y, eta, se).sum()
    if jacobian:
        lp += np.log(tau)  # tau is sampled as log(tau)
    return float(lp)


def standardised_logp(mu, tau, z, y, se, *, beta=None, x=None, jacobian=False) -> float:
    """Hand-written log density of the same model in the package's parameterisation (see the
    edss module docstring): each study's effect integrated out analytically, times N(z; 0, 1)."""
    eta = mu + (0.0 if beta is None else np.asarray(x) * beta)
    lp = stats.norm.logpdf(mu, 0, 1) + stats.halfnorm.logpdf(tau, scale=0.5) + stats.norm.logpdf(z).sum()
    if beta is not None:
        lp += stats.norm.logpdf(beta, 0, 0.5).sum()
    lp += stats.norm.logpdf(y, eta, np.sqrt(tau**2 + se**2)).sum()
    if jacobian:
        lp += np.log(tau)
    return float(lp)


def conditional_theta(mu, tau, z, y, se):
    """theta = its normal posterior mean given mu, tau (one normal term per study) + z posterior SDs."""
    prec = 1 / tau**2 + 1 / se**2
    return (mu / tau**2 + y / se**2) / prec + z / np.sqrt(prec)


# =========================================================================== 1. plain case
def test_plain_table_is_exactly_the_normal_normal_model(tmp_path):
    rng = rng_for(1)
    y, se = rng.normal(-0.3, 0.3, 5), rng.uniform(0.1, 0.3, 5)
    ev = load_evidence(write_tables(tmp_path / "plain", edss=plain_table(y, se)))
    y, se = ev.edss["change_mean"].to_numpy(), ev.edss["change_se"].to_numpy()  # as read back
    model, prep = edss.build(edss_spec(), ev)

    assert {v.name for v in model.free_RVs} == {"mu", "tau", "study_offset"}
    assert model["mu"].ndim == 0 and model["tau"].ndim == 0
    assert model["study_offset"].eval(mode=CHECK_MODE).shape == (5,)
    assert list(prep.units["formats"]) == [["change"]] * 5

    plain, _ = edss.build(edss_spec(), ev, standardise=False)
    logp_nojac = model.compile_logp(jacobian=False, mode=CHECK_MODE)
    logp = model.compile_logp(mode=CHECK_MODE)
    theta = model.compile_fn(model.replace_rvs_by_values([model["theta"]])[0], inputs=model.value_vars,
                             mode=CHECK_MODE)
    plain_nojac = plain.compile_logp(jacobian=False, mode=CHECK_MODE)
    plain_logp = plain.compile_logp(mode=CHECK_MODE)
    for _ in range(4):
        mu, tau, off = rng.normal(0, 0.5), rng.uniform(0.05, 1.0), rng.normal(size=5)
        point = {"mu": mu, "tau_log__": np.log(tau), "study_offset": off}
        # the plain non-centred form (study_offset = effect / tau)
        assert float(plain_nojac(point)) == pytest.approx(normal_normal_logp(mu, tau, off, y, se), rel=FLOAT_RTOL)
        assert float(plain_logp(point)) == pytest.approx(
            normal_normal_logp(mu, tau, off, y, se, jacobian=True), rel=FLOAT_RTOL)
        # the package's standardised form: effects integrated out, study_offset ~ N(0, 1)
        assert float(logp_nojac(point)) == pytest.approx(standardised_logp(mu, tau, off, y, se), rel=FLOAT_RTOL)
        assert float(logp(point)) == pytest.approx(
            standardised_logp(mu, tau, off, y, se, jacobian=True), rel=FLOAT_RTOL)
        np.testing.assert_allclose(theta(point), conditional_theta(mu, tau, off, y, se), rtol=FLOAT_RTOL)


def test_one_numeric_covariate_is_exactly_the_meta_regression(tmp_path):
    rng = rng_for(2)
    k = 6
    dose = np.array([0.5, 1.0, 1.0, 2.0, 2.5, 3.0])
    y, se = rng.normal(-0.3, 0.3, k), rng.uniform(0.1, 0.3, k)
    table = plain_table(y, se)
    arms = pd.DataFrame({"study": table["study"], "arm": "a", "group": "msc", "n": 30, "dose_per_kg_million": dose})
    ev = load_evidence(write_tables(tmp_path / "reg", edss=table, arms=arms))
    y, se = ev.edss["change_mean"].to_numpy(), ev.edss["change_se"].to_numpy()
    model, prep = edss.build(edss_spec(["dose_per_kg_million"]), ev)

    assert {v.name for v in model.free_RVs} == {"mu", "tau", "study_offset", "beta"}
    assert model["mu"].ndim == 0 and model["tau"].ndim == 0
    assert model.coords["covariate"] == ("dose_per_kg_million",)
    np.testing.assert_array_equal(prep.design.X[:, 0], dose)

    logp = model.compile_logp(jacobian=False, mode=CHECK_MODE)
    for _ in range(4):
        mu, tau, off, b = rng.normal(0, 0.5), rng.uniform(0.05, 1.0), rng.normal(size=k), rng.normal(0, 0.3, 1)
        point = {"mu": mu, "tau_log__": np.log(tau), "study_offset": off, "beta": b}
        expected = standardised_logp(mu, tau, off, y, se, beta=b, x=dose)
        assert float(logp(point)) == pytest.approx(expected, rel=FLOAT_RTOL)


# =========================================================================== 3. rho likelihood
def test_baseline_followup_likelihood_matches_direct_calculation(tmp_path):
    n, bm, bsd, fm, fsd = 20, 5.0, 1.2, 4.6, 1.4
    table = [{"study": "s1", "arm": "a", "timepoint_months": 12, "n": n, "baseline_mean": bm, "baseline_sd": bsd,
              "followup_mean": fm, "followup_sd": fsd}]
    ev = load_evidence(write_tables(tmp_path / "bf", edss=table))
    model, prep = edss.build(edss_spec(), ev)
    assert list(prep.units["formats"]) == [["baseline_followup"]]
    assert {v.name for v in model.free_RVs} == {"mu", "tau", "study_offset", "rho", "sd_baseline", "sd_followup"}
    loglik = free_rv_fn(model, model["loglik"])
    theta_at = free_rv_fn(model, model["theta"])

    def chi2_logpdf_of_s2(s, sd):
        # (n-1) s^2 / sd^2 ~ chi2(n-1), written for s^2 (change of variables; not the code's Gamma form)
        return stats.chi2.logpdf((n - 1) * s**2 / sd**2, n - 1) + np.log((n - 1) / sd**2)

    rng = rng_for(3)
    for _ in range(5):
        mu, tau, off = rng.normal(-0.3, 0.3), rng.uniform(0.05, 0.5), rng.normal()
        rho, sb, sf = rng.uniform(0.1, 0.95), rng.uniform(0.6, 2.0), rng.uniform(0.6, 2.0)
        point = {"mu": mu, "tau": tau, "study_offset": [off], "rho": rho, "sd_baseline": [sb], "sd_followup": [sf]}
        [theta] = theta_at(point)  # the reparameterisation is checked in test_edss_reparam.py
        sigma = math.sqrt(sb**2 + sf**2 - 2 * rho * sb * sf)
        expected = (stats.norm.logpdf(fm - bm, theta, sigma / math.sqrt(n))
                    + chi2_logpdf_of_s2(bsd, sb) + chi2_logpdf_of_s2(fsd, sf))
        got = loglik(point)
        assert got.shape == (1,)
        assert float(got[0]) == pytest.approx(expected, rel=FLOAT_RTOL)


# =========================================================================== 4. counts, patients
COUNT_PATTERNS = {  # name: (n, reported counts)
    "full": (18, {"improved": 5, "stable": 10, "worsened": 3}),
    "worsened_only": (5, {"worsened": 3}),  # Iacobaeus 2019, 48 weeks
    "improved_and_not_worse": (24, {"improved": 10, "stable_or_improved": 22}),  # Petrou 2021
    "stable_only": (6, {"stable": 6}),  # Iacobaeus 2019, 12 weeks
    "improved_only": (8, {"improved": 5}),  # Odinak 2012, 4 months
    "not_better": (9, {"stable_or_worsened": 7}),
    "one_improved": (1, {"improved": 1}),
    "one_stable": (1, {"stable": 1}),
    "some_stable": (7, {"stable": 3}),  # the rest improved or worsened: a binomial of stable vs both
    "not_worse_only": (10, {"stable_or_improved": 6}),
}
THRESHOLDS = (0.5, 1.0)
PATIENT_UNITS = {"p_one": [-0.5], "p_many": [-1.0, 0.0, 0.0, 0.5, 1.5, -0.5, 0.0]}
OTHER_ROWS = {  # units in the same model exercising the remaining formats
    "means_change": {"n": 12, "change_mean": -0.3},
    "means_bf": {"n": 10, "baseline_mean": 5.0, "followup_mean": 4.5},
    "change_sd": {"n": 20, "change_mean": -0.2, "change_sd": 0.6},
    "change_ci": {"n": 15, "change_mean": -0.25, "change_ci_lower": -0.5, "change_ci_upper": 0.0,
                  "change_ci_level": 0.95},
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One model with a unit for every count pattern x threshold, patient-level units,
    means-only and change units, and a random parameter point with the implied theta/sigma."""
    edss_rows, arms, patients = [], [], []
    for (name, (n, counts)), thr in itertools.product(COUNT_PATTERNS.items(), THRESHOLDS):
        study = f"{name}_t{thr:g}"
        edss_rows.append({"study": study, "arm": "a", "timepoint_months": 6, "n": n, **counts, "threshold": thr})
        arms.append({"study": study, "arm": "a", "n": n})
    for name, row in OTHER_ROWS.items():
        edss_rows.append({"study": name, "arm": "a", "timepoint_months": 6, **row})
        arms.append({"study": name, "arm": "a", "n": row["n"]})
    for name, changes in PATIENT_UNITS.items():
        arms.append({"study": name, "arm": "a", "n": len(changes)})
        patients += [{"study": name, "arm": "a", "patient": f"p{j}", "timepoint_months": 6, "change": d}
                     for j, d in enumerate(changes)]
    folder = write_tables(tmp_path_factory.mktemp("mixed"), edss=edss_rows, arms=arms, patients=patients)
    ev = load_evidence(folder)
    model, prep = edss.build(edss_spec(), ev)
    rng = rng_for(4)
    studies, sd_arms = list(model.coords["study"]), list(model.coords["arm_sd"])
    point = {"mu": -0.2, "tau": 0.4, "study_offset": rng.normal(size=len(studies)),
             "sigma_mu": math.log(0.7), "sigma_tau": 0.3, "sigma_offset": rng.normal(size=len(sd_arms))}
    # theta as the model maps the point (the mapping is checked in test_edss_reparam.py)
    theta = dict(zip(prep.units["label"], np.asarray(free_rv_fn(model, model["theta"])(point), dtype=float)))
    assert [f"{s}:a" for s in studies] == list(prep.units["label"])
    sigma = {lab: math.exp(point["sigma_mu"] + point["sigma_tau"] * point["sigma_offset"][i])
             for i, lab in enumerate(sd_arms)}
    ll = free_rv_fn(model, model["loglik"])(point)
    loglik = dict(zip(prep.units["label"], np.asarray(ll, dtype=float)))
    return {"model": model, "prep": prep, "point": point, "theta": theta, "sigma": sigma, "loglik": loglik}


def brute_force_counts_loglik(theta: float, sigma: float, n: int, counts: dict, threshold: float) -> float:
    """Enumerate every (improved, stable, worsened) split of n, keep those matching the report,
    sum their multinomial probabilities (scipy), with category probabilities of the latent
    change Delta ~ N(theta, sigma) rounded to the 0.5 grid."""
    p_imp = stats.norm.cdf(-threshold + 0.25, theta, sigma)
    p_wor = stats.norm.sf(threshold - 0.25, theta, sigma)
    p = [p_imp, 1.0 - p_imp - p_wor, p_wor]
    total = 0.0
    for i in range(n + 1):
        for s in range(n + 1 - i):
            w = n - i - s
            split = {"improved": i, "stable": s, "worsened": w, "stable_or_improved": i + s,
                     "stable_or_worsened": s + w}
            if all(split[c] == v for c, v in counts.items()):
                total += stats.multinomial.pmf([i, s, w], n, p)
    return math.log(total)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("pattern", list(COUNT_PATTERNS))
def test_counts_likelihood_matches_enumeration(mixed, pattern, threshold):
    label = f"{pattern}_t{threshold:g}:a"
    n, counts = COUNT_PATTERNS[pattern]
    theta, sigma = mixed["theta"][label], mixed["sigma"][label]
    units = mixed["prep"].units.set_index("label")
    assert units.loc[label, "formats"] == ["counts"]
    got = mixed["loglik"][label]
    assert got == pytest.approx(brute_force_counts_loglik(theta, sigma, n, counts, threshold), rel=FLOAT_RTOL)
    assert got == pytest.approx(count_loglik_numpy(theta, sigma, n, counts, threshold), rel=FLOAT_RTOL)


LARGE_N = 15_000  # a valid arm size; enumerating its splits took ~6 GB and several seconds
#: Every reporting pattern at n = LARGE_N: (reported counts, its exact log likelihood from scipy's
#: multinomial / binomial given the category probabilities (p_improved, p_stable, p_worsened)).
LARGE_PATTERNS = {
    "full": ({"improved": 5000, "stable": 6000, "worsened": 4000},
             lambda p: stats.multinomial.logpmf([5000, 6000, 4000], LARGE_N, p)),
    "improved_and_not_worse": ({"improved": 6000, "stable_or_improved": 14000},
                               lambda p: stats.multinomial.logpmf([6000, 8000, 1000], LARGE_N, p)),
    "all_stable": ({"stable": LARGE_N}, lambda p: LARGE_N * math.log(p[1])),
    "worsened_only": ({"worsened": 3000}, lambda p: stats.binom.logpmf(3000, LARGE_N, p[2])),
    "improved_only": ({"improved": 5000}, lambda p: stats.binom.logpmf(5000, LARGE_N, p[0])),
    "stable_only": ({"stable": 3000}, lambda p: stats.binom.logpmf(3000, LARGE_N, p[1])),
    "not_better": ({"stable_or_worsened": 9000}, lambda p: stats.binom.logpmf(6000, LARGE_N, p[0])),
    "not_worse": ({"stable_or_improved": 12000}, lambda p: stats.binom.logpmf(3000, LARGE_N, p[2])),
}
#: Bounds for one count_groups + count_loglik_numpy call at n = LARGE_N: generous for a closed
#: form (measured ~0.1 MiB and ~6 ms), four orders of magnitude below enumerating every split.
LARGE_PEAK_BYTES = 16 * 2**20
LARGE_SECONDS = 1.0


@pytest.mark.parametrize("pattern", list(LARGE_PATTERNS))
def test_counts_likelihood_of_a_large_arm_is_exact_in_constant_memory(pattern):
    import time
    import tracemalloc

    counts, exact = LARGE_PATTERNS[pattern]
    theta, sigma, threshold = -0.1, 0.8, 0.5
    tracemalloc.start()
    start = time.perf_counter()
    try:
        count_groups(LARGE_N, counts)
        got = count_loglik_numpy(theta, sigma, LARGE_N, counts, threshold)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LARGE_PEAK_BYTES and seconds < LARGE_SECONDS
    p_imp = stats.norm.cdf(-threshold + 0.25, theta, sigma)
    p_wor = stats.norm.sf(threshold - 0.25, theta, sigma)
    assert got == pytest.approx(exact([p_imp, 1 - p_imp - p_wor, p_wor]), rel=FLOAT_RTOL)


def test_counts_thresholds_follow_the_half_point_rounding(mixed):
    """Rounded change <= -t  <=>  Delta < -t + 0.25 (and >= t <=> Delta >= t - 0.25), so one
    patient's P(improved) at t = 0.5 is Phi((-0.25 - theta)/sigma), P(stable) at t = 1 is
    P(-0.75 <= Delta < 0.75)."""
    # the rounding rule itself, on a grid avoiding the measure-zero ties at odd multiples of 0.25
    delta = np.linspace(-3, 3, 24001)
    delta = delta[np.abs(delta * 4 - np.round(delta * 4)) > 1e-9]
    rounded = np.round(delta * 2) / 2
    for t in THRESHOLDS:
        np.testing.assert_array_equal(rounded <= -t, delta < -t + 0.25)
        np.testing.assert_array_equal(rounded >= t, delta >= t - 0.25)
    lab = "one_improved_t0.5:a"
    th, sd = mixed["theta"][lab], mixed["sigma"][lab]
    assert mixed["loglik"][lab] == pytest.approx(math.log(stats.norm.cdf((-0.25 - th) / sd)), rel=FLOAT_RTOL)
    lab = "one_improved_t1:a"
    th, sd = mixed["theta"][lab], mixed["sigma"][lab]
    assert mixed["loglik"][lab] == pytest.approx(math.log(stats.norm.cdf((-0.75 - th) / sd)), rel=FLOAT_RTOL)
    lab = "one_stable_t1:a"
    th, sd = mixed["theta"][lab], mixed["sigma"][lab]
    expected = math.log(stats.norm.cdf((0.75 - th) / sd) - stats.norm.cdf((-0.75 - th) / sd))
    assert mixed["loglik"][lab] == pytest.approx(expected, rel=FLOAT_RTOL)


@pytest.mark.parametrize("unit", list(PATIENT_UNITS))
def test_patient_level_likelihood_is_interval_censored(mixed, unit):
    label = f"{unit}:a"
    d = np.array(PATIENT_UNITS[unit])
    th, sd = mixed["theta"][label], mixed["sigma"][label]
    expected = np.log(stats.norm.cdf((d + 0.25 - th) / sd) - stats.norm.cdf((d - 0.25 - th) / sd)).sum()
    assert mixed["prep"].units.set_index("label").loc[label, "formats"] == ["patient"]
    assert mixed["loglik"][label] == pytest.approx(expected, rel=FLOAT_RTOL)


def test_means_only_and_change_likelihoods(mixed):
    ll, th, sd = mixed["loglik"], mixed["theta"], mixed["sigma"]
    units = mixed["prep"].units.set_index("label")
    assert units.loc["means_change:a", "formats"] == ["means_only"]
    assert units.loc["means_bf:a", "formats"] == ["means_only"]
    assert ll["means_change:a"] == pytest.approx(
        stats.norm.logpdf(-0.3, th["means_change:a"], sd["means_change:a"] / math.sqrt(12)), rel=FLOAT_RTOL)
    assert ll["means_bf:a"] == pytest.approx(
        stats.norm.logpdf(4.5 - 5.0, th["means_bf:a"], sd["means_bf:a"] / math.sqrt(10)), rel=FLOAT_RTOL)
    # change: se known; from the SD, or from a 95% CI with the t quantile (n - 1 df)
    assert "change_sd:a" not in sd and "change_ci:a" not in sd  # no sigma parameter for these units
    assert ll["change_sd:a"] == pytest.approx(
        stats.norm.logpdf(-0.2, th["change_sd:a"], 0.6 / math.sqrt(20)), rel=FLOAT_RTOL)
    se_ci = 0.5 / (2 * stats.t.ppf(0.975, 14))
    assert ll["change_ci:a"] == pytest.approx(stats.norm.logpdf(-0.25, th["change_ci:a"], se_ci), rel=FLOAT_RTOL)


def test_potential_is_the_sum_of_the_per_unit_loglik(mixed):
    model = mixed["model"]
    total = float(free_rv_fn(model, model["likelihood"])(mixed["point"]))
    assert total == pytest.approx(math.fsum(mixed["loglik"].values()), rel=FLOAT_RTOL)


# =========================================================================== 8. bundled data
@pytest.fixture(scope="module")
def bundled():
    return load_spec(REPO / "models" / "edss_change.toml"), load_evidence(REPO / "data")


def test_bundled_data_units_and_formats(bundled):
    spec, ev = bundled
    prep = edss.prepare(spec, ev)
    units = prep.units.set_index("label")
    # one unit per arm, at the arm's last timepoint with EDSS data
    assert not prep.units.duplicated(["study", "arm"]).any()
    changes = patient_changes(ev.patients)
    times = pd.concat([ev.edss[["study", "arm", "timepoint_months"]], changes[["study", "arm", "timepoint_months"]]])
    last = times.groupby(["study", "arm"])["timepoint_months"].max()
    for r in prep.units.itertuples():
        assert r.timepoint_months == pytest.approx(last[(r.study, r.arm)])

    assert units.loc["petrou2021:all", "formats"] == ["baseline_followup"]
    iac = units.loc["iacobaeus2019:all"]
    assert iac["formats"] == ["counts"]
    assert iac["timepoint_months"] == pytest.approx(48 * 7 / DAYS_PER_MONTH)
    assert (iac["n"], iac["worsened"]) == (5, 3)
    petrou2020 = prep.units[prep.units["study"] == "petrou2020"]
    assert sorted(petrou2020["arm"]) == ["msc_it", "msc_iv", "sham"]
    assert all(f == ["change"] for f in petrou2020["formats"])
    assert dict(zip(petrou2020["arm"], petrou2020["group"])) == {"msc_it": "msc", "msc_iv": "msc", "sham": "control"}

    # the Tehran series (#14): the pilot's per-patient data and Sahraian's 5-year rows share rank 1 and are
    # kept; Bonab 2012 is a cohort of its own (no source links it to the pilots); the 2007 pilot has no data
    assert units.loc["bonab2005:pilot", "formats"] == ["patient"]
    assert {"sahraian2014:spms", "sahraian2014:nmo", "bonab2012:all"} <= set(units.index)
    assert units.loc["sahraian2014:spms", "timepoint_months"] == 60
    # the shared patients of Petrou 2020's pooled periods, and its sham periods after MSC
    assert [list(prep.units["label"].iloc[list(g.units)]) for g in prep.shared] == [
        ["petrou2020:msc_it", "petrou2020:msc_iv", "petrou2020:sham"]]
    assert units.loc["petrou2020:sham", "carry_fraction"] == pytest.approx(16 / 32)

    # courses for Petrou 2021 reported as a range 1..9: a latent value, not an imputed number
    row = prep.units.index[prep.units["label"] == "petrou2021:all"][0]
    col = prep.design.columns.index("courses")
    latent = [lt for lt in prep.design.latent if lt.row == row and lt.column == col]
    assert [(lt.low, lt.high) for lt in latent] == [(1.0, 9.0)]
    assert np.isnan(prep.design.X[row, col])


def test_bundled_data_model_has_control_effect_and_latent_courses(bundled):
    spec, ev = bundled
    model, prep = edss.build(spec, ev)
    names = {v.name for v in model.free_RVs}
    assert {"mu", "tau", "study_offset", "beta", "msc_effect", "rho", "courses_latent"} <= names
    assert model.coords["arm"] == tuple(prep.units["label"])


def test_bundled_data_timepoint_all_and_combine_all(bundled):
    spec, ev = bundled
    every = edss.prepare(spec.replace(options={"timepoint": "all"}), ev)
    assert not every.units.duplicated(["study", "arm", "timepoint_months"]).any()
    last = edss.prepare(spec, ev)
    kept = set(zip(last.units["study"], last.units["arm"]))
    assert set(zip(every.units["study"], every.units["arm"])) == kept
    # every timepoint of the kept arms with a usable format is a unit
    changes = patient_changes(ev.patients)
    times = pd.concat([ev.edss[["study", "arm", "timepoint_months"]], changes[["study", "arm", "timepoint_months"]]])
    times = times[[(s, a) in kept for s, a in zip(times["study"], times["arm"])]].drop_duplicates()
    assert len(every.units) == len(times)
    iac = every.units[every.units["study"] == "iacobaeus2019"].sort_values("timepoint_months")
    np.testing.assert_allclose(iac["timepoint_months"], np.array([12, 48]) * 7 / DAYS_PER_MONTH)
    assert list(iac["formats"]) == [["counts"], ["counts"]]

    combined = edss.prepare(spec.replace(options={"combine": "all"}), ev)
    formats = combined.units.set_index("label").loc["petrou2021:all", "formats"]
    assert {"baseline_followup", "counts"} <= set(formats)
    assert formats[0] == "baseline_followup"


# =========================================================================== 2. exact oracle vs MCMC
FIT_KW = {"draws": 1000, "tune": 1000, "chains": 4, "seed": SEED, "target_accept": 0.95}
#: Where tolerances are posterior SDs/intervals (recovery, consistency), MCMC error only needs
#: to be small against them: 1000 draws (a few hundred effective) give MCSE ~ 0.05 posterior SD.
SHORT_FIT_KW = {**FIT_KW, "draws": 500, "tune": 500, "chains": 2}


def _oracle_case(name: str):
    """(edss table, arms table or None, spec, design matrix for the oracle incl. intercept)."""
    rng = rng_for(20, ["homogeneous", "heterogeneous", "regression"].index(name))
    k = 6 if name == "homogeneous" else 8
    se = rng.uniform(0.1, 0.3, k)
    if name == "homogeneous":
        theta, x = np.full(k, -0.3), None
    elif name == "heterogeneous":
        theta, x = -0.3 + 0.4 * rng.normal(size=k), None
    else:
        year = rng.integers(2005, 2021, k).astype(float)
        x = year - year.mean()
        theta = -0.3 - 0.05 * x + 0.2 * rng.normal(size=k)
    table = plain_table(np.round(theta + se * rng.normal(size=k), 4), np.round(se, 4))
    if x is None:
        return table, None, edss_spec(), None
    arms = pd.DataFrame({"study": table["study"], "arm": "a", "group": "msc", "n": 30, "year": year})
    spec = edss_spec(["year"], covariate_options={"year": {"centre": True}})
    return table, arms, spec, np.column_stack([np.ones(k), x])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["homogeneous", "heterogeneous", "regression"])
def test_mcmc_matches_exact_normal_normal_posterior(tmp_path, name):
    from msc_bayes.inference import fit

    table, arms, spec, X = _oracle_case(name)
    tables = {"edss": table} if arms is None else {"edss": table, "arms": arms}
    ev = load_evidence(write_tables(tmp_path / name, **tables))
    y, se = ev.edss["change_mean"].to_numpy(), ev.edss["change_se"].to_numpy()
    p = 1 if X is None else X.shape[1]
    mu_prior, beta_prior = spec.priors["mu"].params, spec.priors["beta"].params
    exact = normal_normal(y, se, X=X, prior_mean=[mu_prior["mu"]] + [beta_prior["mu"]] * (p - 1),
                          prior_sd=[mu_prior["sigma"]] + [beta_prior["sigma"]] * (p - 1),
                          tau_logpdf=spec.priors["tau"].logpdf)
    f = fit(spec, ev, **FIT_KW)
    if X is not None:
        np.testing.assert_allclose(f.prepared.design.X[:, 0], X[:, 1], rtol=0, atol=1e-12)

    checks = []  # (what, mcmc estimate, exact value, mcse)
    for q, j in [("mu", 0), ("tau", None)] + ([("beta[year]", 1)] if X is not None else []):
        row = summary_row(f, q)
        checks.append((f"mean {q}", row["mean"], exact.mean(j) if j is not None else exact.tau_mean, row["mcse_mean"]))
    mu, new = draws(f, "mu"), draws(f, "theta_new", "derived")
    x_new = np.r_[1.0, np.zeros(p - 1)]  # theta_new is a new study at covariate value 0 (the centre)
    for prob in (0.025, 0.975):
        checks.append((f"q{prob} mu", np.quantile(mu, prob), exact.mu_quantile(prob), quantile_mcse(mu, prob)))
        checks.append((f"q{prob} theta_new", np.quantile(new, prob), exact.predictive_quantile(x_new, prob),
                       quantile_mcse(new, prob)))
    bad = [c for c in checks if not abs(c[1] - c[2]) < MCSE_MULTIPLIER * c[3]]
    assert not bad, f"{name}: (what, mcmc, exact, mcse) beyond {MCSE_MULTIPLIER} MCSE: {bad}"


# =========================================================================== 5. recovery per format
RECOVERY_FORMATS = ("change", "baseline_followup", "means_only", "counts", "patient")


def _simulate_recovery(folder: Path, *, mu=-0.3, tau=0.25, sigma=0.7):
    """10 arms (one study each) from known mu, tau, sigma; arm u is reported in format
    RECOVERY_FORMATS[u % 5] (counts at threshold 0.5 for the first, 1.0 for the second)."""
    rng = rng_for(50)
    edss_rows, arms, patients, truth = [], [], [], {}
    for u in range(10):
        fmt, study = RECOVERY_FORMATS[u % 5], f"r{u}"
        n = int(rng.integers(15, 41))
        theta = mu + tau * rng.normal()
        d = rounded_changes(rng, theta, sigma, n)
        truth[f"{study}:a"] = theta
        arms.append({"study": study, "arm": "a", "n": n, "group": "msc"})
        row = {"study": study, "arm": "a", "timepoint_months": 12, "n": n}
        if fmt == "change":
            edss_rows.append({**row, "change_mean": d.mean(), "change_sd": d.std(ddof=1)})
        elif fmt == "baseline_followup":
            base = np.clip(np.round(rng.normal(5.0, 1.0, n) * 2) / 2, 1.0, 8.5)
            follow = base + d
            edss_rows.append({**row, "baseline_mean": base.mean(), "baseline_sd": base.std(ddof=1),
                              "followup_mean": follow.mean(), "followup_sd": follow.std(ddof=1)})
        elif fmt == "means_only":
            edss_rows.append({**row, "change_mean": d.mean()})
        elif fmt == "counts":
            thr = 0.5 if u < 5 else 1.0
            edss_rows.append({**row, **counts_of(d, thr), "threshold": thr})
        else:
            patients += [{"study": study, "arm": "a", "patient": f"p{j}", "timepoint_months": 12, "change": v}
                         for j, v in enumerate(d)]
    write_tables(folder, edss=edss_rows, arms=arms, patients=patients)
    return truth


@pytest.mark.slow
def test_recovery_with_every_format(tmp_path):
    """Simulated truth is recovered when each format carries part of the evidence.

    mu: the 95% interval covers it and the posterior mean is within 3 posterior SDs (one
    check each, as a sanity check at the fixed seed). Each arm's true theta and log(sigma)
    (sigma_mu) are checked at |z| < 3.29 (99.9%): 11 checks, family-wise miss rate ~1%.
    """
    from msc_bayes.inference import fit

    mu, sigma = -0.3, 0.7
    truth = _simulate_recovery(tmp_path / "rec", mu=mu, sigma=sigma)
    ev = load_evidence(tmp_path / "rec")
    f = fit(edss_spec(), ev, **SHORT_FIT_KW)
    formats = dict(zip(f.prepared.units["label"], f.prepared.units["formats"]))
    assert sorted(formats) == sorted(truth)
    assert [formats[f"r{u}:a"] for u in range(10)] == [[RECOVERY_FORMATS[u % 5]] for u in range(10)]

    m = draws(f, "mu").ravel()
    lo, hi = np.quantile(m, [0.025, 0.975])
    assert lo < mu < hi
    assert abs(m.mean() - mu) < 3 * m.std()
    theta = f.posterior["theta"]
    misses = []
    for label, true in truth.items():
        t = theta.sel(arm=label).values.ravel()
        if not abs(t.mean() - true) < Z_999 * t.std():
            misses.append((label, formats[label], true, t.mean(), t.std()))
    s = draws(f, "sigma_mu").ravel()
    if not abs(s.mean() - math.log(sigma)) < Z_999 * s.std():
        misses.append(("sigma_mu", None, math.log(sigma), s.mean(), s.std()))
    assert not misses, misses


# =========================================================================== 6. one arm, four formats
CONSISTENCY_FORMATS = ("patient", "change", "counts", "means_only")


def _one_arm_tables(fmt: str, d: np.ndarray) -> dict:
    n = len(d)
    arms = [{"study": "one", "arm": "a", "n": n, "group": "msc"}]
    row = {"study": "one", "arm": "a", "timepoint_months": 12, "n": n}
    if fmt == "patient":
        return {"arms": arms, "patients": [{"study": "one", "arm": "a", "patient": f"p{j}", "timepoint_months": 12,
                                            "change": v} for j, v in enumerate(d)]}
    if fmt == "change":
        return {"arms": arms, "edss": [{**row, "change_mean": d.mean(), "change_sd": d.std(ddof=1)}]}
    if fmt == "counts":
        return {"arms": arms, "edss": [{**row, **counts_of(d, 0.5), "threshold": 0.5}]}
    return {"arms": arms, "edss": [{**row, "change_mean": d.mean()}]}


@pytest.mark.slow
def test_formats_of_the_same_patients_agree(tmp_path):
    """One arm (n = 40, theta = -0.4, sigma = 0.7) summarised four ways and fitted separately.

    The formats carry different information (counts and a bare mean lose some), so their
    posteriors of theta are not expected to agree to MCMC precision but within posterior
    uncertainty: for every pair |mean_a - mean_b| < 2 sqrt(sd_a^2 + sd_b^2). The summaries come
    from the same patients, so the difference of the two posterior means has SD at most
    sqrt(sd_a^2 + sd_b^2) (about sqrt(|sd_a^2 - sd_b^2|) for nested information): 2x is at
    least a 95% bound. Each 95% interval must also cover the true theta.
    """
    from msc_bayes.inference import fit

    theta_true, sigma_true, n = -0.4, 0.7, 40
    d = rounded_changes(rng_for(60), theta_true, sigma_true, n)
    post = {}
    for fmt in CONSISTENCY_FORMATS:
        ev = load_evidence(write_tables(tmp_path / fmt, **_one_arm_tables(fmt, d)))
        f = fit(edss_spec(), ev, **SHORT_FIT_KW)
        assert list(f.prepared.units["formats"]) == [[fmt]]
        post[fmt] = f.posterior["theta"].values.ravel()
    summary = {k: (v.mean(), v.std(), *np.quantile(v, [0.025, 0.975])) for k, v in post.items()}
    for fmt, (_, _, lo, hi) in summary.items():
        assert lo < theta_true < hi, (fmt, summary)
    for a, b in itertools.combinations(CONSISTENCY_FORMATS, 2):
        (ma, sa, *_), (mb, sb, *_) = summary[a], summary[b]
        assert abs(ma - mb) < 2 * math.hypot(sa, sb), (a, b, summary)


# =========================================================================== 7. SBC
SBC_SE = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.2])


def sbc_model(y, se):
    """The plain case of edss.build (normal-normal, priors from the spec, study effects in the
    package's standardised parameterisation, see the edss module docstring) with y and se as
    pm.Data, so one compiled model serves every SBC replication. That it is the package's
    model is checked by `test_sbc_model_is_the_package_plain_model`."""
    import pymc as pm
    import pytensor.tensor as pt

    spec = edss_spec()
    with pm.Model(coords={"study": [f"s{i + 1}" for i in range(len(se))]}) as model:
        y_ = pm.Data("y", np.asarray(y, dtype=float))
        se_ = pm.Data("se", np.asarray(se, dtype=float))
        mu = spec.priors["mu"].create("mu")
        tau = spec.priors["tau"].create("tau")
        z = pm.Normal("study_offset", 0.0, 1.0, dims="study")
        r = tau**2 / se_**2
        offset = tau * (y_ - mu) / se_**2 / (1 + r) + z / pt.sqrt(1 + r)  # effect / tau
        pm.Potential("jacobian", (-(offset**2 - z**2) / 2 - pt.log1p(r) / 2).sum())
        pm.Potential("likelihood", pm.logp(pm.Normal.dist(mu + tau * offset, se_), y_).sum())
    return model


def test_sbc_model_is_the_package_plain_model(tmp_path):
    y = rng_for(70).normal(-0.2, 0.3, len(SBC_SE))
    ev = load_evidence(write_tables(tmp_path / "sbc", edss=plain_table(y, SBC_SE)))
    y = ev.edss["change_mean"].to_numpy()
    package, _ = edss.build(edss_spec(), ev)
    mine = sbc_model(y, SBC_SE)
    assert [v.name for v in mine.value_vars] == [v.name for v in package.value_vars]
    lp_package, lp_mine = package.compile_logp(mode=CHECK_MODE), mine.compile_logp(mode=CHECK_MODE)
    rng = rng_for(71)
    for _ in range(4):
        point = {"mu": rng.normal(), "tau_log__": rng.normal(-1, 1), "study_offset": rng.normal(size=len(SBC_SE))}
        assert float(lp_mine(point)) == pytest.approx(float(lp_package(point)), rel=FLOAT_RTOL)


#: SBC size: replications x (2 chains x SBC_DRAWS draws, every SBC_THIN-th kept).
SBC_REPS, SBC_DRAWS, SBC_THIN, SBC_BINS = 60, 200, 4, 5


@pytest.mark.slow
def test_simulation_based_calibration_of_mu_and_tau():
    """Talts et al. (2018) SBC of the MCMC model: draw (mu, tau, offsets, y) from the prior
    predictive, sample the posterior with nutpie, and record the rank of the true mu and tau
    among the (thinned, so roughly independent) posterior draws. A calibrated sampler gives
    uniform ranks: chi-square test over SBC_BINS bins, p > 0.001 for each of mu and tau."""
    import nutpie

    k = len(SBC_SE)
    compiled = nutpie.compile_pymc_model(sbc_model(np.zeros(k), SBC_SE))
    rng = rng_for(72)
    ranks = {"mu": [], "tau": []}
    for r in range(SBC_REPS):
        mu, tau = rng.normal(0, 1), abs(rng.normal(0, 0.5))
        y = mu + tau * rng.normal(size=k) + SBC_SE * rng.normal(size=k)
        tree = nutpie.sample(compiled.with_data(y=y), draws=SBC_DRAWS, tune=300, chains=2, cores=2,
                             seed=SEED + r, progress_bar=False)
        for name, true in (("mu", mu), ("tau", tau)):
            kept = tree["posterior"][name].values[:, ::SBC_THIN].ravel()
            ranks[name].append(int((kept < true).sum()))
    L = 2 * len(range(0, SBC_DRAWS, SBC_THIN))  # ranks run 0..L
    bin_of = np.arange(L + 1) * SBC_BINS // (L + 1)
    expected = SBC_REPS * np.bincount(bin_of, minlength=SBC_BINS) / (L + 1)
    for name, rk in ranks.items():
        observed = np.bincount(bin_of[np.array(rk)], minlength=SBC_BINS)
        p = stats.chisquare(observed, expected).pvalue
        assert p > 1e-3, (name, observed, expected, p)


def test_follow_up_centred_at_12_months_makes_mu_the_12_month_change():
    """With follow-up centred at 12, the design is 0 at 12 months, so `change_by_design`
    (predictions by route x courses) is mu + route + courses effects at 12 months exactly."""
    import xarray as xr

    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import load_spec

    spec = load_spec(REPO / "models" / "edss_change.toml")
    prep = edss.prepare(spec, load_evidence(REPO / "data"))
    term = next(t for t in prep.design.terms if t.name == "timepoint_months")
    assert term.centre == 12.0 and term.encode(12.0).tolist() == [0.0]
    col = prep.design.columns.index("timepoint_months")
    assert np.allclose(prep.design.X[:, col], prep.units["timepoint_months"].to_numpy(dtype=float) - 12.0)
    rng = np.random.default_rng(SEED)
    beta = rng.normal(size=(2, 5, len(prep.design.columns)))
    post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 5))),
                       "tau": (("chain", "draw"), rng.uniform(size=(2, 5))),
                       "beta": (("chain", "draw", "covariate"), beta)},
                      coords={"chain": [0, 1], "draw": np.arange(5), "covariate": list(prep.design.columns)})
    out = edss.derive(post, prep, spec)
    assert out.attrs["prediction_months"] == 12.0
    it, courses = prep.design.columns.index("route[IT]"), prep.design.columns.index("courses")
    expected = post["mu"].values + beta[..., it] + beta[..., courses] * np.log(3)
    assert np.allclose(out["change_by_design"].sel(route="IT", courses=3).values, expected)
