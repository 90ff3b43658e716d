"""The certainty of a finding, GRADE-style, by stated rules from the evidence and the posterior.

GRADE (Guyatt et al. 2011, J Clin Epidemiol 64:383 and the series that follows it) rates the certainty
of a body of evidence high, moderate, low or very low: randomised comparisons start high, observational
ones low, and five domains may each rate it down by one or two levels. Here every rule is a function of
what the package knows: the arms that inform the row (:mod:`msc_bayes.findings.support`), their design,
disease and cell product (``arms.csv``), the follow-up of the EDSS rows used, and the row's posterior
numbers (its interval, prediction interval and contraction). Every domain is always reported, as a
`Downgrade` with ``levels`` 0 when it was considered and not rated down, with its reason in numbers.
`RULES_TEXT` writes the rules and thresholds for a report's Methods, so a reader can disagree with them.

Imprecision follows GRADE's guidance on imprecision (Guyatt et al. 2011, J Clin Epidemiol 64:1283):
rate down when the interval crosses a decision threshold (no effect, or the clinically important
magnitude), twice when it includes both an important benefit and an important harm, and also when the
number of patients is below an optimal information size (``OPTIMAL_INFORMATION_SIZE``; that paper's
rule of thumb for a continuous outcome is 400 patients).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from msc_bayes import results
from msc_bayes.findings import contraction as ct
from msc_bayes.findings.base import Certainty, Downgrade, Grade
from msc_bayes.findings.quantities import important_magnitude
from msc_bayes.findings.support import contributing
from msc_bayes.numbers import number, span

GRADES: tuple[Grade, ...] = ("high", "moderate", "low", "very low")
#: designs whose control comparison is randomised (arms.csv ``design``)
RANDOMISED = ("randomised", "randomised-crossover")
#: risk of bias: rated down once when at least this share of a row's patients are in single-arm (uncontrolled,
#: open-label) studies
SINGLE_ARM_SHARE = 0.5
#: indirectness: rated down once when at least this share of a row's patients are in NMO / NMOSD arms (not
#: MS), and once when at least this share received a product that is not a classic culture-expanded MSC
INDIRECT_SHARE = 0.25
INDIRECT_DISEASES = ("NMO", "NMOSD")
#: the two products data/README.md calls "not classic culture-expanded MSC" (umbilical cord and adipose MSC
#: are MSC from another tissue, not another product)
NON_CLASSICAL_PRODUCTS = ("msc_np", "placenta")
#: indirectness: EDSS change over less than this many months (patient-weighted median of the timepoints used)
#: is a short-term surrogate for disability progression, which trials confirm over 12-24 months
SHORT_FOLLOWUP_MONTHS = 12.0
#: indirectness of an outcome that is itself a surrogate for disability (outcome -> what it is)
SURROGATE_OUTCOMES = {"mri_activity": "MRI lesion activity, a surrogate for relapses and disability"}
#: imprecision: the optimal information size (patients), Guyatt et al. 2011 J Clin Epidemiol 64:1283
OPTIMAL_INFORMATION_SIZE = 400
#: risk of bias: a parameter whose prior-to-posterior contraction (1 - posterior var / prior var) is below this
#: is "its prior" (the carry-over share of a crossover's control periods)
PARAMETER_CONTRACTION = 0.2
#: publication bias: small-study tests need at least this many studies (Sterne et al. 2011 BMJ 343:d4002)
PUBLICATION_BIAS_STUDIES = 10
#: largest number of levels one domain rates down
MAX_LEVELS = 2


# --------------------------------------------------------------------------------------
# Thresholds of a row
# --------------------------------------------------------------------------------------


def thresholds(row, fit, mcid: float | None = None) -> dict[str, float]:
    """The decision thresholds of a row on its own scale, by name: 'no difference' (0: a comparison or a
    change, ``direction`` not "none"), 'an important benefit' / 'an important harm' (-/+ the important
    magnitude in the row's good direction), or for a risk (``direction`` "none") 'the important risk'."""
    m = important_magnitude(fit, row, mcid)
    m = None if m is None else abs(float(m))
    out: dict[str, float] = {}
    if row.direction == "none":
        if m is not None:
            out["the important risk"] = m
        return out
    out["no difference"] = 0.0
    if m is not None:
        good = -1.0 if row.direction == "lower_better" else 1.0
        out["an important benefit"] = good * m
        out["an important harm"] = -good * m
    return out


def _inside(t: float, interval) -> bool:
    return interval.lower < t < interval.upper


def _fmt(x: float, scale: str = "num") -> str:
    return number(x, scale, digits=2)  # a risk's two decimals tell an interval end from a threshold near it


def _span(interval, scale: str = "num") -> str:
    return span(interval.lower, interval.upper, scale, digits=2)


def _pct(part: float, whole: float) -> str:
    return f"{part:.0f} of {whole:.0f} patients ({part / whole:.0%})" if whole else "no patients"


# --------------------------------------------------------------------------------------
# Where a grade starts
# --------------------------------------------------------------------------------------


def start_of(row, arms: pd.DataFrame) -> tuple[Grade, str]:
    """High for a comparison with control in randomised studies only; low otherwise (single-arm data and
    comparisons between studies are observational, whatever design the arms come from)."""
    designs = sorted(set(arms["design"].dropna())) if "design" in arms else []
    if row.informed_by == "control" and designs and all(d in RANDOMISED for d in designs):
        names = ", ".join(dict.fromkeys(arms["study_label"]))
        return "high", f"a randomised comparison of MSC with control ({names})"
    if row.informed_by == "control":
        return "low", "a comparison with control that is not randomised in every study (" + ", ".join(designs) + ")"
    return "low", ("pooled MSC arms: single-arm estimates and comparisons between studies are observational, "
                   "whatever the design of the trials the arms come from")


# --------------------------------------------------------------------------------------
# The five domains
# --------------------------------------------------------------------------------------


def _contraction(fit, variable: str, prior) -> float | None:
    """1 - posterior variance / prior variance of a scalar posterior variable (None when the fit lacks it)."""
    if prior is None or not results.has(fit, variable):
        return None
    post = float(np.var(results.draws(fit, variable)))
    prior_var = ct.variance(prior)
    return 1.0 - post / prior_var if prior_var and np.isfinite(prior_var) else None


def risk_of_bias(row, arms: pd.DataFrame, fit) -> Downgrade:
    """A comparison with control: rated down once when a control arm has periods after an MSC period
    (carry-over), saying whether the carry-over share is estimated and how much the data move it. Pooled MSC
    arms: rated down once when at least SINGLE_ARM_SHARE of the patients are in single-arm studies."""
    total = float(arms["patients"].sum())
    if row.informed_by == "control":
        after = pd.to_numeric(arms.get("periods_after_msc"), errors="coerce") if "periods_after_msc" in arms else None
        carried = arms[(after.fillna(0) > 0).to_numpy()] if after is not None else arms.iloc[:0]
        if carried.empty:
            return Downgrade("risk of bias", 0, "randomised, and no control period follows an MSC period "
                                                "(blinding is not recorded in the evidence tables)")
        what = "; ".join(f"{r.study_label} {r.arm}: {int(float(r.periods_after_msc))} of {int(r.N)} control periods "
                         "follow an MSC period" for r in carried.itertuples(index=False))
        mode = fit.spec.options.get("carry_over") if fit.spec is not None else None
        if mode == "estimate" and results.has(fit, "carry_over"):
            c = _contraction(fit, "carry_over", fit.spec.priors.get("carry_over"))
            if c is not None and c < PARAMETER_CONTRACTION:
                how = (f"the carry-over share's posterior is its prior (contraction {c:.2f} < "
                       f"{PARAMETER_CONTRACTION:g}): a design whose carry-over the data cannot separate from the effect")
            else:
                how = "the carry-over share is estimated" + (f" (contraction {c:.2f})" if c is not None else "")
        elif mode in ("none", "full"):
            how = f"carry-over is fixed at {mode} by the spec, an assumption the data cannot check"
        else:
            how = "the model counts them as control periods: any carry-over is not separated from the effect"
        return Downgrade("risk of bias", 1, f"crossover with possible carry-over ({what}); {how}")
    single = float(arms.loc[arms.get("design") == "single-arm", "patients"].sum()) if "design" in arms else 0.0
    share = single / total if total else 0.0
    text = f"{_pct(single, total)} are in single-arm open-label studies"
    if share >= SINGLE_ARM_SHARE:
        why = ("events collected without a comparator or blinding may be missed or "
               "under-reported" if row.direction == "none" else
               "no comparator and no blinding, so natural history, regression to the mean and unblinded "
               "assessment cannot be told apart from an effect")
        return Downgrade("risk of bias", 1, f"{text} (at least {SINGLE_ARM_SHARE:.0%}): {why}")
    return Downgrade("risk of bias", 0, f"{text} (below {SINGLE_ARM_SHARE:.0%})")


def inconsistency(row, numbers: dict, studies: int, fit, mcid: float | None = None) -> Downgrade:
    """Not assessable with one study (GRADE does not rate a single study down for inconsistency; imprecision
    may). Otherwise rated down once when the prediction interval for a new study crosses a threshold (0, or
    the important magnitude) that the estimate's own interval does not cross: heterogeneity changes the answer
    in a new setting (a threshold both cross is imprecision's, not counted twice)."""
    if studies < 2:
        return Downgrade("inconsistency", 0, f"not assessable with {studies} study (GRADE does not rate a single "
                                             "study down for inconsistency)")
    pred, est = numbers.get("prediction"), numbers["estimate"]
    tau = numbers.get("tau")
    tau_text = f"; between-study SD {_fmt(tau.median)} ({_span(tau)})" if tau is not None else ""
    if pred is None:
        return Downgrade("inconsistency", 0, f"no prediction interval is defined for this quantity{tau_text}")
    ts = thresholds(row, fit, mcid)
    new = [name for name, t in ts.items() if _inside(t, pred) and not _inside(t, est)]
    if new:
        crossed = " and ".join(f"{n} ({_fmt(ts[n], row.scale)})" for n in new)
        return Downgrade("inconsistency", 1, f"a new study's value (prediction interval {_span(pred, row.scale)}) could lie "
                                             f"beyond {crossed}, which the estimate's interval ({_span(est, row.scale)}) does "
                                             f"not reach{tau_text}")
    if not ts:
        return Downgrade("inconsistency", 0, f"no threshold to judge the prediction interval ({_span(pred, row.scale)}) "
                                             f"against{tau_text}")
    both = [n for n, t in ts.items() if _inside(t, pred)]
    said = (f"it crosses {' and '.join(both)} only where the estimate's interval ({_span(est, row.scale)}) does "
            "(imprecision)") if both else "it crosses no threshold"
    return Downgrade("inconsistency", 0, f"prediction interval {_span(pred, row.scale)}: {said}{tau_text}")


def imprecision(row, numbers: dict, patients: int, fit, mcid: float | None = None) -> Downgrade:
    """Rated down twice when the interval includes both an important benefit and an important harm; once when
    it crosses 0 or an important magnitude (for a risk: the important risk); once more (at most twice in all)
    when fewer than OPTIMAL_INFORMATION_SIZE patients inform it."""
    est = numbers["estimate"]
    ts = thresholds(row, fit, mcid)
    crossed = [n for n, t in ts.items() if _inside(t, est)]
    if "an important benefit" in crossed and "an important harm" in crossed:
        levels, why = 2, f"the interval ({_span(est, row.scale)}) includes both an important benefit and an important harm"
    elif crossed:
        levels, why = 1, f"the interval ({_span(est, row.scale)}) crosses " + " and ".join(f"{n} ({_fmt(ts[n], row.scale)})" for n in crossed)
    elif ts:
        levels, why = 0, f"the interval ({_span(est, row.scale)}) crosses no threshold"
    else:
        levels, why = 0, f"no threshold to judge the interval ({_span(est, row.scale)}) against"
    if patients < OPTIMAL_INFORMATION_SIZE:
        levels += 1
        why += f"; {patients} patients, fewer than the optimal information size of {OPTIMAL_INFORMATION_SIZE}"
    else:
        why += f"; {patients} patients (optimal information size {OPTIMAL_INFORMATION_SIZE} met)"
    return Downgrade("imprecision", min(levels, MAX_LEVELS), why)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, cum[-1] / 2)])


def indirectness(row, numbers: dict, arms: pd.DataFrame, outcome: str) -> Downgrade:
    """One level for each of (at most two in all): at least INDIRECT_SHARE of the patients in NMO/NMOSD arms;
    at least INDIRECT_SHARE given a non-classical product (MSC-NP, placenta-derived cells); EDSS change over a
    patient-weighted median follow-up below SHORT_FOLLOWUP_MONTHS; an outcome that is a surrogate
    (SURROGATE_OUTCOMES); a quantity that is mostly its prior."""
    total = float(arms["patients"].sum())
    levels, parts = 0, []
    for what, column, values in (("in NMO/NMOSD arms (not MS)", "disease", INDIRECT_DISEASES),
                                 (("given MSC-derived neural progenitors or placenta-derived cells (not classic "
                                  "MSC)"), "cell_source", NON_CLASSICAL_PRODUCTS)):
        part = float(arms.loc[arms[column].isin(values), "patients"].sum()) if column in arms else 0.0
        if part and total and part / total >= INDIRECT_SHARE:
            levels += 1
            parts.append(f"{_pct(part, total)} {what} (at least {INDIRECT_SHARE:.0%})")
        elif part:
            parts.append(f"{_pct(part, total)} {what} (below {INDIRECT_SHARE:.0%}: not rated down)")
    if outcome == "edss_change" and "timepoint_months" in arms and arms["timepoint_months"].notna().any():
        ok = arms["timepoint_months"].notna().to_numpy()
        months = _weighted_median(arms["timepoint_months"].to_numpy(dtype=float)[ok],
                                  arms["patients"].to_numpy(dtype=float)[ok])
        if months < SHORT_FOLLOWUP_MONTHS:
            levels += 1
            parts.append(f"EDSS change over {months:.3g} months (patient-weighted median), shorter than "
                         f"{SHORT_FOLLOWUP_MONTHS:g}: a short-term surrogate for disability progression")
        else:
            parts.append(f"EDSS change over {months:.3g} months (patient-weighted median)")
    if outcome in SURROGATE_OUTCOMES:
        levels += 1
        parts.append(SURROGATE_OUTCOMES[outcome])
    if numbers.get("mostly_prior"):
        levels += 1
        c = numbers.get("contraction")
        parts.append("mostly the prior's" + (f" (contraction {c:.2f})" if c is not None else "")
                     + ": the data barely inform it")
    reason = "; ".join(parts) if parts else "MS patients given classic MSC; none of the indirectness rules applies"
    return Downgrade("indirectness", min(levels, MAX_LEVELS), reason)


def publication_bias(studies: int) -> Downgrade:
    """Not assessable with fewer than PUBLICATION_BIAS_STUDIES studies; with more, no small-study test is run
    here, so it is not rated down either (said so)."""
    if studies < PUBLICATION_BIAS_STUDIES:
        return Downgrade("publication bias", 0, f"not assessable with {studies} "
                                                f"{'study' if studies == 1 else 'studies'} (fewer than "
                                                f"{PUBLICATION_BIAS_STUDIES})")
    return Downgrade("publication bias", 0, f"{studies} studies; no small-study (funnel plot) test is run here, "
                                            "so it is not rated down")


# --------------------------------------------------------------------------------------
# The grade
# --------------------------------------------------------------------------------------


def grade_of(start: Grade, downgrades) -> Grade:
    """The start lowered by every downgrade's levels, never below very low."""
    i = GRADES.index(start) + sum(d.levels for d in downgrades)
    return GRADES[min(i, len(GRADES) - 1)]


def certainty(numbers: dict, support: dict, evidence, fit, row, *, arms: pd.DataFrame | None = None,
              mcid: float | None = None) -> Certainty:
    """The certainty of one row: its start by design and the five domains (see `RULES_TEXT`).

    `numbers` are the row's posterior numbers (:func:`msc_bayes.findings.quantities.numbers`: estimate,
    prediction, tau, contraction, mostly_prior), `support` its studies and patients
    (:func:`msc_bayes.findings.support.support`); `arms` the contributing arms (computed when not given); `mcid`
    overrides the spec's (as it does for the numbers)."""
    if arms is None:
        arms = contributing(fit, row, evidence)
    spec = fit.spec
    start, why = start_of(row, arms)
    studies = len(support["studies"])
    downgrades = (
        risk_of_bias(row, arms, fit),
        inconsistency(row, numbers, studies, fit, mcid),
        imprecision(row, numbers, support["patients"], fit, mcid),
        indirectness(row, numbers, arms, spec.outcome),
        publication_bias(studies),
    )
    return Certainty(grade_of(start, downgrades), start, why, downgrades)


RULES_TEXT = (
    "Certainty (GRADE-style, computed by these rules; each domain is reported with its reason). "
    "Start: high for a comparison of MSC with control in randomised studies only (designs "
    f"{' or '.join(RANDOMISED)}); low for everything else (pooled MSC arms, route and course contrasts: "
    "single-arm data and comparisons between studies are observational). Each domain rates down by 0, 1 or "
    f"{MAX_LEVELS} levels; the grade never goes below very low. "
    "Risk of bias: a comparison with control is rated down once when a control arm has treatment periods after "
    "an MSC period (crossover carry-over), saying whether the carry-over share is estimated and whether its "
    f"posterior is its prior (contraction below {PARAMETER_CONTRACTION:g}); pooled MSC arms are rated down once "
    f"when at least {SINGLE_ARM_SHARE:.0%} of their patients are in single-arm open-label studies. Blinding is "
    "not recorded in the evidence tables and is not judged. "
    "Inconsistency: not assessable with one study (not rated down); otherwise rated down once when the 95% "
    "prediction interval for a new study crosses 0 or the clinically important magnitude (for a risk: the "
    "important risk) where the estimate's own interval does not (a threshold both cross counts under imprecision "
    "only). "
    "Imprecision: rated down twice when the 95% interval includes both an important benefit and an important "
    "harm, once when it crosses 0 or the important magnitude (for a risk: the important risk), and once more (at "
    f"most twice) when fewer than {OPTIMAL_INFORMATION_SIZE} patients inform it (the optimal information size; "
    "Guyatt et al. 2011, J Clin Epidemiol 64:1283). "
    f"Indirectness: one level each (at most {MAX_LEVELS}) when at least {INDIRECT_SHARE:.0%} of the patients "
    f"are in NMO/NMOSD arms, when at least {INDIRECT_SHARE:.0%} received MSC-derived neural progenitors or "
    f"placenta-derived cells, when EDSS change is over less than {SHORT_FOLLOWUP_MONTHS:g} months "
    "(patient-weighted median of the timepoints used), when the outcome is a surrogate (MRI activity), and when "
    "the quantity is mostly its prior. "
    f"Publication bias: not assessable with fewer than {PUBLICATION_BIAS_STUDIES} studies; with more, no "
    "small-study test is run, so it is not rated down either."
)


def rules_text() -> str:
    """The certainty rules and their thresholds in words (the report's Methods)."""
    return RULES_TEXT
