"""The integral over tau of the normal-normal model (:func:`normal_normal`), in named steps:
validation (:func:`~msc_bayes.oracle.model.model_from_inputs`), range scan
(:func:`_scan_range`), quadrature refinement (:func:`_refine`), tails (:func:`_moment_tails`)
and the CDF series (:func:`_cdf_series`). The method is described in :mod:`msc_bayes.oracle`."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.polynomial import legendre as _leg
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from msc_bayes.oracle.model import TauLogPdf, _Model, model_from_inputs
from msc_bayes.oracle.posterior import NormalNormalPosterior

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


class _Range(NamedTuple):
    """The integration range in s = log(tau) found by the coarse scan."""

    scan: NDArray[np.float64]  # the scan grid in s
    lg: NDArray[np.float64]  # log integrand on it
    s_lo: float
    s_hi: float
    lump_slope: float  # local power of the prior below s_lo (mass lumped at tau = 0)
    lump_at_floor: bool  # whether mass below the scan is lumped at tau = 0
    tail_exponent: float | None  # set when the scan ends before tau^2 * integrand decays


def _scan_range(model: _Model, tau_logpdf: TauLogPdf, tau_max: float | None) -> _Range:
    """Range scan: a coarse scan of log(tau), cut where the integrand (and tau^2 times it) is
    exp(-40) below its peak or at the ends of the prior's support."""
    se_arr, y_arr = model.se, model.y
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
    tail_exponent: float | None = None
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
    return _Range(scan, lg, s_lo, s_hi, lump_slope, lump_at_floor, tail_exponent)


def _refine(rng: _Range, log_lump: float, n_grid: int | None, model: _Model, tau_logpdf: TauLogPdf) -> _Quadrature:
    """Quadrature refinement: composite Gauss-Legendre in log(tau), panels halved until the
    normalising constant and the mean and SD of s change by less than 1e-10 (or the fixed
    `n_grid` nodes)."""
    s_lo, s_hi = rng.s_lo, rng.s_hi
    n_panels = max(2, int(math.ceil((s_hi - s_lo) / _INITIAL_PANEL)))
    if n_grid is not None:
        n_fixed = max(1, math.ceil(n_grid / _GL_N))
        return _gl_quadrature(s_lo, s_hi, n_fixed, log_lump, model, tau_logpdf)
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
            return quad
    raise RuntimeError(
        "tau quadrature did not converge; the posterior of tau may be too sharply "
        "peaked or the prior density not smooth on its support"
    )


def _moment_tails(rng: _Range, log_z: float) -> tuple[float, float]:
    """Tails: the first two tau moments' mass beyond the scan (local power law), or inf where
    the moment does not exist; (0, 0) when the integrand decays inside the range."""
    if rng.tail_exponent is None:
        return (0.0, 0.0)
    # integral over s > s_hi of tau^m * integrand, with integrand ~ exp(-c (s - s_hi))
    base = rng.lg[-1] - log_z
    return tuple(
        math.exp(base + m * rng.s_hi) / (rng.tail_exponent - m)
        if rng.tail_exponent > m + _TAIL_EXPONENT_MARGIN
        else math.inf
        for m in (1, 2)
    )


def _cdf_series(quad: _Quadrature, lump: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """CDF: per-panel Legendre series (17, P) of the normalised integrand in u in [-1, 1],
    integrated from -1, and the cumulative mass at each panel edge (lumped mass included)."""
    vals = (np.exp(quad.log_integrand - quad.log_z).reshape(quad.nodes.shape) * quad.half[:, None]).T  # (16, P)
    coef = _LEG_FROM_NODES @ vals
    cdf_coef = _leg.legint(coef, lbnd=-1, axis=0)  # (17, P)
    panel_mass = quad.weights.reshape(quad.nodes.shape).sum(axis=1)
    cum = lump + np.concatenate([[0.0], np.cumsum(panel_mass)])
    return cdf_coef, cum


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
    model = model_from_inputs(y, se, X, prior_mean, prior_sd, tau_logpdf)
    if tau_max is not None and not (math.isfinite(tau_max) and tau_max > 0):
        raise ValueError(f"tau_max must be a positive finite number; got {tau_max}")
    if n_grid is not None and (int(n_grid) != n_grid or n_grid < _GL_N):
        raise ValueError(f"n_grid must be an integer >= {_GL_N}; got {n_grid}")

    rng = _scan_range(model, tau_logpdf, tau_max)
    log_lump = (rng.lg[0] - math.log(rng.lump_slope)) if rng.lump_at_floor else -math.inf
    quad = _refine(rng, log_lump, n_grid, model, tau_logpdf)
    lump = math.exp(log_lump - quad.log_z) if rng.lump_at_floor else 0.0
    tail = _moment_tails(rng, quad.log_z)
    cdf_coef, cum = _cdf_series(quad, lump)

    tau_nodes = np.exp(quad.nodes.ravel())
    weights, gamma_mean, gamma_cov = quad.weights, quad.gamma_mean, quad.gamma_cov
    if rng.lump_at_floor:
        _, mean0, cov0 = model.conditional(np.zeros(1))
        tau_nodes = np.concatenate([[0.0], tau_nodes])
        weights = np.concatenate([[lump], weights])
        gamma_mean = np.concatenate([mean0, gamma_mean])
        gamma_cov = np.concatenate([cov0, gamma_cov])

    return NormalNormalPosterior(
        y=model.y,
        se=model.se,
        X=model.X,
        tau_nodes=tau_nodes,
        tau_weights=weights,
        gamma_mean_nodes=gamma_mean,
        gamma_cov_nodes=gamma_cov,
        log_marginal_likelihood=quad.log_z,
        _model=model,
        _tau_logpdf=tau_logpdf,
        _tau_max=tau_max,
        _lump=lump,
        _lump_slope=float(rng.lump_slope),
        _edges=quad.edges,
        _cum=cum,
        _cdf_coef=cdf_coef,
        _tau_moment_tail=tail,
    )
