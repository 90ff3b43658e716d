""""What the evidence can and cannot say": a short plain-language paragraph generated from the findings.

Every number in it is a `Finding`'s (or a count of the sensitivity table's rows, or an arm's n from the
evidence), written by `msc_bayes.numbers` (true minus sign; risks in %). Order: the answer first (the main
EDSS finding: MSC vs control when a control arm is modelled; without EDSS findings, the first finding of the
first other outcome, an effect size or an event rate, whose own safety and MRI sentences the adverse-event and
MRI outcomes keep), its certainty and what it rests on, how many
sensitivity scenarios keep its interval away from 0, what the other EDSS rows cannot say, safety (the
serious adverse event risk, and that "no serious adverse events reported" is not zero risk), MRI, the
findings that are mostly their prior's (said to be the prior's, not findings), and the largest studies that
contribute nothing.
"""

from __future__ import annotations

import pandas as pd

from msc_bayes.findings.base import Finding, Interval, LeftOut
from msc_bayes.numbers import interval, number, prob, risk
from msc_bayes.results import interval_columns, interval_text

LOWER, UPPER = interval_columns()
#: how many of the largest studies left out of the primary outcome the paragraph names
LARGEST_LEFT_OUT = 3


def estimate_text(i: Interval, scale: str = "num") -> str:
    """'median (95% ETI lower to upper)' on the finding's scale (`msc_bayes.numbers.interval`: a risk in %, a log
    odds ratio followed by its odds ratio)."""
    return interval(i.median, i.lower, i.upper, scale, label=interval_text())


# --------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------


def _lowered(grade_reasons) -> str:
    names = [d.domain for d in grade_reasons if d.levels > 0]
    if not names:
        return ""
    return " (rated down for " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]) + ")"


def certainty_words(f: Finding) -> str:
    if f.certainty is None:
        return ""
    return f"certainty {f.certainty.grade}{_lowered(f.certainty.downgrades)}"


def _is_comparison(f: Finding) -> bool:
    return f.p_benefit is not None


def _excludes_zero(i: Interval) -> bool:
    return i.lower > 0 or i.upper < 0


def _lead(f: Finding) -> str:
    """Who says it: 'The one randomised comparison', 'The 3 randomised comparisons', 'The pooled MSC arms'."""
    k = len(f.studies)
    if f.certainty is not None and f.certainty.start == "high":
        return "The one randomised comparison" if k == 1 else f"The {k} randomised comparisons"
    return "The one study" if k == 1 else f"The {k} studies"


def answer(f: Finding) -> str:
    """The main finding in a few sentences: direction, estimate, probabilities, what it rests on, certainty (a
    quantity that compares nothing, e.g. a rate in MSC arms, opens with its label)."""
    if _is_comparison(f):
        text = f"{_lead(f)} {f.direction}: {f.label}, {estimate_text(f.estimate, f.scale)} {f.unit}."
    else:
        text = f"{f.outcome_label}: {f.label}, {estimate_text(f.estimate, f.scale)} {f.unit}."
    extra = []
    if f.p_important is not None and f.important_text:
        extra.append(f"the probability of {f.important_text} is {prob(f.p_important)}")
    if f.bayes_factor_text:
        extra.append(f.bayes_factor_text)
    if extra:
        said = "; ".join(extra)
        text += " " + said[0].upper() + said[1:] + "."
    text += f" It rests on {f.rests_on}"
    text += f"; {f.dominance}." if f.dominance else "."
    if f.certainty is not None:
        text += f" Certainty: {f.certainty.grade}{_lowered(f.certainty.downgrades)}."
    return text


def prior_sentence(findings: list[Finding]) -> str:
    """The findings that are mostly their prior's, said to be the prior's."""
    if not findings:
        return ""
    names = "; ".join(f"{f.outcome_label}, {f.label}" + (f" (contraction {number(f.contraction)})"
                                                          if f.contraction is not None else "")
                      for f in findings)
    return (f"Mostly the prior's, not findings: {names}: the data barely move these from what was assumed "
            "before seeing them.")


def cannot_say(findings: list[Finding]) -> str:
    """Comparisons whose interval includes no difference: what the evidence cannot say."""
    unclear = [f for f in findings if _is_comparison(f) and not _excludes_zero(f.estimate)]
    if not unclear:
        return ""
    items = "; ".join(f"{f.label} {estimate_text(f.estimate, f.scale)}" for f in unclear)
    return f"The evidence cannot say whether these differ from no difference (each interval includes 0): {items}."


def safety(findings: list[Finding]) -> str:
    """The serious adverse event risk (else the first risk of the adverse-event outcome), with the zero-risk caveat."""
    risks = [f for f in findings if f.outcome == "adverse_events" and f.scale == "risk" and not f.mostly_prior]
    if not risks:
        return ""
    f = next((r for r in risks if "serious" in r.quantity), risks[0])
    what = "serious adverse events" if "serious" in f.quantity else "adverse events"
    return (f"Safety: {f.label} {estimate_text(f.estimate, 'risk')}, {certainty_words(f)}. That no {what} were "
            f"reported in an arm is not the same as zero risk: a risk up to {risk(f.estimate.upper)} is consistent "
            "with these data.")


def mri(findings: list[Finding]) -> str:
    rows = [f for f in findings if f.outcome == "mri_activity" and not f.mostly_prior]
    if not rows:
        return ""
    items = "; ".join(f"{f.label} {estimate_text(f.estimate, f.scale)}, {certainty_words(f)}" for f in rows)
    return f"MRI: {items}."


def sensitivity_sentence(f: Finding, table: pd.DataFrame | None) -> str:
    """'In k of m sensitivity scenarios the interval excludes 0' for the main finding (rows other than the base)."""
    if table is None or not len(table) or not _is_comparison(f):
        return ""
    rows = table[(table["quantity"] == f.quantity) & (table["family"] != "base")]
    if not len(rows):
        return ""
    k = int(((rows[LOWER] > 0) | (rows[UPPER] < 0)).sum())
    return (f"In {k} of {len(rows)} sensitivity scenarios (other priors, data choices, leaving out one study at a "
            f"time) the interval of {f.label} excludes 0.")


def left_out_sentence(left: tuple[LeftOut, ...], outcome: str, label: str, *, sizes: dict[str, int] | None = None,
                      labels: dict[str, str] | None = None) -> str:
    """How many arms contribute nothing to `outcome`, and the largest studies none of whose arms does (their size:
    `sizes`, study -> patients, else the sum of the arms' n; their names: `labels`)."""
    mine = [x for x in left if x.outcome == outcome]
    if not mine:
        return ""
    by_study: dict[str, list[LeftOut]] = {}
    for x in mine:
        by_study.setdefault(x.study, []).append(x)
    sizes, labels = sizes or {}, labels or {}
    sized = sorted(((sizes.get(s, sum(a.n or 0 for a in arms)), s, arms) for s, arms in by_study.items()),
                   key=lambda t: -t[0])
    named = [f"{labels.get(s, s)} (n = {n}: {arms[0].reason})"
             for n, s, arms in sized[:LARGEST_LEFT_OUT] if n]
    text = f"{len(mine)} study arms in the evidence contribute nothing to {label}"
    return text + ("; the largest studies among them: " + "; ".join(named) if named else "") + "."


#: Outcomes the paragraph speaks of in sentences of their own (`safety`, `mri`), never as its main finding
_OWN_SENTENCES = ("adverse_events", "mri_activity")


def primary_outcome(findings) -> str | None:
    """The outcome whose finding opens the paragraph: EDSS change when there is an EDSS finding, else the first
    outcome (the findings' order) other than adverse events and MRI activity; None when there is none."""
    outcomes = list(dict.fromkeys(f.outcome for f in findings))
    if "edss_change" in outcomes:
        return "edss_change"
    return next((o for o in outcomes if o not in _OWN_SENTENCES), None)


def paragraph(findings: tuple[Finding, ...], *, left: tuple[LeftOut, ...] = (),
              sensitivity: dict[str, pd.DataFrame] | None = None, sizes: dict[str, int] | None = None,
              labels: dict[str, str] | None = None) -> str:
    """The paragraph (module docstring) from `findings` (EDSS first), the arms left out (`sizes` and `labels` of
    their studies: see `left_out_sentence`) and the sensitivity tables (outcome -> report table)."""
    informative = [f for f in findings if not f.mostly_prior]
    prior = [f for f in findings if f.mostly_prior]
    outcome = primary_outcome(findings)
    rows = [f for f in informative if f.outcome == outcome]
    main = next((f for f in rows if f.quantity == "msc_effect"), rows[0] if rows else None)
    sentences = []
    if main is not None:
        sentences.append(answer(main))
        sentences.append(sensitivity_sentence(main, (sensitivity or {}).get(main.outcome)))
        sentences.append(cannot_say([f for f in rows if f is not main]))
    elif outcome == "edss_change":
        sentences.append("Every EDSS finding is mostly its prior's: the data cannot say whether MSC changes EDSS.")
    elif outcome is not None:
        label = next(f.outcome_label for f in findings if f.outcome == outcome)
        sentences.append(f"Every finding on {label} is mostly its prior's: the data cannot say more than the prior "
                         "did.")
    sentences.append(safety(informative))
    sentences.append(mri(informative))
    sentences.append(prior_sentence(prior))
    primary = main or next(iter(findings), None)
    if primary is not None:
        sentences.append(left_out_sentence(left, primary.outcome, primary.outcome_label, sizes=sizes,
                                           labels=labels))
    return " ".join(s for s in sentences if s)
