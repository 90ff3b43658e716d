"""The Savage–Dickey Bayes factor against exact marginal likelihoods of the normal–normal model.

Data and priors: the eight-schools example of the bayesmeta vignette "An introduction to meta-analysis
using the bayesmeta package" (C. Röver; CRAN package bayesmeta; schools.example.1: bayesmeta's Rubin1981
data, mu ~ Normal(0, 50), tau ~ half-Cauchy(25)), the same numbers tests/test_oracle.py checks the oracle
against. Its BF10 for mu = 0 is about 0.40 (BF01 about 2.5): 0 lies 1.6 posterior SDs from the mean,
where the density is well estimated from draws.

(a) exact against exact: the Savage–Dickey ratio from the oracle's exact posterior density of mu at 0
    equals p(y | H1) / p(y | H0) from the marginal likelihoods (msc_bayes.oracle.marginal), to quadrature
    precision; this checks both, and p(y | H0) is also checked against scipy's adaptive quad.
(b) MCMC against exact: a nutpie fit's Savage–Dickey BF (msc_bayes.findings.bayes_factor) is within
    4 MCSE of the exact BF, plus the kernel's smoothing bias, computed exactly from the oracle (the
    expected value of a Gaussian KDE of bandwidth h is the density convolved with N(0, h²)). Why 4: a
    single roughly normal z-score, and the MCSE is itself uncertain by ~10%; a wrong density or prior
    constant is off by many MCSE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from msc_bayes.findings import bayes_factor as bf
from msc_bayes.oracle import marginal

RUBIN1981_Y = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
RUBIN1981_SE = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])
PRIOR_SD, TAU_SCALE = 50.0, 25.0
SEED = 20260521


def tau_logpdf(t):
    return stats.halfcauchy(scale=TAU_SCALE).logpdf(t)


def brute_log_marginal_null(y, se):
    """log p(y | mu = 0) by scipy's adaptive quad over tau: an independent check of the oracle's quadrature."""
    def integrand(t):
        return math.exp(tau_logpdf(t) + stats.norm.logpdf(y, 0, np.sqrt(se**2 + t**2)).sum() + 30.0)
    value, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=500)
    return math.log(value) - 30.0


@pytest.mark.parametrize(("prior_sd", "scale"), [(PRIOR_SD, TAU_SCALE), (10.0, TAU_SCALE)])
def test_exact_savage_dickey_equals_exact_marginal_likelihood_ratio(prior_sd, scale):
    kw = {"prior_mean": 0.0, "prior_sd": prior_sd, "tau_logpdf": stats.halfcauchy(scale=scale).logpdf}
    exact = marginal.bayes_factor(RUBIN1981_Y, RUBIN1981_SE, **kw)
    assert marginal.savage_dickey(RUBIN1981_Y, RUBIN1981_SE, **kw) == pytest.approx(exact, rel=1e-9)
    assert 0.2 < exact < 5  # not a degenerate example


def test_null_marginal_likelihood_against_adaptive_quad():
    got = marginal.log_marginal_null(RUBIN1981_Y, RUBIN1981_SE, tau_logpdf=tau_logpdf)
    assert got == pytest.approx(brute_log_marginal_null(RUBIN1981_Y, RUBIN1981_SE), abs=1e-8)


def test_marginal_likelihood_is_not_the_null_one():
    """The two hypotheses differ on these data: a ratio far from 1 either way would show a swapped prior."""
    kw = {"prior_mean": 0.0, "prior_sd": PRIOR_SD, "tau_logpdf": tau_logpdf}
    h1 = marginal.log_marginal_effect(RUBIN1981_Y, RUBIN1981_SE, **kw)
    h0 = marginal.log_marginal_null(RUBIN1981_Y, RUBIN1981_SE, tau_logpdf=tau_logpdf)
    # with mu fixed at the data's weighted mean the null fits at least as well as at 0
    better = marginal.log_marginal_null(RUBIN1981_Y, RUBIN1981_SE, tau_logpdf=tau_logpdf, null=8.0)
    assert better > h0 and abs(h1 - h0) > 0.5


@pytest.mark.slow
def test_nutpie_savage_dickey_within_mcse_of_exact():
    import pymc as pm

    with pm.Model():
        mu = pm.Normal("mu", 0.0, PRIOR_SD)
        tau = pm.HalfCauchy("tau", TAU_SCALE)
        z = pm.Normal("z", 0.0, 1.0, shape=len(RUBIN1981_Y))
        pm.Normal("y", mu + tau * z, RUBIN1981_SE, observed=RUBIN1981_Y)
        idata = pm.sample(draws=2500, tune=1000, chains=4, random_seed=SEED, nuts_sampler="nutpie",
                          progressbar=False)
    x = idata["posterior"]["mu"].values  # (chain, draw)
    got = bf.savage_dickey(x, stats.norm.pdf(0.0, 0.0, PRIOR_SD))
    assert not got.lower_bound
    kw = {"prior_mean": 0.0, "prior_sd": PRIOR_SD, "tau_logpdf": tau_logpdf}
    exact = marginal.bayes_factor(RUBIN1981_Y, RUBIN1981_SE, **kw)
    post = marginal.posterior_effect(RUBIN1981_Y, RUBIN1981_SE, **kw)
    smoothed = stats.norm.pdf(0.0, 0.0, PRIOR_SD) / marginal.mu_density(post, 0.0, smoothing=got.bandwidth)
    bias = abs(smoothed - exact)
    assert bias < got.mcse  # the kernel's smoothing bias is below the Monte Carlo error here
    assert abs(got.bf10 - exact) < 4 * got.mcse + bias, (got.bf10, exact, got.mcse, bias)
    assert got.mcse < 0.1 * exact  # and the check has teeth: the MCSE is a small part of the BF
