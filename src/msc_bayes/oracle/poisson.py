"""Exact posterior of the Poisson log-normal random-effects model, on a 2-D grid of (mu, tau).

The model of :mod:`msc_bayes.outcomes.rates` in its plain case (one unit per study, no covariates,
no controls): k_i ~ Poisson(E_i exp(theta_i)), theta_i = mu + tau z_i, z_i ~ N(0, 1), priors on mu and tau.
The posterior density of (mu, tau) is

    p(mu, tau | k) ∝ p(mu) p(tau) Π_i ∫ Poisson(k_i | E_i e^theta) N(theta | mu, tau²) dtheta,

each study's integral by adaptive Gauss–Hermite quadrature (Liu & Pierce 1994): centred at the mode of
its integrand in theta (Newton's method; the log integrand is concave) and scaled by its curvature there,
so 40 nodes give each integral to 1e-14 relative where the Poisson term is peaked (a count >= 1) and to
about 1e-5 in the hardest case, a zero count under a wide tau (a one-sided, step-like integrand; 80 nodes:
1e-7), checked against scipy's adaptive quadrature in the tests. The grid then gives normalised marginal densities of mu and tau (trapezoid rule), their means, SDs
and quantiles (the marginal CDF interpolated linearly). Used by the tests to check MCMC within Monte Carlo
error, as :mod:`msc_bayes.oracle.quadrature` is for the normal-normal model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


def log_marginal_study(k: float, exposure: float, mu: np.ndarray, tau: np.ndarray, *, nodes: int = 40,
                       newton_steps: int = 30) -> np.ndarray:
    """log ∫ Poisson(k | exposure e^theta) N(theta | mu, tau²) dtheta for arrays `mu`, `tau` (broadcast; tau > 0)."""
    mu, tau = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(tau, dtype=float))
    log_e = np.log(exposure)
    inv_var = 1.0 / tau**2
    # the mode of g(theta) = k theta - E e^theta - (theta - mu)^2 / (2 tau^2), the root of the decreasing,
    # concave g': Newton's method from the right of it (where g' <= 0) converges monotonically
    theta = np.maximum(mu, np.log(max(k, 0.5)) - log_e)
    for _ in range(newton_steps):
        rate = np.exp(log_e + theta)
        grad = k - rate - (theta - mu) * inv_var
        theta = theta + grad / (rate + inv_var)
    curvature = np.exp(log_e + theta) + inv_var
    scale = 1.0 / np.sqrt(curvature)
    x, w = np.polynomial.hermite.hermgauss(nodes)
    t = theta[..., None] + np.sqrt(2.0) * scale[..., None] * x
    log_f = (k * (log_e + t) - np.exp(log_e + t) - special.gammaln(k + 1)
             - 0.5 * ((t - mu[..., None]) ** 2) * inv_var[..., None] - np.log(tau[..., None]) - 0.5 * np.log(2 * np.pi))
    return np.log(np.sqrt(2.0) * scale) + special.logsumexp(log_f + x**2, b=w, axis=-1)


@dataclass(frozen=True)
class PoissonGridPosterior:
    """The grid posterior: ``mu`` (M,) and ``tau`` (T,) grids and the normalised joint density ``density`` (M, T)."""

    mu: np.ndarray
    tau: np.ndarray
    density: np.ndarray

    def marginal(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(grid, normalised marginal density) of "mu" or "tau"."""
        if which == "mu":
            return self.mu, np.trapezoid(self.density, self.tau, axis=1)
        return self.tau, np.trapezoid(self.density, self.mu, axis=0)

    def mean(self, which: str) -> float:
        grid, p = self.marginal(which)
        return float(np.trapezoid(grid * p, grid))

    def sd(self, which: str) -> float:
        grid, p = self.marginal(which)
        m = np.trapezoid(grid * p, grid)
        return float(np.sqrt(np.trapezoid((grid - m) ** 2 * p, grid)))

    def quantile(self, which: str, prob: float) -> float:
        grid, p = self.marginal(which)
        cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(grid))])
        return float(np.interp(prob, cdf / cdf[-1], grid))

    def edge_mass(self) -> float:
        """The largest normalised density on the grid's boundary relative to its peak (small: the grid holds
        the posterior)."""
        d = self.density / self.density.max()
        return float(max(d[0].max(), d[-1].max(), d[:, -1].max()))


def poisson_lognormal(events, exposure, *, mu_prior, tau_prior, mu_range: tuple[float, float],
                      tau_max: float, size: int = 401, nodes: int = 40) -> PoissonGridPosterior:
    """The exact grid posterior of (mu, tau) for counts `events` over `exposure` (module docstring).

    `mu_prior` / `tau_prior`: frozen scipy distributions (``logpdf``; tau's on [0, inf), e.g.
    ``scipy.stats.halfnorm``); `mu_range` and (0, `tau_max`] the grid's extent, `size` points each.
    """
    events, exposure = np.asarray(events, dtype=float), np.asarray(exposure, dtype=float)
    mu = np.linspace(*mu_range, size)
    tau = np.linspace(tau_max / size, tau_max, size)
    M, T = np.meshgrid(mu, tau, indexing="ij")
    logp = mu_prior.logpdf(M) + tau_prior.logpdf(T)
    for k, e in zip(events, exposure):
        logp = logp + log_marginal_study(k, e, M, T, nodes=nodes)
    # at tau = 0 every study's theta is mu: the integral is Poisson(k | E e^mu) (the limit, exactly)
    at_zero = tau_prior.logpdf(0.0) + mu_prior.logpdf(mu)
    for k, e in zip(events, exposure):
        at_zero = at_zero + k * (np.log(e) + mu) - e * np.exp(mu) - special.gammaln(k + 1)
    tau = np.concatenate([[0.0], tau])
    logp = np.concatenate([at_zero[:, None], logp], axis=1)
    p = np.exp(logp - logp.max())
    p /= np.trapezoid(np.trapezoid(p, tau, axis=1), mu)
    return PoissonGridPosterior(mu, tau, p)
