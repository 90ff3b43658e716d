"""Heterogeneity of a fit: tau, a Bayesian I² per draw, and a row's prediction interval for a new study.

I² per draw is tau² / (tau² + s²) with s² the typical within-study variance of Higgins & Thompson
(2002, Stat. Med. 21:1539, eq. 9), s² = (k − 1) Σw / ((Σw)² − Σw²), w_i = 1 / v_i, over the k modelled
units (arms; left-out studies' units dropped), computed per draw from each unit's within-unit variance
v_i on the scale of tau:

- EDSS change (mean change per arm, tau in EDSS points): v = the variance of the arm's mean change,
  se² from the reported SD, SE or CI for an arm entering through ``change`` (data); else sigma²/n with the
  arm's within-arm SD of change: sigma² = sd_b² + sd_f² − 2 rho sd_b sd_f for a ``baseline_followup`` arm
  (dim ``arm_bf``), exp(sigma_mu + sigma_tau · sigma_offset) for an arm with its own modelled SD (dim
  ``arm_sd``: counts, patient values, means only), the typical exp(sigma_mu) for any other; the
  variance inflation of arms that share patients is not included;
- events (logit risk per arm, tau on the logit scale): the binomial variance of a logit, v = 1 / (n p (1 − p)),
  at the draw's arm risk p = ``risk_arm`` (the same formula for the few units that report only an event
  count, n then the periods at risk);
- event rates (log rate per unit of exposure, tau on the log scale): the Poisson variance of a log rate,
  v = 1 / (E exp(theta)), at the draw's expected events ``expected_events``.

With one unit s² is that unit's variance. The prediction interval of a row is the interval of its
``prediction`` cell (a new study's value: EDSS ``theta_new``, events ``risk_new`` / ``risk_new_event[...]``).
``msc_effect`` and the covariate effects are common to every study in these models (no study-level
heterogeneity of the effect is modelled), so they have no prediction of their own: None.
"""

from __future__ import annotations

import numpy as np

from msc_bayes import results
from msc_bayes.findings.base import Interval


def interval(x: np.ndarray) -> Interval:
    """The posterior median and 95% ETI of draws `x` (any shape; flattened)."""
    median, lower, upper = results.median_interval(np.asarray(x, dtype=float).ravel())
    return Interval(float(median), float(lower), float(upper))


def typical_variance(v: np.ndarray) -> np.ndarray:
    """Higgins & Thompson's typical within-study variance over the last axis of `v` (units), per draw."""
    w = 1.0 / np.asarray(v, dtype=float)
    k = w.shape[-1]
    if k == 1:
        return 1.0 / w[..., 0]
    sw = w.sum(axis=-1)
    return (k - 1) * sw / (sw**2 - (w**2).sum(axis=-1))


def tau_interval(fit) -> Interval | None:
    """The between-study SD tau (the outcome's model scale), or None when the fit has no tau."""
    return interval(results.draws(fit, "tau")) if results.has(fit, "tau") else None


def _kept(fit) -> np.ndarray:
    """Which prepared units enter the likelihood (units of studies the fit left out do not)."""
    units = fit.prepared.units
    out = set(results.attr_json(fit, "excluded_studies", []))
    return ~units["study"].isin(out).to_numpy()


def _edss_variances(fit) -> np.ndarray:
    """(draws, units) variance of each arm's mean change (module docstring)."""
    from msc_bayes.outcomes.edss.formats.change import change_mean_se

    units = fit.prepared.units
    labels = list(units["label"])
    n = units["n"].to_numpy(dtype=float)
    typical = np.exp(2 * results.draws(fit, "sigma_mu")) if results.has(fit, "sigma_mu") else None
    columns = []
    bf = list(results.variable(fit, "sd_baseline")["arm_bf"].values) if results.has(fit, "sd_baseline") else []
    own = list(results.variable(fit, "sigma_offset")["arm_sd"].values) if results.has(fit, "sigma_offset") else []
    for i, (label, formats) in enumerate(zip(labels, units["formats"])):
        if "change" in formats:
            _, se = change_mean_se(units.iloc[[i]])
            columns.append(np.full(len(results.draws(fit, "tau")), se[0] ** 2))
        elif label in bf:
            j = bf.index(label)
            sb, sf = results.draws(fit, "sd_baseline")[:, j], results.draws(fit, "sd_followup")[:, j]
            columns.append((sb**2 + sf**2 - 2 * results.draws(fit, "rho") * sb * sf) / n[i])
        elif label in own:
            log_sd = results.draws(fit, "sigma_mu") + results.draws(fit, "sigma_tau") * results.draws(
                fit, "sigma_offset")[:, own.index(label)]
            columns.append(np.exp(2 * log_sd) / n[i])
        elif typical is not None:
            columns.append(typical / n[i])
        else:
            raise ValueError(f"no within-arm SD for {label!r}: the fit has no sigma_mu")
    return np.column_stack(columns)


def _event_variances(fit) -> np.ndarray:
    """(draws, units) binomial variance of each unit's logit risk at the draw's risk."""
    p = results.draws(fit, "risk_arm")
    n = fit.prepared.units["n"].to_numpy(dtype=float)
    return 1.0 / (n * p * (1.0 - p))


def within_variances(fit) -> np.ndarray:
    """(draws, kept units) within-unit variances on the scale of tau (module docstring)."""
    if results.has(fit, "expected_events"):  # event rates: a Poisson log rate's variance, 1 / expected events
        v = 1.0 / results.draws(fit, "expected_events")
    elif fit.spec.outcome == "effect_size":  # a known SE², or sigma² / n of an arm reported with SD and n
        from msc_bayes.outcomes.effect_size.checks import unit_variances

        v = unit_variances(fit)
    else:
        v = _event_variances(fit) if results.has(fit, "risk_arm") else _edss_variances(fit)
    return v[:, _kept(fit)]


def i2_draws(fit) -> np.ndarray | None:
    """Bayesian I² per draw, tau² / (tau² + s²) (module docstring); None without tau."""
    if not results.has(fit, "tau"):
        return None
    tau2 = results.draws(fit, "tau") ** 2
    return tau2 / (tau2 + typical_variance(within_variances(fit)))


def i2_interval(fit) -> Interval | None:
    """The median and 95% ETI of I² (a proportion, 0-1), or None without tau."""
    x = i2_draws(fit)
    return None if x is None else interval(x)


def cell_draws(fit, cell: str) -> np.ndarray | None:
    """(chain, draw) draws of a scalar cell (``mu``, ``risk_new_event[serious_ae]``), None if the fit lacks it."""
    name = cell.split("[", 1)[0]
    if not results.has(fit, name):
        return None
    return results.cells(fit, name).get(cell)


def prediction_interval(fit, row) -> Interval | None:
    """The interval of the row's ``prediction`` cell (× the row's multiplier), or None where none is defined."""
    if not row.prediction:
        return None
    x = cell_draws(fit, row.prediction)
    return None if x is None else interval(row.multiplier * x if row.scale == "num" else x)
