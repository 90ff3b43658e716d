"""Exact marginal likelihoods of the normal–normal random-effects model, and its exact Bayes factor for mu = 0.

For studies y_i ~ N(mu, se_i² + tau²) (tau with a prior density p(tau)):

- H1, mu ~ N(prior_mean, prior_sd²): p(y | H1) = ∫ p(tau) p(y | tau) dtau, the conjugate part in mu
  analytic given tau; this is :func:`~msc_bayes.oracle.normal_normal`'s ``log_marginal_likelihood``;
- H0, mu fixed at ``null``: p(y | H0) = ∫ p(tau) Π_i N(y_i; null, se_i² + tau²) dtau, by the same
  adaptive Gauss–Legendre quadrature in log(tau) (the oracle's range scan and panel halving, to a
  relative accuracy of ~1e-10), with the closed-form likelihood given tau.

So ``bayes_factor`` = p(y | H1) / p(y | H0) is exact to quadrature precision. :func:`savage_dickey`
gives the same number another way: the prior density of mu at ``null`` over its exact posterior
density there (a normal mixture over the tau nodes); the two agree because mu's prior is independent of
tau's (Dickey 1971). ``tests/test_bayes_factor.py`` checks the one against the other, and an MCMC
Savage–Dickey estimate (:mod:`msc_bayes.findings.bayes_factor`) against both. Normalised densities are
needed for p(y | H1) and p(y | H0) themselves; in their ratio the tau prior's constant cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from msc_bayes.oracle.model import TauLogPdf, model_from_inputs
from msc_bayes.oracle.posterior import NormalNormalPosterior
from msc_bayes.oracle.quadrature import _refine, _scan_range, normal_normal

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class _NullModel:
    """The normal–normal model with mu fixed: the quadrature's model interface, nothing left conjugate."""

    y: NDArray[np.float64]
    se: NDArray[np.float64]
    mu: float

    def conditional(self, tau: NDArray[np.float64]):
        """log p(y | tau, mu) per tau, and empty conditional moments (no coefficient is left)."""
        tau = np.asarray(tau, dtype=float)
        v = self.se[None, :] ** 2 + tau[:, None] ** 2
        loglik = -0.5 * (len(self.y) * _LOG_2PI + np.log(v).sum(axis=1) + ((self.y - self.mu) ** 2 / v).sum(axis=1))
        return loglik, np.zeros((len(tau), 0)), np.zeros((len(tau), 0, 0))


def log_marginal_effect(y: ArrayLike, se: ArrayLike, *, prior_mean: float, prior_sd: float,
                        tau_logpdf: TauLogPdf) -> float:
    """log p(y | H1): mu ~ N(prior_mean, prior_sd²), tau ~ p(tau) (a normalised log density)."""
    return posterior_effect(y, se, prior_mean=prior_mean, prior_sd=prior_sd, tau_logpdf=tau_logpdf
                            ).log_marginal_likelihood


def posterior_effect(y: ArrayLike, se: ArrayLike, *, prior_mean: float, prior_sd: float,
                     tau_logpdf: TauLogPdf) -> NormalNormalPosterior:
    """The oracle's exact posterior under H1 (mu ~ N(prior_mean, prior_sd²))."""
    return normal_normal(y, se, prior_mean=prior_mean, prior_sd=prior_sd, tau_logpdf=tau_logpdf)


def log_marginal_null(y: ArrayLike, se: ArrayLike, *, tau_logpdf: TauLogPdf, null: float = 0.0) -> float:
    """log p(y | H0): mu = `null`, tau ~ p(tau) (a normalised log density), by the oracle's quadrature."""
    checked = model_from_inputs(y, se, None, 0.0, 1.0, tau_logpdf)  # the same input checks as H1
    model = _NullModel(checked.y, checked.se, float(null))
    rng = _scan_range(model, tau_logpdf, None)
    log_lump = (rng.lg[0] - math.log(rng.lump_slope)) if rng.lump_at_floor else -math.inf
    return _refine(rng, log_lump, None, model, tau_logpdf).log_z


def bayes_factor(y: ArrayLike, se: ArrayLike, *, prior_mean: float, prior_sd: float, tau_logpdf: TauLogPdf,
                 null: float = 0.0) -> float:
    """Exact BF10 = p(y | H1) / p(y | H0) of mu ~ N(prior_mean, prior_sd²) against mu = `null`."""
    h1 = log_marginal_effect(y, se, prior_mean=prior_mean, prior_sd=prior_sd, tau_logpdf=tau_logpdf)
    return math.exp(h1 - log_marginal_null(y, se, tau_logpdf=tau_logpdf, null=null))


def mu_density(post: NormalNormalPosterior, x: float, *, smoothing: float = 0.0) -> float:
    """The exact posterior density of mu at `x` (a normal mixture over the tau nodes); with `smoothing` = h
    the density convolved with N(0, h²), i.e. the expected value of a Gaussian kernel estimate of bandwidth h."""
    m = post.gamma_mean_nodes[:, 0]
    s = np.sqrt(post.gamma_cov_nodes[:, 0, 0] + smoothing**2)
    return float(np.dot(post.tau_weights, stats.norm.pdf(x, m, s)))


def savage_dickey(y: ArrayLike, se: ArrayLike, *, prior_mean: float, prior_sd: float, tau_logpdf: TauLogPdf,
                  null: float = 0.0) -> float:
    """Exact Savage–Dickey BF10: the N(prior_mean, prior_sd²) density at `null` over mu's exact posterior
    density there."""
    post = posterior_effect(y, se, prior_mean=prior_mean, prior_sd=prior_sd, tau_logpdf=tau_logpdf)
    return float(stats.norm.pdf(null, prior_mean, prior_sd)) / mu_density(post, null)
