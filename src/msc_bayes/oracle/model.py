"""The conjugate part of the normal-normal model: given tau, gamma | tau, y is normal and
p(y | tau) is closed form (:class:`_Model`); :func:`model_from_inputs` checks the inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

_LOG_2PI = math.log(2.0 * math.pi)

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
    se: NDArray[np.float64]  # the standard errors as given (se2 = se**2)

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


def model_from_inputs(y: ArrayLike, se: ArrayLike, X: ArrayLike | None, prior_mean: ArrayLike, prior_sd: ArrayLike,
                      tau_logpdf: TauLogPdf) -> _Model:
    """Validation: the data, design and gamma prior checked (ValueError naming what is wrong) and
    turned into the conjugate model."""
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
    proper = np.isfinite(s0)
    prec0 = np.where(proper, 1.0 / np.where(proper, s0, 1.0) ** 2, 0.0)
    return _Model(y_arr, se_arr**2, X_arr, m0, prec0, proper, se_arr)
