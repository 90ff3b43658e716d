"""Exact (non-MCMC) posterior of the normal-normal random-effects meta-(regression) model.

Model, for studies ``i = 1..k`` with known standard errors ``se_i``::

    y_i   ~ Normal(theta_i, se_i^2)
    theta_i = x_i' gamma + tau * z_i,          z_i ~ Normal(0, 1)
    gamma ~ Normal(prior_mean, diag(prior_sd^2))   (gamma[0] = mu, gamma[1:] = beta)
    tau   ~ p(tau)                              (any density on tau > 0, given as a log-density)

so that marginally ``y ~ Normal(X gamma, diag(se^2 + tau^2))``.

This is computed the way the R package *bayesmeta* (Röver 2020, J. Stat. Softw. 93(6)) does it:
given ``tau`` the model is a conjugate Gaussian linear model, so ``gamma | tau, y`` is
multivariate normal and ``p(y | tau)`` is available in closed form. The only numerical
integral is the one-dimensional one over ``tau``; every other posterior quantity is an exact
normal mixture over the posterior of ``tau``.

The ``tau`` integral is done by composite Gauss-Legendre quadrature in ``s = log(tau)``:

* In ``s`` the integrand ``p(tau) p(y|tau) tau`` decays exponentially at both ends for every
  prior with a power-law (or lighter) tail and a power-law (or milder) behaviour at 0, so
  heavy tails (half-Cauchy) and mass piled up near 0 (half-normal with a tiny scale) are
  both smooth, well-resolved bumps on the ``s`` axis.
* The range is chosen adaptively from a coarse scan of ``s``: it is cut where the integrand
  (and ``tau^2`` times it, so that the first two moments are also captured) has fallen by
  ``exp(-40)`` relative to the peak. Ends of the prior's support (density ``-inf`` outside)
  are located to ~1e-12 in ``s`` and become exact quadrature end points.
* The panel width is halved until the normalising constant and the first two moments of
  ``s`` change by less than 1e-10 (relative), which for these analytic integrands means the
  final result is accurate to near machine precision.
* Mass far below the scan range (tau < 4e-18 * min(se), where ``p(y|tau)`` equals
  ``p(y|0)`` to machine precision) is lumped at ``tau = 0`` using the local power law of the
  prior there; mass beyond the upper end (only possible for extremely heavy tails) is added
  to the ``tau`` moments analytically from the local power law, or the moment is reported
  as ``inf`` if it does not exist.

Within each panel the integrand's degree-15 Legendre interpolant is integrated analytically,
which gives the CDF of ``tau`` (and hence quantiles and inverse-CDF draws) to the same
accuracy as the quadrature without any further prior evaluations.

Only numpy and scipy are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.polynomial import legendre as _leg
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import logsumexp, ndtr

__all__ = ["NormalNormalPosterior", "normal_normal"]

_LOG_2PI = math.log(2.0 * math.pi)

# Gauss-Legendre rule per panel and the matrix mapping node values to Legendre coefficients
# (exact for polynomials of degree <= 15 because the 16-point rule is exact to degree 31).
_GL_N = 16
_GL_X, _GL_W = _leg.leggauss(_GL_N)
_LEG_FROM_NODES = (
    (2.0 * np.arange(_GL_N) + 1.0)[:, None] / 2.0 * _leg.legvander(_GL_X, _GL_N - 1).T * _GL_W
)

_SCAN_STEP = 0.5  # coarse scan step in log(tau)
_LOG_DROP = 40.0  # integrand cut where it is exp(-40) below its peak
_FLOOR_EFOLDS = 40.0  # scan starts at min(se) * exp(-40)
_CAP_EFOLDS = 80.0  # scan ends at data scale * exp(80)
_INITIAL_PANEL = 0.5  # initial panel width in log(tau)
_RTOL = 1e-10  # convergence target of the panel-halving loop
_MAX_HALVINGS = 8
# A tau moment of order m is reported as inf unless the posterior tail exponent (measured at the
# end of the scan, where it is exact to rounding) exceeds m by this margin.
_TAIL_EXPONENT_MARGIN = 1e-6


TauLogPdf = Callable[[NDArray[np.float64]], ArrayLike]


@dataclass(frozen=True)
class _Model:
    """Data and Gaussian prior of the conjugate linear part, with the tau-conditional algebra."""

    y: NDArray[np.float64]
    se2: NDArray[np.float64]
    X: NDArray[np.float64]
    prior_mean: NDArray[np.float64]
    prior_prec: NDArray[np.float64]  # 0 where the prior is flat (prior_sd = inf)
    proper: NDArray[np.bool_]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def conditional(
        self, tau: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """For each tau: log p(y | tau), E[gamma | tau, y] (n, p) and Cov[gamma | tau, y] (n, p, p).

        Uses p(y|tau) = N(y; X m, V) * N(m; m0, S0) * (2 pi)^(p/2) |P|^(-1/2), with P the
        posterior precision and m the posterior mean of gamma given tau (exact identity for a
        Gaussian linear model; a flat prior component contributes density 1).
        """
        tau = np.asarray(tau, dtype=float)
        X, y, p = self.X, self.y, self.p
        v = self.se2[None, :] + tau[:, None] ** 2  # (n, k)
        w = 1.0 / v
        outer = (X[:, :, None] * X[:, None, :]).reshape(X.shape[0], p * p)
        prec = (w @ outer).reshape(-1, p, p) + np.diag(self.prior_prec)
        rhs = (w * y) @ X + self.prior_prec * self.prior_mean  # (n, p)
        try:
            chol = np.linalg.cholesky(prec)
        except np.linalg.LinAlgError as err:
            raise ValueError(
                "the posterior precision of gamma is singular: with a flat prior "
                "(prior_sd=inf) the columns of X must be linearly independent"
            ) from err
        cov = np.linalg.inv(prec)
        mean = np.einsum("nij,nj->ni", cov, rhs)
        resid = y[None, :] - mean @ X.T
        loglik = -0.5 * (len(y) * _LOG_2PI + np.log(v).sum(axis=1) + (w * resid**2).sum(axis=1))
        if self.proper.any():
            d = (mean - self.prior_mean)[:, self.proper]
            pp = self.prior_prec[self.proper]
            loglik += -0.5 * (
                self.proper.sum() * _LOG_2PI - np.log(pp).sum() + (pp * d**2).sum(axis=1)
            )
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        loglik += 0.5 * p * _LOG_2PI - 0.5 * logdet
        return loglik, mean, cov


def _as_1d(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    return arr


def _prior_vector(name: str, value: ArrayLike, p: int) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(p, float(arr))
    if arr.shape != (p,):
        raise ValueError(f"{name} must be a scalar or have length p={p}; got shape {arr.shape}")
    return arr


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


def _eval_log_integrand(
    s: NDArray[np.float64], model: _Model, tau_logpdf: TauLogPdf
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """log[p(tau) p(y|tau) tau] at tau = exp(s), plus the gamma-conditional moments."""
    tau = np.exp(s)
    lp = np.asarray(tau_logpdf(tau), dtype=float)
    try:
        lp = np.broadcast_to(lp, tau.shape)
    except ValueError as err:
        raise ValueError(
            f"tau_logpdf must return one value per tau; got shape {lp.shape} for {tau.shape}"
        ) from err
    if np.isnan(lp).any() or np.isposinf(lp).any():
        bad = tau[np.isnan(lp) | np.isposinf(lp)][:3]
        raise ValueError(f"tau_logpdf returned nan or +inf at tau={bad.tolist()}")
    ll, mean, cov = model.conditional(tau)
    return lp + ll + s, mean, cov


def _support_edge(
    s_in: float, s_out: float, model: _Model, tau_logpdf: TauLogPdf
) -> float:
    """Locate the end of the prior's support between s_in (finite) and s_out (-inf)."""
    for _ in range(8):  # 32^8 ~ 1e12 refinement of a 0.5-wide bracket
        grid = np.linspace(s_in, s_out, 33)
        lg, _, _ = _eval_log_integrand(grid, model, tau_logpdf)
        fin = np.isfinite(lg)
        last = int(np.argmin(fin)) - 1  # last finite point before the first -inf one
        s_in, s_out = grid[last], grid[last + 1]
    return float(s_in)


class _Quadrature(NamedTuple):
    """Composite Gauss-Legendre rule in s = log(tau) with the integrand evaluated on it."""

    edges: NDArray[np.float64]  # (P+1,) panel edges
    half: NDArray[np.float64]  # (P,) panel half-widths
    nodes: NDArray[np.float64]  # (P, 16) nodes in s
    log_integrand: NDArray[np.float64]  # (P*16,) log[p(tau) p(y|tau) tau]
    gamma_mean: NDArray[np.float64]  # (P*16, p)
    gamma_cov: NDArray[np.float64]  # (P*16, p, p)
    log_z: float  # log of the integral, including the lumped mass
    weights: NDArray[np.float64]  # (P*16,) normalised posterior weights of the nodes
    s_mean: float  # posterior mean of s (for the convergence check)
    s_sd: float  # posterior SD of s


def _gl_quadrature(
    s_lo: float,
    s_hi: float,
    n_panels: int,
    log_lump: float,
    model: _Model,
    tau_logpdf: TauLogPdf,
) -> _Quadrature:
    """Evaluate the tau integrand on n_panels equal Gauss-Legendre panels of [s_lo, s_hi]."""
    edges = np.linspace(s_lo, s_hi, n_panels + 1)
    half = 0.5 * np.diff(edges)
    nodes = (0.5 * (edges[1:] + edges[:-1]))[:, None] + half[:, None] * _GL_X
    s_flat = nodes.ravel()
    lg, mean, cov = _eval_log_integrand(s_flat, model, tau_logpdf)
    logw = lg + np.log(half[:, None] * _GL_W).ravel()
    log_z = float(logsumexp(np.append(logw, log_lump)))
    weights = np.exp(logw - log_z)
    s_mean = float(np.dot(weights, s_flat))
    s_sd = math.sqrt(max(float(np.dot(weights, (s_flat - s_mean) ** 2)), 0.0))
    return _Quadrature(edges, half, nodes, lg, mean, cov, log_z, weights, s_mean, s_sd)


def normal_normal(
    y: ArrayLike,
    se: ArrayLike,
    *,
    X: ArrayLike | None = None,
    prior_mean: ArrayLike = 0.0,
    prior_sd: ArrayLike = 1.0,
    tau_logpdf: TauLogPdf,
    tau_max: float | None = None,
    n_grid: int | None = None,
) -> NormalNormalPosterior:
    """Exact posterior of the normal-normal random-effects meta-analysis / meta-regression.

    Parameters
    ----------
    y, se
        Study estimates and their (known) standard errors, 1-D of equal length k >= 1.
    X
        (k, p) design matrix including the intercept column; default a column of ones
        (plain meta-analysis, gamma = (mu,)).
    prior_mean, prior_sd
        Independent normal priors on gamma; scalars or length-p arrays. ``prior_sd=np.inf``
        gives an (improper) flat prior on that coefficient, as in bayesmeta's default.
    tau_logpdf
        Vectorised callable mapping an array of tau > 0 to the log prior density
        (unnormalised is fine for the posterior; ``-inf`` outside the support). It must be
        smooth on its support, which must be an interval; it may be improper as long as the
        posterior is proper.
    tau_max
        Optional upper end of the tau integration; the prior is truncated there. Not needed
        for bounded priors (support ends are found automatically) but makes them exact.
    n_grid
        None (default): the number of quadrature nodes is chosen adaptively to a relative
        accuracy of ~1e-10. An integer forces (about) that many Gauss-Legendre nodes on
        the automatically chosen range, without the adaptive refinement.

    Returns
    -------
    NormalNormalPosterior
        Exact posterior summaries, CDFs, quantiles, predictive distribution, log p(y) and
        exact draws.

    Raises
    ------
    ValueError
        On malformed inputs, or when the posterior of tau is improper or too heavy-tailed
        (or has mass far below ``min(se) * exp(-40)``) to be integrated reliably.
    """
    y_arr = _as_1d("y", y)
    se_arr = _as_1d("se", se)
    k = len(y_arr)
    if k == 0:
        raise ValueError("y must contain at least one study")
    if len(se_arr) != k:
        raise ValueError(f"y and se must have the same length; got {k} and {len(se_arr)}")
    if np.any(se_arr <= 0):
        raise ValueError(f"se must be > 0; got {se_arr.tolist()}")
    if X is None:
        X_arr = np.ones((k, 1))
    else:
        X_arr = np.asarray(X, dtype=float)
        if X_arr.ndim == 1:
            X_arr = X_arr[:, None]
        if X_arr.ndim != 2 or X_arr.shape[0] != k or X_arr.shape[1] < 1:
            raise ValueError(f"X must have shape (k={k}, p); got {X_arr.shape}")
        if not np.all(np.isfinite(X_arr)):
            raise ValueError("X must be finite")
    p = X_arr.shape[1]
    m0 = _prior_vector("prior_mean", prior_mean, p)
    s0 = _prior_vector("prior_sd", prior_sd, p)
    if not np.all(np.isfinite(m0)):
        raise ValueError(f"prior_mean must be finite; got {m0.tolist()}")
    if np.any(np.isnan(s0)) or np.any(s0 <= 0):
        raise ValueError(f"prior_sd must be > 0 (inf for a flat prior); got {s0.tolist()}")
    if not callable(tau_logpdf):
        raise ValueError("tau_logpdf must be a callable tau -> log prior density")
    if tau_max is not None and not (math.isfinite(tau_max) and tau_max > 0):
        raise ValueError(f"tau_max must be a positive finite number; got {tau_max}")
    if n_grid is not None and (int(n_grid) != n_grid or n_grid < _GL_N):
        raise ValueError(f"n_grid must be an integer >= {_GL_N}; got {n_grid}")

    proper = np.isfinite(s0)
    prec0 = np.where(proper, 1.0 / np.where(proper, s0, 1.0) ** 2, 0.0)
    model = _Model(y_arr, se_arr**2, X_arr, m0, prec0, proper)

    # ---- coarse scan of log(tau) ------------------------------------------------
    floor = math.log(se_arr.min()) - _FLOOR_EFOLDS
    scale_hi = max(se_arr.max(), float(np.ptp(y_arr)))
    cap = math.log(scale_hi) + _CAP_EFOLDS
    hard_cap = tau_max is not None
    if hard_cap:
        cap = math.log(tau_max)
        floor = min(floor, cap - _FLOOR_EFOLDS)
    n_scan = int(math.ceil((cap - floor) / _SCAN_STEP)) + 1
    scan = np.linspace(floor, cap, n_scan)
    step = scan[1] - scan[0]
    lg, _, _ = _eval_log_integrand(scan, model, tau_logpdf)
    finite = np.isfinite(lg)
    if not finite.any():
        raise ValueError(
            f"tau_logpdf is -inf on the whole range tau in [{math.exp(floor):.3g}, "
            f"{math.exp(cap):.3g}]"
        )
    i0 = int(np.argmax(finite))
    i1 = n_scan - 1 - int(np.argmax(finite[::-1]))
    if not finite[i0 : i1 + 1].all():
        raise ValueError(
            "the support of the tau prior (where tau_logpdf > -inf) must be an interval"
        )
    peak = int(np.argmax(np.where(finite, lg, -np.inf)))
    top = lg[peak]

    # lower end
    lump_slope = 1.0
    lump_at_floor = False
    if i0 > 0:
        s_lo = _support_edge(scan[i0], scan[i0 - 1], model, tau_logpdf)
    else:
        first = int(np.argmax(lg >= top - _LOG_DROP))
        if first > 0:
            s_lo = scan[first - 1]
        else:
            s_lo = floor
            lump_slope = (lg[1] - lg[0]) / step
            if not lump_slope > 0:
                raise ValueError(
                    "the posterior of tau has non-negligible mass below "
                    f"tau={math.exp(floor):.3g} and the prior density does not decay there "
                    "like an integrable power law"
                )
            lump_at_floor = True

    # upper end
    tail_exponent: float | None = None  # set when the scan ends before tau^2 * integrand decays
    if i1 < n_scan - 1:
        s_hi = _support_edge(scan[i1], scan[i1 + 1], model, tau_logpdf)
    elif hard_cap:
        s_hi = cap
    else:
        crit = lg + 2.0 * np.maximum(scan - scan[peak], 0.0)
        last = n_scan - 1 - int(np.argmax((crit >= top - _LOG_DROP)[::-1]))
        if last < n_scan - 1:
            s_hi = scan[last + 1]
        else:
            s_hi = cap
            if lg[-1] >= top - _LOG_DROP:
                raise ValueError(
                    "the posterior of tau is improper or too heavy-tailed to integrate "
                    f"(still non-negligible at tau={math.exp(cap):.3g})"
                )
            # local power-law exponent of the integrand in s, for the moments' tails
            tail_exponent = float(-(lg[-1] - lg[-2]) / step)
    if not s_hi > s_lo:
        raise ValueError("the support of the tau prior is too narrow to integrate over")

    # ---- composite Gauss-Legendre in log(tau), refined until converged ------------
    log_lump = (lg[0] - math.log(lump_slope)) if lump_at_floor else -math.inf
    n_panels = max(2, int(math.ceil((s_hi - s_lo) / _INITIAL_PANEL)))
    if n_grid is not None:
        n_fixed = max(1, math.ceil(n_grid / _GL_N))
        quad = _gl_quadrature(s_lo, s_hi, n_fixed, log_lump, model, tau_logpdf)
    else:
        quad = _gl_quadrature(s_lo, s_hi, n_panels, log_lump, model, tau_logpdf)
        for _ in range(_MAX_HALVINGS):
            n_panels *= 2
            finer = _gl_quadrature(s_lo, s_hi, n_panels, log_lump, model, tau_logpdf)
            spread = max(finer.s_sd, 1e-300)
            change = max(
                abs(math.expm1(finer.log_z - quad.log_z)),
                abs(finer.s_mean - quad.s_mean) / spread,
                abs(finer.s_sd - quad.s_sd) / spread,
            )
            quad = finer
            if change < _RTOL:
                break
        else:
            raise RuntimeError(
                "tau quadrature did not converge; the posterior of tau may be too sharply "
                "peaked or the prior density not smooth on its support"
            )
    edges, half, nodes, lg_nodes = quad.edges, quad.half, quad.nodes, quad.log_integrand
    mean, cov, log_z, weights = quad.gamma_mean, quad.gamma_cov, quad.log_z, quad.weights

    lump = math.exp(log_lump - log_z) if lump_at_floor else 0.0
    tail = (0.0, 0.0)
    if tail_exponent is not None:
        # integral over s > s_hi of tau^m * integrand, with integrand ~ exp(-c (s - s_hi))
        base = lg[-1] - log_z
        tail = tuple(
            math.exp(base + m * s_hi) / (tail_exponent - m)
            if tail_exponent > m + _TAIL_EXPONENT_MARGIN
            else math.inf
            for m in (1, 2)
        )

    # per-panel Legendre series of the normalised integrand in u in [-1, 1], integrated from -1
    vals = (np.exp(lg_nodes - log_z).reshape(nodes.shape) * half[:, None]).T  # (16, P)
    coef = _LEG_FROM_NODES @ vals
    cdf_coef = _leg.legint(coef, lbnd=-1, axis=0)  # (17, P)
    panel_mass = weights.reshape(nodes.shape).sum(axis=1)
    cum = lump + np.concatenate([[0.0], np.cumsum(panel_mass)])

    tau_nodes = np.exp(nodes.ravel())
    gamma_mean = mean
    gamma_cov = cov
    if lump_at_floor:
        _, mean0, cov0 = model.conditional(np.zeros(1))
        tau_nodes = np.concatenate([[0.0], tau_nodes])
        weights = np.concatenate([[lump], weights])
        gamma_mean = np.concatenate([mean0, gamma_mean])
        gamma_cov = np.concatenate([cov0, gamma_cov])

    return NormalNormalPosterior(
        y=y_arr,
        se=se_arr,
        X=X_arr,
        tau_nodes=tau_nodes,
        tau_weights=weights,
        gamma_mean_nodes=gamma_mean,
        gamma_cov_nodes=gamma_cov,
        log_marginal_likelihood=log_z,
        _model=model,
        _tau_logpdf=tau_logpdf,
        _tau_max=tau_max,
        _lump=lump,
        _lump_slope=float(lump_slope),
        _edges=edges,
        _cum=cum,
        _cdf_coef=cdf_coef,
        _tau_moment_tail=tail,
    )
