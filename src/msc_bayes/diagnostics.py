"""How far a fit can be trusted: sampler convergence and agreement with the observed data.

- :func:`convergence`: rank-normalised split R-hat, bulk/tail ESS and MCSE (mean, SD and
  both ends of the interval) for every reported scalar quantity (posterior and derived,
  non-centred ``*_offset`` / ``*_latent`` plumbing left out), plus the sampler's own
  statistics (divergences, maximum tree depth hits, E-BFMI per chain). The gate is
  :data:`RHAT_MAX`, :data:`ESS_BULK_MIN`, :data:`ESS_TAIL_MIN` and :data:`MAX_DIVERGENCES`;
  tree depth and E-BFMI are reported as warnings. :func:`verdict_lines` says the verdict in
  words; :func:`sampler_rows` / :func:`summary_table` put the sampler's statistics and the
  verdict into ``summary.csv`` (rows of group ``sampler``).
- :func:`study_estimates`: per modelled unit, the estimate the unit's reporting format
  gives (where it gives one) beside its shrunken (partially pooled) posterior.
- :func:`predictive_checks`: posterior predictive replicates, simulated in numpy from the
  draws, of each reported number that a format makes cheap to simulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from msc_bayes.numbers import plural
from msc_bayes.results import (
    LOWER,
    SUMMARY_COLUMNS,
    UPPER,
    attrs,
    group,
    interval_columns,
    interval_text,
    median_interval,
    quantile_probs,
    quantity_summary,
    stack_draws,
    where,
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


def divergences(fit) -> int:
    """The divergent transitions the sampler reported (a fit or DataTree; 0 when it reports none)."""
    ss = group(fit, "sample_stats")
    return 0 if ss is None or "diverging" not in ss else int(ss["diverging"].values.sum())


def sampler_stats(fit) -> tuple[int, int, int, tuple[float, ...]]:
    """(draws, divergences, tree depth hits, E-BFMI per chain) from the sample_stats group of a fit or DataTree."""
    import arviz as az

    ss = group(fit, "sample_stats")
    draws = int(ss.sizes["chain"] * ss.sizes["draw"])
    hits = int(ss["maxdepth_reached"].sum()) if "maxdepth_reached" in ss else 0
    ebfmi: tuple[float, ...] = ()
    if "energy" in ss:
        values = az.bfmi(ss[["energy"]], sample_dims=_SAMPLE_DIMS)["energy"].values
        ebfmi = tuple(float(x) for x in np.atleast_1d(values))
    return draws, divergences(fit), hits, ebfmi


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


#: The sampler rows of a summary table (``summary.csv``, the report's ``<key>_summary.csv``), in order:
#: post-warm-up draws (all chains), divergent transitions, transitions at the maximum tree depth, the
#: lowest E-BFMI of a chain, and whether the gate passed (1) or not (0).
SAMPLER_ROWS = ("draws", "divergences", "max_treedepth_hits", "ebfmi_min", "gate_passed")


def sampler_rows(fit, verdict: Convergence | None = None) -> pd.DataFrame:
    """The sampler's diagnostics as rows of a summary table: indexed by ``quantity`` (:data:`SAMPLER_ROWS`),
    group ``"sampler"``, the value in ``mean`` and the summary's other columns empty (NaN; blank in a CSV).

    `verdict`: the gate's verdict on `fit` (computed when not given)."""
    verdict = convergence(fit) if verdict is None else verdict
    values = {"draws": verdict.draws, "divergences": verdict.divergences, "max_treedepth_hits": verdict.treedepth_hits,
              "ebfmi_min": min(verdict.ebfmi) if verdict.ebfmi else np.nan, "gate_passed": int(verdict.passed)}
    columns = [{LOWER: interval_columns()[0], UPPER: interval_columns()[1]}.get(c, c) for c in SUMMARY_COLUMNS]
    out = pd.DataFrame(np.nan, index=pd.Index(list(values), name="quantity"),
                       columns=[c for c in columns if c != "quantity"])
    out["group"] = "sampler"
    out["mean"] = pd.Series(list(values.values()), index=out.index, dtype=object)  # counts stay whole numbers
    return out


def summary_table(fit, verdict: Convergence | None = None) -> pd.DataFrame:
    """``summary.csv``: :meth:`Fit.summary` (one row per quantity, indexed by ``quantity``), then the
    :func:`sampler_rows`; write it with ``.to_csv(path)`` (the index is the file's first column)."""
    return pd.concat([fit.summary(), sampler_rows(fit, verdict)])


def verdict_lines(verdict: Convergence) -> list[str]:
    """The gate's verdict in words: a headline, then one line per check with its value, its threshold
    and whether it passes (what ``fit`` prints). R-hat and ESS name their worst quantity (NaN first)."""
    checked = verdict.table[~verdict.table["constant"]]

    def worst(column: str, largest: bool, digits: int) -> str:
        if not len(checked):
            return "no quantity checked"
        row = checked.sort_values(column, ascending=not largest, na_position="first").iloc[0]
        return ("NaN" if pd.isna(row[column]) else f"{row[column]:.{digits}f}") + f" ({row['quantity']})"

    def mark(ok: bool) -> str:
        return "ok" if ok else "FAILS"

    headline = (f"convergence gate: {'passed' if verdict.passed else 'NOT PASSED'} "
                f"({plural(len(checked), 'quantity', 'quantities')} checked, {verdict.draws} draws after warm-up)")
    lines = [headline]
    lines.append(f"  R-hat, worst: {worst('r_hat', True, 3)}; must be at most {RHAT_MAX:g}: "
                 f"{mark(bool((checked['r_hat'] <= RHAT_MAX).all()))}")
    for col, minimum, what in (("ess_bulk", ESS_BULK_MIN, "bulk"), ("ess_tail", ESS_TAIL_MIN, "tail")):
        lines.append(f"  {what} ESS, lowest: {worst(col, False, 0)}; must be at least {minimum:g}: "
                     f"{mark(bool((checked[col] >= minimum).all()))}")
    lines.append(f"  divergent transitions: {verdict.divergences} of {verdict.draws} draws; must be at most "
                 f"{MAX_DIVERGENCES}: {mark(verdict.divergences <= MAX_DIVERGENCES)}")
    ebfmi = min(verdict.ebfmi) if verdict.ebfmi else None
    lines.append("  E-BFMI, lowest chain: " + ("not computed" if ebfmi is None else f"{ebfmi:.2f}")
                 + f"; a warning below {EBFMI_MIN:g} (not gated): "
                 + ("ok" if ebfmi is None or ebfmi >= EBFMI_MIN else "warning"))
    lines.append(f"  maximum tree depth hits: {verdict.treedepth_hits}; a warning above 0 (not gated): "
                 + ("ok" if not verdict.treedepth_hits else "warning"))
    return lines


# --------------------------------------------------------------------------------------
# Observed vs shrunken estimates
# --------------------------------------------------------------------------------------


def _outcome(fit):
    from msc_bayes import outcomes

    return outcomes.get(fit.spec.outcome)


def _shrunken_name(fit) -> tuple[str, str]:
    """(group, variable) of the per-unit estimate on the reporting scale: the outcome's
    `unit_estimate` where the fit has it, else theta."""
    name = _outcome(fit).unit_estimate
    where_ = where(fit, name)
    return (where_, name) if where_ is not None else ("posterior", "theta")


def observed_estimates(fit, *, evidence=None) -> pd.DataFrame:
    """Per unit: the estimate its format gives, with its interval where the format gives one.

    Columns: label, observed, observed_lower, observed_upper, observed_from. EDSS: mean change
    +- 1.96 SE (format ``change``); follow-up minus baseline mean (``baseline_followup``,
    ``means_only``; no interval: the SD of change is unknown); mean of patient changes +- 1.96
    SE (``patient``, when ``evidence`` is given); none for ``counts``. Event outcomes: y/n with
    a Jeffreys interval (binomial units), 1 - exp(-events/n) (Poisson units: the risk implied
    by the event rate, Jeffreys interval on the rate). Each format computes its own
    (:mod:`msc_bayes.outcomes`); an outcome without observed estimates gives NaN.
    """
    units = fit.prepared.units
    observed = _outcome(fit).observed
    if observed is None:
        rows = [(np.nan, np.nan, np.nan, "") for _ in range(len(units))]
    else:
        rows = observed(fit, evidence=evidence, probs=quantile_probs(), interval=interval_text().split()[0])
    out = pd.DataFrame(rows, columns=["observed", "observed_lower", "observed_upper", "observed_from"])
    out.insert(0, "label", list(units["label"]))
    return out


def study_estimates(fit, *, evidence=None) -> pd.DataFrame:
    """Per unit: study, arm, group, n, what was used, the observed estimate, and the shrunken estimate."""
    units = fit.prepared.units
    used = _outcome(fit).used
    group_, name = _shrunken_name(fit)
    med, lo, hi = median_interval(stack_draws(group(fit, group_)[name]))
    lo_name, hi_name = interval_columns()
    out = pd.DataFrame({
        "label": list(units["label"]), "study": list(units["study"]), "arm": list(units["arm"]),
        "group": list(units["group"].fillna("msc")) if "group" in units.columns else "msc",
        "n": list(units["n"]), "followup_months": _followup_months(units),
        "used": list(used(units)) if used is not None else "",
    })
    obs = observed_estimates(fit, evidence=evidence)
    out = pd.concat([out, obs.drop(columns="label")], axis=1)
    out["shrunken_quantity"] = name
    out["shrunken_median"], out[f"shrunken_{lo_name}"], out[f"shrunken_{hi_name}"] = med, lo, hi
    return out


def _followup_months(units: pd.DataFrame) -> list[float]:
    """Per unit, its follow-up in months: the unit's timepoint, else its arm's follow-up (NaN when neither is known)."""
    nan = pd.Series(np.nan, index=units.index)
    timepoint = pd.to_numeric(units.get("timepoint_months", nan), errors="coerce")
    arm = pd.to_numeric(units.get("followup_months", nan), errors="coerce")
    return [float(x) for x in timepoint.fillna(arm)]


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
    simulated from theta and sigma by each format (change, baseline_followup, means_only:
    the reported mean; counts: a multinomial over the rounded latent change; patient: the mean
    of the rounded patient changes, when ``evidence`` is given).
    """
    rng = np.random.default_rng(int(attrs(fit).get("seed", 0)) if seed is None else seed)
    replicates = _outcome(fit).replicates
    found = [] if replicates is None else replicates(fit, evidence=evidence, rng=rng, probs=quantile_probs())
    return pd.DataFrame([_row(*r) for r in found], columns=_PPC_COLUMNS)


def _row(check: str, label: str, statistic: str, observed: float, rep: np.ndarray) -> dict:
    lo, hi = quantile_probs()
    q = np.quantile(rep, [0.5, lo, hi])
    p = float(np.mean(rep > observed) + 0.5 * np.mean(rep == observed))
    lo_name, hi_name = interval_columns("replicate_")
    return {"check": check, "label": label, "statistic": statistic, "observed": float(observed),
            "replicate_median": q[0], lo_name: q[1], hi_name: q[2], "p_replicate_ge_observed": p}
