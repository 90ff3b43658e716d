"""Exact (non-MCMC) posterior of the normal-normal random-effects meta-(regression) model.

- :mod:`.model`: the conjugate Gaussian linear part given tau, and checking the inputs.
- :mod:`.quadrature`: :func:`normal_normal`, the integral over tau in steps (range scan,
  quadrature refinement, tails, CDF series).
- :mod:`.posterior`: :class:`NormalNormalPosterior`, every summary as an exact normal mixture.

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

from msc_bayes.oracle.posterior import NormalNormalPosterior
from msc_bayes.oracle.quadrature import normal_normal

__all__ = ["NormalNormalPosterior", "normal_normal"]
