"""How far a fit can be trusted: sampler convergence and agreement with the observed data.

- :func:`convergence`: rank-normalised split R-hat, bulk/tail ESS and MCSE (mean, SD and
  both ends of the interval) for every reported scalar quantity (posterior and derived,
  non-centred ``*_offset`` / ``*_latent`` plumbing left out), plus the sampler's own
  statistics (divergences, maximum tree depth hits, E-BFMI per chain). The gate is
  :data:`RHAT_MAX`, :data:`ESS_BULK_MIN`, :data:`ESS_TAIL_MIN` and :data:`MAX_DIVERGENCES`;
  tree depth and E-BFMI are reported as warnings.
- :func:`study_estimates`: per modelled unit, the estimate the unit's reporting format
  gives (where it gives one) beside its shrunken (partially pooled) posterior.
- :func:`predictive_checks`: posterior predictive replicates, simulated in numpy from the
  draws, of each reported number that a format makes cheap to simulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from msc_bayes.results import (
    group,
    interval_columns,
    interval_text,
    quantile_probs,
    quantity_summary,
)

#: Gate: rank-normalised split R-hat at most this.
RHAT_MAX = 1.01
#: Gate: bulk effective sample size at least this.
ESS_BULK_MIN = 400
#: Gate: tail effective sample size (5% and 95% quantiles) at least this.
ESS_TAIL_MIN = 400
#: Gate: divergent transitions allowed after warm-up.
MAX_DIVERGENCES = 0
#: Warning (not gated): E-BFMI below this in a chain suggests poor exploration of the energy.
EBFMI_MIN = 0.3
_SAMPLE_DIMS = ["chain", "draw"]


# --------------------------------------------------------------------------------------
# Convergence
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Convergence:
    """The verdict of the gate on one fit; ``reasons`` lists why it failed (empty = passed)."""

    table: pd.DataFrame  # one row per scalar quantity
    draws: int  # post-warm-up draws, all chains
    divergences: int
    treedepth_hits: int
    ebfmi: tuple[float, ...]  # per chain
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        checked = self.table[~self.table["constant"]]
        return {
            "passed": self.passed, "reasons": list(self.reasons), "warnings": list(self.warnings),
            "draws": self.draws, "divergences": self.divergences, "treedepth_hits": self.treedepth_hits,
            "ebfmi": [round(float(e), 4) for e in self.ebfmi],
            "max_r_hat": _finite_or_none(checked["r_hat"].max()),
            "min_ess_bulk": _finite_or_none(checked["ess_bulk"].min()),
            "min_ess_tail": _finite_or_none(checked["ess_tail"].min()),
            "thresholds": thresholds(),
        }


def thresholds() -> dict:
    return {"r_hat_max": RHAT_MAX, "ess_bulk_min": ESS_BULK_MIN, "ess_tail_min": ESS_TAIL_MIN,
            "max_divergences": MAX_DIVERGENCES, "ebfmi_min": EBFMI_MIN}


def _finite_or_none(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


#: Columns of :func:`quantity_table` (the report's ``<key>_diagnostics.csv``), in order.
QUANTITY_TABLE_COLUMNS = ("group", "quantity", "constant", "r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd",
                          *interval_columns("mcse_"))


def quantity_table(fit) -> pd.DataFrame:
    """R-hat, bulk/tail ESS and MCSE (mean, SD, interval ends) of every reported scalar quantity
    (a fit or its DataTree): :data:`QUANTITY_TABLE_COLUMNS` of :func:`msc_bayes.results.quantity_summary`."""
    return quantity_summary(fit)[list(QUANTITY_TABLE_COLUMNS)]


def sampler_stats(fit) -> tuple[int, int, int, tuple[float, ...]]:
    """(draws, divergences, tree depth hits, E-BFMI per chain) from the sample_stats group of a fit or DataTree."""
    import arviz as az

    ss = group(fit, "sample_stats")
    draws = int(ss.sizes["chain"] * ss.sizes["draw"])
    divergences = int(ss["diverging"].sum()) if "diverging" in ss else 0
    hits = int(ss["maxdepth_reached"].sum()) if "maxdepth_reached" in ss else 0
    ebfmi: tuple[float, ...] = ()
    if "energy" in ss:
        values = az.bfmi(ss[["energy"]], sample_dims=_SAMPLE_DIMS)["energy"].values
        ebfmi = tuple(float(x) for x in np.atleast_1d(values))
    return draws, divergences, hits, ebfmi


def convergence(fit) -> Convergence:
    """Diagnose a fit (anything with a ``.tree`` DataTree) against the gate."""
    table = quantity_table(fit)
    draws, divergences, hits, ebfmi = sampler_stats(fit)
    checked = table[~table["constant"]]
    reasons = []
    bad = checked[~(checked["r_hat"] <= RHAT_MAX)]  # NaN R-hat of a varying quantity fails too
    if len(bad):
        worst = bad.sort_values("r_hat", na_position="first").iloc[-1]
        reasons.append(f"R-hat above {RHAT_MAX:g} for {len(bad)} quantit{'y' if len(bad) == 1 else 'ies'} "
                       f"(worst: {worst['quantity']} {worst['r_hat']:.3f})")
    for col, minimum, what in (("ess_bulk", ESS_BULK_MIN, "bulk"), ("ess_tail", ESS_TAIL_MIN, "tail")):
        bad = checked[~(checked[col] >= minimum)]
        if len(bad):
            worst = bad.sort_values(col, na_position="first").iloc[0]
            reasons.append(f"{what} ESS below {minimum:g} for {len(bad)} quantit{'y' if len(bad) == 1 else 'ies'} "
                           f"(lowest: {worst['quantity']} {worst[col]:.0f})")
    if divergences > MAX_DIVERGENCES:
        reasons.append(f"{divergences} divergent transition{'s' if divergences != 1 else ''} (of {draws} draws)")
    warnings = []
    if hits:
        warnings.append(f"{hits} transition{'s' if hits != 1 else ''} hit the maximum tree depth (of {draws} draws)")
    low = [(i, e) for i, e in enumerate(ebfmi) if not e >= EBFMI_MIN]
    if low:
        warnings.append(f"E-BFMI below {EBFMI_MIN:g} in chain(s) " + ", ".join(f"{i} ({e:.2f})" for i, e in low))
    return Convergence(table, draws, divergences, hits, ebfmi, tuple(reasons), tuple(warnings))


# --------------------------------------------------------------------------------------
# Observed vs shrunken estimates
# --------------------------------------------------------------------------------------


def draws_flat(ds: xr.Dataset | xr.DataTree, name: str, dim: str | None = None) -> np.ndarray:
    """(samples,) or (samples, len(dim)) array of a variable, chains stacked."""
    da = ds[name]
    extra = [d for d in da.dims if d not in _SAMPLE_DIMS]
    da = da.transpose(*_SAMPLE_DIMS, *extra)
    return da.values.reshape(da.sizes["chain"] * da.sizes["draw"], *[da.sizes[d] for d in extra])


def _summarise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = quantile_probs()
    q = np.quantile(x, [0.5, lo, hi], axis=0)
    return q[0], q[1], q[2]


def _shrunken_name(tree: xr.DataTree) -> tuple[str, str]:
    """(group, variable) of the per-unit estimate on the reporting scale."""
    if "derived" in tree.children and "risk_arm" in tree["derived"].data_vars:
        return "derived", "risk_arm"
    return "posterior", "theta"


def observed_estimates(fit, *, evidence=None) -> pd.DataFrame:
    """Per unit: the estimate its format gives, with its interval where the format gives one.

    Columns: label, observed, observed_lower, observed_upper, observed_from. EDSS: mean change
    +- 1.96 SE (format ``change``); follow-up minus baseline mean (``baseline_followup``,
    ``means_only``; no interval: the SD of change is unknown); mean of patient changes +- 1.96
    SE (``patient``, when ``evidence`` is given); none for ``counts``. Event outcomes: y/n with
    a Jeffreys interval (binomial units), 1 - exp(-events/n) (Poisson units: the risk implied
    by the event rate, Jeffreys interval on the rate).
    """
    units = fit.prepared.units
    if "likelihood" in units.columns:
        rows = [_observed_risk(r) for r in units.itertuples(index=False)]
    elif "formats" in units.columns:
        patients = _patient_changes(fit, evidence)
        rows = [_observed_change(r, patients) for r in units.itertuples(index=False)]
    else:
        rows = [(np.nan, np.nan, np.nan, "") for _ in range(len(units))]
    out = pd.DataFrame(rows, columns=["observed", "observed_lower", "observed_upper", "observed_from"])
    out.insert(0, "label", list(units["label"]))
    return out


def _observed_risk(r) -> tuple[float, float, float, str]:
    lo, hi = quantile_probs()
    n = float(r.n)
    if r.likelihood == "binomial":
        y = float(r.patients_with_event)
        a, b = y + 0.5, n - y + 0.5
        return y / n, float(stats.beta.ppf(lo, a, b)), float(stats.beta.ppf(hi, a, b)), \
            f"{y:g}/{n:g} patients (Jeffreys {interval_text().split()[0]} interval)"
    k = float(r.events)
    rate_lo, rate_hi = stats.gamma.ppf([lo, hi], k + 0.5, scale=1 / n)
    risk = lambda rate: float(-np.expm1(-rate))  # noqa: E731
    return risk(k / n), risk(rate_lo), risk(rate_hi), f"{k:g} events in {n:g} patients (risk 1 - exp(-events/n))"


def _observed_change(r, patients: pd.DataFrame | None) -> tuple[float, float, float, str]:
    from msc_bayes.edss import _change_mean_se

    z = stats.norm.ppf(quantile_probs()[1])
    for fmt in r.formats:
        if fmt == "change":
            y, se = _change_mean_se(pd.DataFrame([r._asdict()]))
            return float(y[0]), float(y[0] - z * se[0]), float(y[0] + z * se[0]), f"mean change ± {z:.2f} SE"
        if fmt in ("baseline_followup", "means_only"):
            direct = fmt == "means_only" and pd.notna(r.change_mean)
            return float(_reported_mean(r, fmt)), np.nan, np.nan, \
                "mean change" if direct else "follow-up minus baseline mean"
        if fmt == "patient" and patients is not None:
            d = _unit_patients(patients, r)
            if len(d):
                se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
                return float(d.mean()), float(d.mean() - z * se), float(d.mean() + z * se), \
                    f"mean of {len(d)} patient changes ± {z:.2f} SE"
    return np.nan, np.nan, np.nan, "counts only (no mean reported)" if "counts" in r.formats else ""


def _reported_mean(r, fmt: str) -> float:
    """The mean change a baseline_followup / means_only row reports (as edss.build reads it)."""
    return r.change_mean if fmt == "means_only" and pd.notna(r.change_mean) else r.followup_mean - r.baseline_mean


def _patient_changes(fit, evidence) -> pd.DataFrame | None:
    if evidence is None:
        return None
    from msc_bayes.edss import patient_changes

    ev = evidence.without_secondary() if fit.spec.options.get("exclude_secondary") else evidence
    return patient_changes(ev.patients)


def _unit_patients(patients: pd.DataFrame, r) -> np.ndarray:
    sel = ((patients["study"] == r.study) & (patients["arm"] == r.arm)
           & (patients["timepoint_months"] == r.timepoint_months))
    return patients.loc[sel, "change"].to_numpy(dtype=float)


def study_estimates(fit, *, evidence=None) -> pd.DataFrame:
    """Per unit: study, arm, group, n, what was used, the observed estimate, and the shrunken estimate."""
    units = fit.prepared.units
    group, name = _shrunken_name(fit.tree)
    x = draws_flat(fit.tree[group], name)
    med, lo, hi = _summarise(x)
    lo_name, hi_name = interval_columns()
    used = (units["formats"].map(lambda f: "+".join(f)) if "formats" in units.columns
            else units["likelihood"] if "likelihood" in units.columns else "")
    out = pd.DataFrame({
        "label": list(units["label"]), "study": list(units["study"]), "arm": list(units["arm"]),
        "group": list(units["group"].fillna("msc")) if "group" in units.columns else "msc",
        "n": list(units["n"]), "used": list(used),
    })
    obs = observed_estimates(fit, evidence=evidence)
    out = pd.concat([out, obs.drop(columns="label")], axis=1)
    out["shrunken_quantity"] = name
    out["shrunken_median"], out[f"shrunken_{lo_name}"], out[f"shrunken_{hi_name}"] = med, lo, hi
    return out


# --------------------------------------------------------------------------------------
# Posterior predictive checks
# --------------------------------------------------------------------------------------

_PPC_COLUMNS = ["check", "label", "statistic", "observed", "replicate_median", *interval_columns("replicate_"),
                "p_replicate_ge_observed"]


def predictive_checks(fit, *, evidence=None, seed: int | None = None) -> pd.DataFrame:
    """Observed numbers beside their posterior predictive replicates (one row per number).

    ``check`` names the family (e.g. "mean change", "counts", "patients with event");
    ``p_replicate_ge_observed`` is P(replicate > observed) + P(replicate = observed)/2.
    Event outcomes use the ``predicted_count`` replicates of the derived group; EDSS units are
    simulated here from theta and sigma (formats change, baseline_followup, means_only:
    the reported mean; counts: a multinomial over the rounded latent change; patient: the mean
    of the rounded patient changes, when ``evidence`` is given).
    """
    rng = np.random.default_rng(int(fit.tree.attrs.get("seed", 0)) if seed is None else seed)
    units = fit.prepared.units
    if "derived" in fit.tree.children and "predicted_count" in fit.tree["derived"].data_vars:
        rows = _ppc_events(fit, units)
    elif "formats" in units.columns:
        rows = _ppc_edss(fit, units, rng, evidence)
    else:
        rows = []
    return pd.DataFrame(rows, columns=_PPC_COLUMNS)


def _row(check: str, label: str, statistic: str, observed: float, rep: np.ndarray) -> dict:
    lo, hi = quantile_probs()
    q = np.quantile(rep, [0.5, lo, hi])
    p = float(np.mean(rep > observed) + 0.5 * np.mean(rep == observed))
    lo_name, hi_name = interval_columns("replicate_")
    return {"check": check, "label": label, "statistic": statistic, "observed": float(observed),
            "replicate_median": q[0], lo_name: q[1], hi_name: q[2], "p_replicate_ge_observed": p}


def _ppc_events(fit, units: pd.DataFrame) -> list[dict]:
    rep = draws_flat(fit.tree["derived"], "predicted_count")
    rows = []
    for j, r in enumerate(units.itertuples(index=False)):
        binomial = getattr(r, "likelihood", "binomial") == "binomial"
        observed = r.patients_with_event if binomial else r.events
        stat = "patients with event" if binomial else "events"
        rows.append(_row(stat, r.label, stat, float(observed), rep[:, j]))
    return rows


def unit_sigma(posterior: xr.Dataset, labels: list[str]) -> dict[str, np.ndarray]:
    """Within-arm SD of change per unit label (samples,), from the EDSS posterior, where modelled."""
    out = {}
    if "sigma_offset" in posterior:
        s_mu, s_tau = draws_flat(posterior, "sigma_mu"), draws_flat(posterior, "sigma_tau")
        z = draws_flat(posterior, "sigma_offset")
        for j, label in enumerate(posterior["arm_sd"].values):
            out[str(label)] = np.exp(s_mu + s_tau * z[:, j])
    if "sd_baseline" in posterior:
        rho = draws_flat(posterior, "rho")
        sb, sf = draws_flat(posterior, "sd_baseline"), draws_flat(posterior, "sd_followup")
        for j, label in enumerate(posterior["arm_bf"].values):
            out[str(label)] = np.sqrt(sb[:, j] ** 2 + sf[:, j] ** 2 - 2 * rho * sb[:, j] * sf[:, j])
    return {k: v for k, v in out.items() if k in labels}


def _ppc_edss(fit, units: pd.DataFrame, rng: np.random.Generator, evidence) -> list[dict]:
    from msc_bayes.edss import HALF_STEP, _change_mean_se
    from msc_bayes.evidence import COUNT_COLUMNS, EDSS_STEP

    posterior = fit.tree["posterior"].to_dataset()
    theta = draws_flat(posterior, "theta")
    labels = [str(x) for x in posterior["arm"].values]
    sigma = unit_sigma(posterior, labels)
    patients = _patient_changes(fit, evidence)
    default_threshold = float(fit.spec.options.get("default_threshold", 2 * HALF_STEP))
    rows = []
    for r in units.itertuples(index=False):
        j = labels.index(r.label)
        th, sd, n = theta[:, j], sigma.get(r.label), float(r.n)
        for fmt in r.formats:
            if fmt == "change":
                y, se = _change_mean_se(pd.DataFrame([r._asdict()]))
                rows.append(_row("mean change", r.label, "mean change", y[0], rng.normal(th, se[0])))
            elif fmt in ("baseline_followup", "means_only") and sd is not None:
                y = _reported_mean(r, fmt)
                rows.append(_row("mean change", r.label, "mean change", y, rng.normal(th, sd / np.sqrt(n))))
            elif fmt == "counts" and sd is not None:
                t = r.threshold if pd.notna(r.threshold) else default_threshold
                lo, hi = -t + HALF_STEP, t - HALF_STEP
                p_i = stats.norm.cdf(lo, th, sd)
                p_w = stats.norm.sf(hi, th, sd)
                p = np.clip(np.stack([p_i, 1 - p_i - p_w, p_w], axis=1), 0, 1)
                counts = rng.multinomial(int(n), p / p.sum(axis=1, keepdims=True))
                parts = {"improved": counts[:, 0], "stable": counts[:, 1], "worsened": counts[:, 2],
                         "stable_or_improved": counts[:, 0] + counts[:, 1],
                         "stable_or_worsened": counts[:, 1] + counts[:, 2]}
                for c in COUNT_COLUMNS:
                    if pd.notna(getattr(r, c)):
                        rows.append(_row("counts", r.label, f"{c.replace('_', ' ')} (threshold {t:g})",
                                         float(getattr(r, c)), parts[c]))
            elif fmt == "patient" and sd is not None and patients is not None:
                d = _unit_patients(patients, r)
                if len(d):
                    delta = rng.normal(th[:, None], sd[:, None], size=(len(th), len(d)))
                    rounded = np.floor((delta + HALF_STEP) / EDSS_STEP) * EDSS_STEP
                    rows.append(_row("mean change", r.label, f"mean of {len(d)} rounded patient changes",
                                     float(d.mean()), rounded.mean(axis=1)))
    return rows
