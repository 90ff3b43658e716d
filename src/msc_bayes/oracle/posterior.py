"""The exact posterior of the normal-normal model: tau on quadrature nodes, everything else an
exact normal mixture over them (summaries, CDFs, quantiles, prediction, draws)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.polynomial import legendre as _leg
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import ndtr

from msc_bayes.oracle.model import TauLogPdf, _Model


def _shaped(values: NDArray[np.float64], like: NDArray) -> float | NDArray[np.float64]:
    """Flat results reshaped like the input; a float for scalar input."""
    return float(values[0]) if like.ndim == 0 else values.reshape(like.shape)


def _check_prob(q: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(q, dtype=float)
    if not np.all((arr > 0.0) & (arr < 1.0)):
        raise ValueError(f"probabilities must lie strictly between 0 and 1; got {arr.tolist()}")
    return arr


def _mixture_cdf(x: float, w: NDArray, m: NDArray, s: NDArray) -> float:
    return float(np.dot(w, ndtr((x - m) / s)))


def _mixture_quantile(q: ArrayLike, w: NDArray, m: NDArray, s: NDArray) -> float | NDArray:
    """Quantile(s) of sum_j w_j N(m_j, s_j^2) by Brent's method on the mixture CDF."""
    qa = _check_prob(q)
    keep = w > 0
    w, m, s = w[keep], m[keep], s[keep]
    w = w / w.sum()
    mean = float(np.dot(w, m))
    sd = math.sqrt(float(np.dot(w, s**2 + (m - mean) ** 2)))
    out = np.empty(qa.shape)
    for idx, qi in np.ndenumerate(qa):
        lo, hi = mean - 10.0 * sd, mean + 10.0 * sd
        while _mixture_cdf(lo, w, m, s) > qi:
            lo -= 10.0 * sd
        while _mixture_cdf(hi, w, m, s) < qi:
            hi += 10.0 * sd
        out[idx] = brentq(
            lambda x, qi=qi: _mixture_cdf(x, w, m, s) - qi,
            lo,
            hi,
            xtol=1e-14 * max(sd, abs(mean)),
            rtol=4 * np.finfo(float).eps,
            maxiter=200,
        )
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True, eq=False)
class NormalNormalPosterior:
    """Exact posterior of the normal-normal random-effects meta-(regression) model.

    Returned by :func:`normal_normal`; do not construct directly. All summaries are exact up
    to the quadrature over tau (relative accuracy ~1e-10 or better).

    The posterior of tau is represented by quadrature nodes ``tau_nodes`` (ascending, the
    first may be an exact 0 carrying the lumped mass below the integration range) with
    normalised weights ``tau_weights``; given tau, gamma is normal with mean
    ``gamma_mean_nodes[j]`` and covariance ``gamma_cov_nodes[j]``.
    """

    y: NDArray[np.float64]
    se: NDArray[np.float64]
    X: NDArray[np.float64]
    tau_nodes: NDArray[np.float64]
    tau_weights: NDArray[np.float64]
    gamma_mean_nodes: NDArray[np.float64]
    gamma_cov_nodes: NDArray[np.float64]
    log_marginal_likelihood: float
    """log p(y): exact if ``tau_logpdf`` and the gamma prior are normalised densities
    (a flat gamma component counts with density 1; a ``tau_max`` truncation is not
    renormalised)."""
    _model: _Model = field(repr=False)
    _tau_logpdf: TauLogPdf = field(repr=False)
    _tau_max: float | None = field(repr=False)
    # CDF of tau: lumped mass below exp(_edges[0]) (distributed as tau^_lump_slope), panel
    # edges in log(tau), cumulative mass at each edge, and per-panel Legendre series (degree
    # 16, columns = panels) of the within-panel cumulative mass as a function of u in [-1, 1].
    _lump: float = field(repr=False)
    _lump_slope: float = field(repr=False)
    _edges: NDArray[np.float64] = field(repr=False)
    _cum: NDArray[np.float64] = field(repr=False)
    _cdf_coef: NDArray[np.float64] = field(repr=False)
    _tau_moment_tail: tuple[float, float] = field(repr=False)

    # ----------------------------------------------------------------- basic shape
    @property
    def k(self) -> int:
        """Number of studies."""
        return len(self.y)

    @property
    def p(self) -> int:
        """Number of regression coefficients (columns of X, intercept included)."""
        return self.X.shape[1]

    # ----------------------------------------------------------------- tau
    def tau_pdf(self, t: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior density of tau at ``t`` (exact: prior x marginal likelihood / p(y))."""
        t_in = np.asarray(t, dtype=float)
        t = np.atleast_1d(t_in).ravel()
        out = np.zeros(t.shape)
        ok = t >= 0.0
        if self._tau_max is not None:
            ok &= t <= self._tau_max
        if ok.any():
            tt = t[ok]
            lp = np.broadcast_to(np.asarray(self._tau_logpdf(tt), dtype=float), tt.shape)
            ll, _, _ = self._model.conditional(tt)
            out[ok] = np.exp(lp + ll - self.log_marginal_likelihood)
        return _shaped(out, t_in)

    def tau_cdf(self, t: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior CDF of tau at ``t``."""
        t_in = np.asarray(t, dtype=float)
        t = np.atleast_1d(t_in).ravel()
        out = np.zeros(t.shape)
        s_lo, s_hi = self._edges[0], self._edges[-1]
        pos = t > 0.0
        s = np.full(t.shape, -np.inf)
        s[pos] = np.log(t[pos])
        below = pos & (s < s_lo)
        if self._lump > 0.0:
            out[below] = self._lump * np.exp(self._lump_slope * (s[below] - s_lo))
        out[s >= s_hi] = 1.0
        inside = (s >= s_lo) & (s < s_hi)
        if inside.any():
            idx = np.clip(np.searchsorted(self._edges, s[inside], side="right") - 1, 0, None)
            half = 0.5 * (self._edges[idx + 1] - self._edges[idx])
            mid = 0.5 * (self._edges[idx + 1] + self._edges[idx])
            u = (s[inside] - mid) / half
            part = _leg.legval(u, self._cdf_coef[:, idx], tensor=False)
            out[inside] = np.clip(self._cum[idx] + part, 0.0, 1.0)
        return _shaped(out, t_in)

    def tau_quantile(self, q: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior quantile(s) of tau (inverse of :meth:`tau_cdf`)."""
        qa = _check_prob(q)
        res = self._tau_inverse_cdf(np.atleast_1d(qa).ravel()).reshape(qa.shape)
        return float(res) if res.ndim == 0 else res

    def _tau_inverse_cdf(self, q: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(q.shape)
        s_lo = self._edges[0]
        low = q < self._lump
        if low.any():
            out[low] = np.exp(s_lo + np.log(q[low] / self._lump) / self._lump_slope)
        rest = ~low
        if rest.any():
            qr = q[rest]
            n_panels = len(self._edges) - 1
            idx = np.clip(np.searchsorted(self._cum, qr, side="right") - 1, 0, n_panels - 1)
            target = qr - self._cum[idx]
            coef = self._cdf_coef[:, idx]
            lo = np.full(qr.shape, -1.0)
            hi = np.full(qr.shape, 1.0)
            for _ in range(60):  # bisection: 2^-60 of a panel is below double precision
                mid = 0.5 * (lo + hi)
                above = _leg.legval(mid, coef, tensor=False) > target
                hi = np.where(above, mid, hi)
                lo = np.where(above, lo, mid)
            u = 0.5 * (lo + hi)
            half = 0.5 * (self._edges[idx + 1] - self._edges[idx])
            centre = 0.5 * (self._edges[idx + 1] + self._edges[idx])
            out[rest] = np.exp(centre + half * u)
        return out

    @cached_property
    def _tau_moments(self) -> tuple[float, float]:
        m1 = float(np.dot(self.tau_weights, self.tau_nodes)) + self._tau_moment_tail[0]
        m2 = float(np.dot(self.tau_weights, self.tau_nodes**2)) + self._tau_moment_tail[1]
        return m1, m2

    @property
    def tau_mean(self) -> float:
        """Posterior mean of tau (``inf`` if the posterior tail is too heavy for it to exist)."""
        return self._tau_moments[0]

    @property
    def tau_sd(self) -> float:
        """Posterior SD of tau (``inf`` if the posterior second moment does not exist)."""
        m1, m2 = self._tau_moments
        if not (math.isfinite(m1) and math.isfinite(m2)):
            return math.inf
        return math.sqrt(max(m2 - m1**2, 0.0))

    # ----------------------------------------------------------------- gamma
    def _check_j(self, j: int) -> int:
        if not (0 <= j < self.p):
            raise ValueError(f"coefficient index j must be in 0..{self.p - 1}; got {j}")
        return j

    def _gamma_components(self, j: int) -> tuple[NDArray, NDArray]:
        j = self._check_j(j)
        return self.gamma_mean_nodes[:, j], np.sqrt(self.gamma_cov_nodes[:, j, j])

    def mean(self, j: int) -> float:
        """Posterior mean of gamma[j] (j=0 is the intercept mu)."""
        m, _ = self._gamma_components(j)
        return float(np.dot(self.tau_weights, m))

    def sd(self, j: int) -> float:
        """Posterior SD of gamma[j]."""
        m, s = self._gamma_components(j)
        mu = np.dot(self.tau_weights, m)
        return math.sqrt(float(np.dot(self.tau_weights, s**2 + (m - mu) ** 2)))

    def cdf(self, j: int, x: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior CDF of gamma[j] at ``x``."""
        m, s = self._gamma_components(j)
        xa = np.asarray(x, dtype=float)
        res = ndtr((xa[..., None] - m) / s) @ self.tau_weights
        return float(res) if res.ndim == 0 else res

    def quantile(self, j: int, q: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior quantile(s) of gamma[j] (root of the exact normal-mixture CDF)."""
        m, s = self._gamma_components(j)
        return _mixture_quantile(q, self.tau_weights, m, s)

    @property
    def mu_mean(self) -> float:
        """Posterior mean of the intercept mu = gamma[0]."""
        return self.mean(0)

    @property
    def mu_sd(self) -> float:
        """Posterior SD of the intercept mu = gamma[0]."""
        return self.sd(0)

    def mu_quantile(self, q: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior quantile(s) of the intercept mu = gamma[0]."""
        return self.quantile(0, q)

    # ----------------------------------------------------------------- theta_i (shrinkage)
    def _theta_components(self, i: int) -> tuple[NDArray, NDArray]:
        if not (0 <= i < self.k):
            raise ValueError(f"study index i must be in 0..{self.k - 1}; got {i}")
        x = self.X[i]
        se2 = self.se[i] ** 2
        t2 = self.tau_nodes**2
        b = t2 / (t2 + se2)  # weight of the study's own estimate
        lin_m = self.gamma_mean_nodes @ x
        lin_v = np.einsum("a,nab,b->n", x, self.gamma_cov_nodes, x)
        m = b * self.y[i] + (1.0 - b) * lin_m
        v = se2 * b + (1.0 - b) ** 2 * lin_v
        return m, np.sqrt(v)

    def theta_mean(self, i: int) -> float:
        """Posterior mean of the true effect theta_i of study i (shrinkage estimate)."""
        m, _ = self._theta_components(i)
        return float(np.dot(self.tau_weights, m))

    def theta_sd(self, i: int) -> float:
        """Posterior SD of theta_i."""
        m, s = self._theta_components(i)
        mu = np.dot(self.tau_weights, m)
        return math.sqrt(float(np.dot(self.tau_weights, s**2 + (m - mu) ** 2)))

    def theta_quantile(self, i: int, q: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior quantile(s) of theta_i."""
        m, s = self._theta_components(i)
        return _mixture_quantile(q, self.tau_weights, m, s)

    # ----------------------------------------------------------------- prediction
    def _predictive_components(self, x_new: ArrayLike) -> tuple[NDArray, NDArray]:
        x = np.atleast_1d(np.asarray(x_new, dtype=float))
        if x.shape != (self.p,) or not np.all(np.isfinite(x)):
            raise ValueError(
                f"x_new must be a finite vector of length p={self.p}; got {x.tolist()}"
            )
        m = self.gamma_mean_nodes @ x
        v = np.einsum("a,nab,b->n", x, self.gamma_cov_nodes, x) + self.tau_nodes**2
        return m, np.sqrt(v)

    def predictive_mean(self, x_new: ArrayLike) -> float:
        """Posterior predictive mean of theta_new = x_new' gamma + tau z for a new study."""
        m, _ = self._predictive_components(x_new)
        return float(np.dot(self.tau_weights, m))

    def predictive_sd(self, x_new: ArrayLike) -> float:
        """Posterior predictive SD of theta_new."""
        m, s = self._predictive_components(x_new)
        mu = np.dot(self.tau_weights, m)
        return math.sqrt(float(np.dot(self.tau_weights, s**2 + (m - mu) ** 2)))

    def predictive_quantile(self, x_new: ArrayLike, q: ArrayLike) -> float | NDArray[np.float64]:
        """Posterior predictive quantile(s) of theta_new."""
        m, s = self._predictive_components(x_new)
        return _mixture_quantile(q, self.tau_weights, m, s)

    def predictive_cdf(self, x_new: ArrayLike, x: float) -> float:
        """Posterior predictive CDF of theta_new at ``x``."""
        m, s = self._predictive_components(x_new)
        return _mixture_cdf(x, self.tau_weights, m, s)

    # ----------------------------------------------------------------- draws
    def draws(
        self, n: int, rng: np.random.Generator | int | None
    ) -> dict[str, NDArray[np.float64]]:
        """Exact independent draws from the joint posterior.

        tau by inverse CDF, then gamma | tau, y (multivariate normal) and theta | tau, gamma, y
        (independent normals). Returns ``{"tau": (n,), "mu": (n,), "theta": (n, k)}`` plus
        ``"beta": (n, p-1)`` when there are covariates.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer; got {n}")
        n = int(n)
        gen = np.random.default_rng(rng)
        tau = self._tau_inverse_cdf(gen.uniform(size=n))
        _, mean, cov = self._model.conditional(tau)
        chol = np.linalg.cholesky(cov)
        gamma = mean + np.einsum("nij,nj->ni", chol, gen.standard_normal((n, self.p)))
        se2 = self.se**2
        t2 = tau[:, None] ** 2
        b = t2 / (t2 + se2)
        centre = b * self.y + (1.0 - b) * (gamma @ self.X.T)
        theta = centre + np.sqrt(se2 * b) * gen.standard_normal((n, self.k))
        out = {"tau": tau, "mu": gamma[:, 0], "theta": theta}
        if self.p > 1:
            out["beta"] = gamma[:, 1:]
        return out
