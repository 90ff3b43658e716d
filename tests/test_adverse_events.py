"""The adverse-event / MRI-activity model (msc_bayes.outcomes.events).

Fast tests check unit selection on the bundled data, the model's structure and its exact
likelihood without sampling. Sampling tests (marked slow) compare MCMC with independent
numerical posteriors, with every tolerance a multiple (MCSE_MULTIPLIER) of the Monte Carlo
standard error reported by arviz-stats, or check calibration (recovery, SBC).

Exact reference (`GridPosterior`): for the binomial-normal random-intercept model
p(y | mu, tau) = prod_i int L_i(mu + b) N(b | 0, tau) db. The integral is done on the
study-effect scale b with a uniform grid of spacing h (the step of the mu grid, so every
mu + b lies on one eta grid and each L_i is evaluated once): for a Gaussian kernel the
trapezoid sum converges exponentially, its relative error being ~exp(-2 pi^2 tau^2 / h^2)
(< 3e-9 at the smallest tau > 0, tau = h), where a fixed 60-node Gauss-Hermite rule in z
cannot resolve the likelihood's peak once tau * sqrt(n p (1 - p)) is large. tau = 0 is
exact (L_i(mu)). The posterior is then a 2-D trapezoid sum over a (mu, tau) grid that is
checked to hold all but a negligible fraction of the mass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_evidence as write_tables
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special, stats

from msc_bayes.errors import EvidenceError, SpecError
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import events as ae
from msc_bayes.spec import load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
AE_SPEC = REPO / "models" / "adverse_events.toml"
MRI_SPEC = REPO / "models" / "mri_activity.toml"
#: |MCMC estimate - exact value| must be below this many Monte Carlo standard errors.
MCSE_MULTIPLIER = 4.0
#: Default priors of the binary outcomes (msc_bayes.spec): mu ~ N(-2, 2), tau ~ HalfNormal(1).
PRIOR_MU = (-2.0, 2.0)
PRIOR_TAU_SIGMA = 1.0

# The plain-case fixture: ten one-arm studies of one event type (reused, with new counts,
# by every test of this structure so the model is compiled once).
PLAIN_N = np.array([12, 20, 35, 15, 50, 25, 40, 18, 30, 22])
PLAIN_TRUTH = {"mu": -1.5, "tau": 0.8}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def write_evidence(folder: Path, arms: list[dict], adverse_events: list[dict] | None = None,
                   mri: list[dict] | None = None):
    """Write small CSV tables and load them through the package's validating loader."""
    return write_tables(folder, arms=arms, adverse_events=adverse_events, mri=mri)


def one_arm_studies(folder: Path, n, y=None, *, events=None, routes=None, secondary: str = ""):
    """One MSC arm per study, one event type ("serious_ae") with the given counts."""
    arms, rows = [], []
    for i, n_i in enumerate(n):
        study = f"s{i:02d}"
        arms.append({"study": study, "arm": "all", "group": "msc", "route": routes[i] if routes else "IV",
                     "administrations": 1, "n": int(n_i)})
        row = {"study": study, "arm": "all", "event": "serious_ae", "serious": "true", "attribution": "any",
               "patients_with_event": int(y[i]), "n_at_risk": int(n_i)}
        if events is not None:
            row["events"] = int(events[i])
        if secondary:
            row["secondary_fields"] = secondary
        rows.append(row)
    return write_evidence(folder, arms, rows)


def ae_spec(*, covariates=(), priors=None, options=None, covariate_options=None, seed=20261121):
    d = {"outcome": "adverse_events", "covariates": list(covariates), "sampler": {"seed": seed}}
    if priors:
        d["priors"] = priors
    if options:
        d["options"] = options
    if covariate_options:
        d["covariate_options"] = covariate_options
    return spec_from_dict(d)


def mcse(x: np.ndarray, method: str = "mean", prob: float | None = None) -> float:
    """Monte Carlo standard error of a (chain, draw) array (arviz-stats)."""
    import arviz_stats as azs

    return float(azs.mcse(np.asarray(x, dtype=float), method=method, prob=prob))


def log_binomial(y, n):
    return lambda eta: (special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
                        - y * np.logaddexp(0.0, -eta) - (n - y) * np.logaddexp(0.0, eta))


def log_poisson_softplus(k, n):
    return lambda eta: stats.poisson.logpmf(k, n * np.logaddexp(0.0, eta))


class GridPosterior:
    """Posterior of (mu, tau) for prod_i int exp(loglik_i(mu + b)) N(b | 0, tau) db on a grid.

    Priors: mu ~ N(PRIOR_MU), tau ~ HalfNormal(PRIOR_TAU_SIGMA) (scipy densities).
    """

    def __init__(self, logliks, mu_range, tau_max=5.0, h=0.025, width=7.0):
        mu = np.arange(mu_range[0], mu_range[1] + h / 2, h)
        tau = h * np.arange(round(tau_max / h) + 1)
        K = int(np.ceil(width * tau_max / h))
        b = h * np.arange(-K, K + 1)
        eta = mu[0] + b[0] + h * np.arange(len(mu) + len(b) - 1)
        G = np.zeros((len(tau), len(b)))
        G[0, K] = 1.0  # tau = 0: no study effect
        G[1:] = stats.norm.pdf(b[None, :], scale=tau[1:, None])
        G /= G.sum(axis=1, keepdims=True)
        loglik = np.zeros((len(mu), len(tau)))
        for f in dict.fromkeys(logliks):  # a study repeated (same function object) is computed once
            L = np.exp(f(eta))
            p = sliding_window_view(L, len(b)) @ G.T  # p[j, t] = sum_k L(mu_j + b_k) G[t, k]
            with np.errstate(divide="ignore"):
                loglik += logliks.count(f) * np.log(np.maximum(p, 0.0))
        lp = loglik + stats.norm.logpdf(mu, *PRIOR_MU)[:, None] + stats.halfnorm.logpdf(tau, scale=PRIOR_TAU_SIGMA)
        post = np.exp(lp - lp.max())
        wm, wt = np.full(len(mu), h), np.full(len(tau), h)
        wm[[0, -1]] = wt[[0, -1]] = h / 2
        self.mu, self.tau, self.h = mu, tau, h
        self.weights = post * wm[:, None] * wt[None, :]
        self.weights /= self.weights.sum()
        f_mu = self.weights.sum(axis=1)
        f_tau = self.weights.sum(axis=0)
        # the grid must hold the posterior: negligible mass at its edges
        assert max(f_mu[0], f_mu[-1]) < 1e-9 * f_mu.max(), "mu grid too narrow"
        assert f_tau[-1] < 1e-9 * f_tau.max(), "tau grid too short"

    def mean(self, g) -> float:
        return float((self.weights * g(self.mu[:, None], self.tau[None, :])).sum())

    def sd(self, g) -> float:
        m = self.mean(g)
        return float(np.sqrt(self.mean(lambda a, b: (g(a, b) - m) ** 2)))

    def mu_quantile(self, prob: float) -> float:
        density = self.weights.sum(axis=1) / self.h
        cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * self.h)])
        return float(np.interp(prob, cdf / cdf[-1], self.mu))


def compare(checks) -> list:
    """(what, mcmc, exact, mcse) rows that miss by MCSE_MULTIPLIER MCSEs or more."""
    return [c for c in checks if not abs(c[1] - c[2]) < MCSE_MULTIPLIER * c[3]]


def sample(compiled, *, seed: int, draws: int = 1000, tune: int = 1000, chains: int = 4, **data):
    """Posterior draws of a nutpie-compiled model, optionally with new data (no recompilation)."""
    import nutpie

    model = compiled.with_data(**{k: np.asarray(v, dtype=float) for k, v in data.items()}) if data else compiled
    tree = nutpie.sample(model, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=False,
                         target_accept=0.9)
    return tree["posterior"].to_dataset()


@pytest.fixture(scope="module")
def bundled():
    return load_evidence(REPO / "data")


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """The plain case: (model, prepared, spec, y), y simulated from PLAIN_TRUTH."""
    rng = np.random.default_rng(11)
    eta = PLAIN_TRUTH["mu"] + PLAIN_TRUTH["tau"] * rng.standard_normal(len(PLAIN_N))
    y = rng.binomial(PLAIN_N, special.expit(eta))
    ev = one_arm_studies(tmp_path_factory.mktemp("plain"), PLAIN_N, y)
    spec = ae_spec()
    model, prepared = ae.build(spec, ev)
    return model, prepared, spec, y


@pytest.fixture(scope="module")
def plain(plain_model):
    """The plain case compiled once by nutpie: (compiled, model, prepared, spec, y)."""
    import nutpie

    return (nutpie.compile_pymc_model(plain_model[0]), *plain_model)


# --------------------------------------------------------------------------------------
# 1. units on the bundled data (no sampling)
# --------------------------------------------------------------------------------------


def test_bundled_adverse_event_units(bundled):
    spec = load_spec(AE_SPEC)
    prep = ae.prepare(spec, bundled)
    u = prep.units.set_index("label")
    # a reported zero is a unit with its exact count
    assert (u.loc["petrou2021:all:serious_ae", ["patients_with_event", "n"]].tolist() == [0, 24])
    assert {"lu2020:nmo:intolerable_ae", "lu2020:rrms:intolerable_ae"} <= set(u.index)
    # not reported = no row = no unit
    assert "iacobaeus2019" not in set(prep.units["study"])
    # overlap: the rank-1 Fernandez arms have no AE rows, so the combined arm is used
    assert "fernandez2018:msc_both_doses:serious_ae" in u.index
    assert not {"fernandez2018:low_dose:serious_ae", "fernandez2018:high_dose:serious_ae"} & set(u.index)
    # Bonab 2012 is in no overlap group (#14); Sahraian's vague statements are their own events, rank 1 in tehran_it
    assert {"bonab2012:all:major_ae", "sahraian2014:spms:significant_ae"} <= set(u.index)
    assert {"sahraian2014:spms:infection", "sahraian2014:spms:neoplasm"} <= set(u.index)
    # a control arm is a unit; every unit here reports patients_with_event
    assert u.loc["petrou2020:sham:serious_ae", "group"] == "control"
    assert set(prep.units["likelihood"]) == {"binomial"}
    assert u.loc["harris2018:all:serious_ae", "administrations_total"] == 60  # exposure in administrations
    assert prep.studies[0] == "petrou2021" and len(prep.study_events) == prep.units["study_event"].nunique()


def test_bundled_adverse_event_model_structure(bundled):
    spec = load_spec(AE_SPEC)
    model, prep = ae.build(spec, bundled)
    assert {v.name for v in model.free_RVs} == {"mu", "tau", "study_offset", "tau_event", "event_offset", "beta",
                                                "msc_effect"}
    assert list(model.coords["covariate"]) == ["route[IT]", "route[IT+IV]", "route[mixed]"]
    assert list(model.coords["arm"]) == list(prep.units["label"])
    assert list(model.coords["event"]) == list(prep.events)
    assert len(model.coords["study_event"]) == len(prep.study_events)
    assert tuple(model.named_vars_to_dims["theta"]) == ("arm",)
    assert tuple(model.named_vars_to_dims["loglik"]) == ("arm",)
    # serious AEs only: one event type, so no event term
    only = ae.build(spec.replace(options={"events": ["serious_ae"]}), bundled)[0]
    assert {v.name for v in only.free_RVs} == {"mu", "tau", "study_offset", "beta", "msc_effect"}


def test_bundled_mri_units_and_timepoints(bundled):
    spec = load_spec(MRI_SPEC)
    prep = ae.prepare(spec, bundled)
    u = prep.units.set_index("label")
    assert u.loc["iacobaeus2019:all:new_t2", ["patients_with_event", "n"]].tolist() == [3, 5]  # 48 weeks
    assert u.loc["lublin2014:placebo:cutter_rule", "patients_with_event"] == 0
    assert {"yamout2010:all:new_or_enlarging_t2", "yamout2010:all:gd_enhancing"} <= set(u.index)
    first = ae.prepare(spec.replace(options={"timepoint": "first"}), bundled).units.set_index("label")
    assert first.loc["iacobaeus2019:all:new_t2", ["patients_with_event", "n"]].tolist() == [1, 6]
    every = ae.prepare(spec.replace(options={"timepoint": "all"}), bundled).units
    iac = every[every["study"] == "iacobaeus2019"]
    assert len(iac) == 2 and all("@" in lab for lab in iac["label"])
    model, _ = ae.build(spec, bundled)
    assert {v.name for v in model.free_RVs} == {"mu", "tau", "study_offset", "tau_event", "event_offset",
                                                "msc_effect"}
    assert "covariate" not in model.coords


def test_selection_options(bundled):
    spec = load_spec(AE_SPEC)
    related = ae.prepare(spec.replace(options={"attribution": "related"}), bundled).units
    assert set(related["study"]) == {"petrou2021", "petrou2020", "cohen2018", "fu2016"}
    anyc = ae.prepare(spec.replace(options={"attribution": "any"}), bundled).units
    assert not set(anyc["study"]) & {"petrou2021", "petrou2020", "cohen2018", "fu2016"}
    serious = ae.prepare(spec.replace(options={"serious_only": True}), bundled).units
    assert "rash" not in set(serious["event"]) and "infection" not in set(serious["event"])
    keep_all = ae.prepare(spec.replace(options={"exclude_overlapping": False}), bundled).units
    # since #14 no adverse-event row of the bundled data is outranked (Bonab 2012 left the Tehran group;
    # Sahraian 2014 shares rank 1 with the pilot, which reports no adverse events)
    assert set(keep_all["label"]) == set(ae.prepare(spec, bundled).units["label"])
    assert {"sahraian2014:spms:significant_ae", "bonab2012:all:major_ae"} <= set(keep_all["label"])
    primary = ae.prepare(spec.replace(options={"exclude_secondary": True}), bundled)
    assert not {"karussis2010", "connick2012"} & set(primary.units["study"])  # counts from secondary sources
    assert any(n.startswith("karussis2010:ms:major_ae left out") for n in primary.notes)


def test_clear_errors_when_nothing_is_left(bundled):
    spec = load_spec(AE_SPEC)
    with pytest.raises(SpecError) as err:  # the spec asks for an event the table does not have
        ae.prepare(spec.replace(options={"events": ["serious_AE"]}), bundled)
    assert "adverse_events.csv" in str(err.value) and "did you mean 'serious_ae'" in str(err.value)
    with pytest.raises(EvidenceError, match="mri.csv"):
        ae.prepare(load_spec(MRI_SPEC).replace(options={"serious_only": True}), bundled)
    with pytest.raises(EvidenceError, match="attribution='related'"):
        ae.prepare(spec.replace(options={"events": ["rash"], "attribution": "related"}), bundled)


# --------------------------------------------------------------------------------------
# exact likelihood (no sampling)
# --------------------------------------------------------------------------------------


def test_likelihood_terms_match_scipy_and_stay_finite():
    import pytensor.tensor as pt

    eta = np.array([-800.0, -40.0, -3.0, 0.0, 2.0, 40.0, 800.0])
    n = np.full(7, 12.0)
    y = np.array([0.0, 0.0, 1.0, 5.0, 12.0, 12.0, 11.0])
    b = ae.formats.binomial_logit_logp(pt.as_tensor(y), pt.as_tensor(n), pt.as_tensor(eta)).eval(mode="FAST_COMPILE")
    p = ae.formats.poisson_softplus_logp(pt.as_tensor(y), pt.as_tensor(n), pt.as_tensor(eta)).eval(mode="FAST_COMPILE")
    ref_b = stats.binom.logpmf(y, n, special.expit(eta))
    ref_p = stats.poisson.logpmf(y, n * np.logaddexp(0.0, eta))
    ok = np.isfinite(ref_b)
    np.testing.assert_allclose(b[ok], ref_b[ok], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)
    assert np.isfinite(b).all() and np.isfinite(p).all()  # where scipy under/overflows


def test_model_loglik_is_binomial_or_poisson_per_row(tmp_path):
    """A row with both counts enters once (binomial); a row with only an event count is Poisson."""
    n, y, k = np.array([10, 20]), np.array([2, 3]), np.array([4, 5])
    # study s01's patient count is marked secondary: with exclude_secondary only its events remain
    ev = write_evidence(tmp_path, [
        {"study": "s00", "arm": "all", "group": "msc", "route": "IV", "n": 10},
        {"study": "s01", "arm": "all", "group": "msc", "route": "IV", "n": 20}], [
        {"study": "s00", "arm": "all", "event": "e", "patients_with_event": 2, "n_at_risk": 10, "events": 4},
        {"study": "s01", "arm": "all", "event": "e", "patients_with_event": 3, "n_at_risk": 20, "events": 5,
         "secondary_fields": "patients_with_event"}])
    for exclude, kinds in ((False, ["binomial", "binomial"]), (True, ["binomial", "poisson"])):
        spec = ae_spec(options={"exclude_secondary": exclude})
        model, prep = ae.build(spec, ev)
        assert list(prep.units["likelihood"]) == kinds
        point = model.initial_point()
        point["mu"] = np.array(-0.7)
        point["study_offset"] = np.array([0.3, -1.1])
        outs = model.replace_rvs_by_values([model["theta"], model["loglik"], model.potentials[0]])
        theta, loglik, pot = model.compile_fn(outs, mode="FAST_COMPILE")(point)
        ref = [stats.binom.logpmf(y[i], n[i], special.expit(theta[i])) if kind == "binomial"
               else stats.poisson.logpmf(k[i], n[i] * np.logaddexp(0.0, theta[i])) for i, kind in enumerate(kinds)]
        np.testing.assert_allclose(loglik, ref, rtol=1e-12)
        np.testing.assert_allclose(pot, np.sum(ref), rtol=1e-12)


def test_plain_case_has_exactly_mu_tau_and_offsets(plain_model):
    model, prepared, _, _ = plain_model
    assert [v.name for v in model.free_RVs] == ["mu", "tau", "study_offset"]
    assert model["mu"].ndim == 0 and model["tau"].ndim == 0
    assert len(model.coords["study_event"]) == len(PLAIN_N)
    assert prepared.units["n"].tolist() == PLAIN_N.tolist()


def test_derive_without_sampling(bundled):
    """Derived quantities from synthetic draws: shapes, identities, reproducibility."""
    spec = load_spec(AE_SPEC)
    prep = ae.prepare(spec, bundled)
    rng = np.random.default_rng(3)
    C, D, U = 2, 50, len(prep.units)
    import xarray as xr

    post = xr.Dataset({
        "mu": (("chain", "draw"), rng.normal(-3, 1, (C, D))),
        "tau": (("chain", "draw"), np.abs(rng.normal(0, 1, (C, D)))),
        "msc_effect": (("chain", "draw"), rng.normal(0, 1, (C, D))),
        "beta": (("chain", "draw", "covariate"), rng.normal(0, 1, (C, D, 3))),
        "event_effect": (("chain", "draw", "event"), rng.normal(0, 1, (C, D, len(prep.events)))),
        "theta": (("chain", "draw", "arm"), rng.normal(-3, 1, (C, D, U))),
    }, coords={"chain": range(C), "draw": range(D), "covariate": list(prep.design.columns),
               "event": list(prep.events), "arm": list(prep.units["label"])})
    d1, d2 = ae.derive(post, prep, spec), ae.derive(post, prep, spec)
    xr.testing.assert_identical(d1, d2)
    assert list(d1["route"].values) == ["IV", "IT", "IT+IV", "mixed"]
    np.testing.assert_array_equal(d1["risk_by_route"].sel(route="IV").values, d1["risk_new"].values)
    assert list(d1["contrast"].values) == ["IT vs IV", "IT+IV vs IV", "mixed vs IV"]
    np.testing.assert_array_equal(d1["route_contrast"].sel(contrast="IT vs IV").values,
                                  post["beta"].sel(covariate="route[IT]").values)
    np.testing.assert_allclose(d1["risk_pooled"].values, special.expit(post["mu"].values))
    for t in ae.RISK_THRESHOLDS:
        np.testing.assert_array_equal(d1["p_risk_above"].sel(threshold=t).values,
                                      (d1["risk_new"].values > t).astype(float))
    assert d1["predicted_count"].dims == ("chain", "draw", "arm")
    assert (d1["predicted_count"].values <= prep.units["n"].to_numpy()).all()
    a = prep.administrations_reference
    np.testing.assert_allclose(d1["rate_per_administration_new"].values,
                               -np.log1p(-d1["risk_new"].values) / a, rtol=1e-10)


# --------------------------------------------------------------------------------------
# 2.-6. sampling against exact answers and calibration
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_plain_case_matches_exact_binomial_normal_posterior(plain):
    compiled, _, _, _, y = plain
    post = sample(compiled, seed=1)
    mu, tau = post["mu"].values, post["tau"].values
    exact = GridPosterior([log_binomial(y_i, n_i) for y_i, n_i in zip(y, PLAIN_N)], (-9.0, 5.0))
    checks = [("mean mu", mu.mean(), exact.mean(lambda m, t: m), mcse(mu)),
              ("mean tau", tau.mean(), exact.mean(lambda m, t: t), mcse(tau)),
              ("sd mu", mu.std(), exact.sd(lambda m, t: m), mcse(mu, "sd"))]
    for prob in (0.025, 0.975):
        checks.append((f"q{prob} mu", np.quantile(mu, prob), exact.mu_quantile(prob), mcse(mu, "quantile", prob)))
    assert not compare(checks), compare(checks)


@pytest.mark.slow
def test_single_study_tau_near_zero_matches_one_dimensional_posterior(plain):
    """Not a conjugate case: with one study and tau ~ HalfNormal(1e-6) the model is, up to a
    shift of order 1e-6 in eta, y ~ Binomial(n, sigmoid(mu)) with mu ~ N(-2, 2), whose
    posterior is integrated numerically on a fine 1-D grid (trapezoid, h = 0.002).

    To reuse the compiled plain model, the other nine units get likelihood weight 0 (left
    out exactly, as `fit(exclude_studies=...)` does; their offsets only keep their N(0, 1)
    prior) and the prior scale of tau is changed through its `pm.Data`.
    """
    from msc_bayes.spec import prior_data_name

    n, y = 20, 3
    weight = np.zeros(len(PLAIN_N))
    weight[0] = 1.0
    post = sample(plain[0], seed=2, unit_weight=weight, patients_with_event=np.r_[y, np.zeros(9)],
                  n_at_risk=np.r_[n, PLAIN_N[1:]], **{prior_data_name("tau", "sigma"): 1e-6})
    mu, tau = post["mu"].values, post["tau"].values
    assert tau.max() < 1e-4
    grid = np.arange(-16.0, 10.0, 0.002)
    logp = stats.norm.logpdf(grid, *PRIOR_MU) + stats.binom.logpmf(y, n, special.expit(grid))
    w = np.exp(logp - logp.max())
    w /= np.trapezoid(w, grid)
    assert max(w[0], w[-1]) < 1e-12
    cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(grid))])
    mean = np.trapezoid(grid * w, grid)
    risk = special.expit(mu)
    checks = [("mean mu", mu.mean(), mean, mcse(mu)),
              ("sd mu", mu.std(), np.sqrt(np.trapezoid((grid - mean) ** 2 * w, grid)), mcse(mu, "sd")),
              ("mean risk", risk.mean(), np.trapezoid(special.expit(grid) * w, grid), mcse(risk))]
    for prob in (0.025, 0.5, 0.975):
        checks.append((f"q{prob} mu", np.quantile(mu, prob), np.interp(prob, cdf, grid), mcse(mu, "quantile", prob)))
    assert not compare(checks), compare(checks)


@pytest.mark.slow
def test_all_zero_counts_give_a_proper_posterior(plain):
    compiled = plain[0]
    out = {}
    for n in (5, 50):
        post = sample(compiled, seed=3, patients_with_event=np.zeros(10), n_at_risk=np.full(10, n))
        mu, tau = post["mu"].values, post["tau"].values
        assert np.isfinite(mu).all() and np.isfinite(tau).all()
        exact = GridPosterior([log_binomial(0, n)] * 10, (-20.0, 4.0), tau_max=6.5)
        risk = special.expit(mu)
        checks = [("mean mu", mu.mean(), exact.mean(lambda m, t: m), mcse(mu)),
                  ("sd mu", mu.std(), exact.sd(lambda m, t: m), mcse(mu, "sd")),
                  ("mean tau", tau.mean(), exact.mean(lambda m, t: t), mcse(tau)),
                  ("mean risk", risk.mean(), exact.mean(lambda m, t: special.expit(m)), mcse(risk))]
        assert not compare(checks), (n, compare(checks))
        # the data still inform: the posterior is narrower than the prior (exactly and by MCMC)
        assert exact.sd(lambda m, t: m) < PRIOR_MU[1]
        assert mu.std() + MCSE_MULTIPLIER * mcse(mu, "sd") < PRIOR_MU[1]
        out[n] = (risk.mean(), mcse(risk))
    (r5, s5), (r50, s50) = out[5], out[50]
    assert r50 + MCSE_MULTIPLIER * np.hypot(s5, s50) < r5  # more patients without events: lower risk


@pytest.mark.slow
def test_poisson_and_binomial_summaries_of_the_same_patients_agree(tmp_path, plain):
    """Simulate each patient's events as Poisson(softplus(eta_i)), so P(>= 1) = sigmoid(eta_i);
    summarise the same patients as (a) patients with >= 1 event and (b) total events only."""
    from msc_bayes.inference import fit

    truth_mu, truth_tau = -0.5, 0.4
    rng = np.random.default_rng(5)
    n = PLAIN_N * 4  # same structure as the plain fixture (10 arms), more patients
    eta = truth_mu + truth_tau * rng.standard_normal(len(n))
    per_patient = [rng.poisson(np.logaddexp(0.0, e), size=n_i) for e, n_i in zip(eta, n)]
    patients = np.array([(p > 0).sum() for p in per_patient])
    events = np.array([p.sum() for p in per_patient])
    # (b): the patient counts are marked secondary, so exclude_secondary leaves event counts only
    ev = one_arm_studies(tmp_path, n, patients, events=events, secondary="patients_with_event")
    fb = fit(ae_spec(options={"exclude_secondary": True}), ev, draws=1000, tune=1000, chains=4, seed=6)
    assert set(fb.prepared.units["likelihood"]) == {"poisson"}
    post_a = sample(plain[0], seed=7, patients_with_event=patients, n_at_risk=n)
    mu_a, mu_b = post_a["mu"].values, fb.posterior["mu"].values
    # (b) against its own exact posterior: the Poisson likelihood is the one intended
    exact_b = GridPosterior([log_poisson_softplus(k, m) for k, m in zip(events, n)], (-8.0, 5.0))
    tau_b = fb.posterior["tau"].values
    checks = [("mean mu (events)", mu_b.mean(), exact_b.mean(lambda m, t: m), mcse(mu_b)),
              ("mean tau (events)", tau_b.mean(), exact_b.mean(lambda m, t: t), mcse(tau_b))]
    assert not compare(checks), compare(checks)
    # The two summaries are different data about the same patients, so their posteriors
    # legitimately differ by sampling noise. Each posterior mean should lie within 3
    # posterior SDs of the truth (plus MCMC error); their difference within 3 SDs of a
    # difference of two such estimates (var <= sd_a^2 + sd_b^2 as they are positively
    # correlated), plus the MCSE of the difference.
    for m in (mu_a, mu_b):
        assert abs(m.mean() - truth_mu) < 3 * m.std() + MCSE_MULTIPLIER * mcse(m)
    diff_tol = 3 * np.hypot(mu_a.std(), mu_b.std()) + MCSE_MULTIPLIER * np.hypot(mcse(mu_a), mcse(mu_b))
    assert abs(mu_a.mean() - mu_b.mean()) < diff_tol


@pytest.mark.slow
def test_recovery_with_a_route_effect(tmp_path):
    from msc_bayes.inference import fit

    truth = {"mu": -1.2, "tau": 0.5, "beta": 0.9}
    rng = np.random.default_rng(8)
    k = 12
    n = rng.integers(20, 61, size=k)
    routes = ["IV", "IT"] * (k // 2)
    it = np.array([r == "IT" for r in routes], dtype=float)
    eta = truth["mu"] + truth["beta"] * it + truth["tau"] * rng.standard_normal(k)
    y = rng.binomial(n, special.expit(eta))
    ev = one_arm_studies(tmp_path, n, y, routes=routes)
    spec = ae_spec(covariates=["route"], covariate_options={"route": {"reference": "IV"}})
    f = fit(spec, ev, draws=1000, tune=1000, chains=2, seed=9)
    post = f.posterior
    draws = {"mu": post["mu"].values, "tau": post["tau"].values,
             "beta": post["beta"].sel(covariate="route[IT]").values}
    for name, x in draws.items():
        lo, hi = np.quantile(x, [0.025, 0.975])
        assert lo < truth[name] < hi, (name, lo, hi)
    np.testing.assert_array_equal(f.derived["route_contrast"].sel(contrast="IT vs IV").values, draws["beta"])


@pytest.mark.slow
def test_simulation_based_calibration_of_mu_and_tau(plain):
    """Small SBC (Talts et al. 2018): truths from the prior, data from the model, the rank of
    each truth among thinned posterior draws is uniform if the sampler targets the posterior."""
    compiled = plain[0]
    rng = np.random.default_rng(10)
    reps, thin, n_bins = 60, 4, 6
    ranks = {"mu": [], "tau": []}
    for r in range(reps):
        mu = rng.normal(*PRIOR_MU)
        tau = abs(rng.normal(0.0, PRIOR_TAU_SIGMA))
        y = rng.binomial(PLAIN_N, special.expit(mu + tau * rng.standard_normal(len(PLAIN_N))))
        post = sample(compiled, seed=100 + r, draws=300, tune=300, chains=2, patients_with_event=y)
        for name, truth in (("mu", mu), ("tau", tau)):
            x = post[name].values[:, ::thin].ravel()
            ranks[name].append(int((x < truth).sum()))
    L = 2 * (300 // thin)  # ranks take values 0..L
    for name, rk in ranks.items():
        counts = np.histogram(rk, bins=np.linspace(0, L + 1, n_bins + 1))[0]
        p = stats.chisquare(counts).pvalue
        assert p > 0.001, (name, counts, p)


# --------------------------------------------------------------------------------------
# 7. end to end on the bundled specs
# --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec_path", [AE_SPEC, MRI_SPEC], ids=["adverse_events", "mri_activity"])
def test_fit_and_derive_on_the_bundled_specs(bundled, spec_path):
    from msc_bayes.inference import fit

    spec = load_spec(spec_path)
    f = fit(spec, bundled, draws=100, tune=100, chains=2, seed=4)
    d, prep = f.derived, f.prepared
    C, D, U = 2, 100, len(prep.units)
    rates = ("rate_per_administration_new",) if spec.outcome == "adverse_events" else ()  # MRI: no rates
    for name in ("risk_new", "risk_pooled", *rates):
        assert d[name].shape == (C, D)
    assert ("rate_per_administration_new" in d) == bool(rates)
    assert d["p_risk_above"].shape == (C, D, 3)
    p = d["p_risk_above"].values
    assert set(np.unique(p)) <= {0.0, 1.0} and 0 <= p.mean() <= 1
    assert d["risk_arm"].shape == d["predicted_count"].shape == (C, D, U)
    assert ((d["risk_arm"].values > 0) & (d["risk_arm"].values < 1)).all()
    assert (d["predicted_count"].values <= prep.units["n"].to_numpy()).all()
    assert list(f.tree["log_likelihood"][spec.outcome].dims) == ["chain", "draw", "arm"]
    if spec.outcome == "adverse_events":
        assert d["risk_by_route"].shape == (C, D, 4) and d["route_contrast"].shape == (C, D, 3)
        assert "risk_new_event" in d and "risk_new_control" in d
    else:
        assert "risk_by_route" not in d and "route_contrast" not in d
        assert d["risk_new_event"].sizes["event"] == len(prep.events) == 7  # incl. Lublin's t2_and_gd_increase
