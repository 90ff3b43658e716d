"""What a finding rests on (msc_bayes.findings.support), the arms an outcome leaves out and why
(findings.left_out), and the plain-language paragraph (findings.text), on a small evidence folder and
hand-made findings (no MCMC)."""

from __future__ import annotations

import re
from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import write_evidence

from msc_bayes import outcomes
from msc_bayes.evidence.labels import study_label
from msc_bayes.findings import left_out as lo
from msc_bayes.findings import support as sp
from msc_bayes.findings import text as tx
from msc_bayes.findings.base import Certainty, Downgrade, Finding, Interval, LeftOut
from msc_bayes.numbers import interval, number, prob
from msc_bayes.spec import spec_from_dict

ARMS = [
    {"study": "alpha2020", "arm": "msc", "citation": "Alpha A et al. 2020 J Neurol 1:1", "design": "randomised-crossover",
         "disease": "SPMS", "group": "msc", "cell_source": "bone_marrow", "n": 4},
    {"study": "alpha2020", "arm": "sham", "citation": "Alpha A et al. 2020 J Neurol 1:1", "design": "randomised-crossover",
         "disease": "SPMS", "group": "control", "cell_source": "none", "n": 4, "periods_after_msc": 2},
    {"study": "beta2018", "arm": "all", "citation": "Mohyeddin Beta M et al. 2018 X", "design": "single-arm", "disease": "SPMS",
         "group": "msc", "cell_source": "bone_marrow", "n": 10, "overlap_group": "beta", "overlap_rank": 1},
    {"study": "delta2019", "arm": "all", "citation": "Delta D 2019", "design": "single-arm", "disease": "SPMS", "group": "msc",
         "cell_source": "bone_marrow", "n": 8, "overlap_group": "beta", "overlap_rank": 2},
    {"study": "big2021", "arm": "msc_first", "citation": "Big B et al. 2021 Lancet", "design": "randomised-crossover",
         "disease": "mixed", "group": "msc", "cell_source": "bone_marrow", "n": 60, "note": "Outcome is EDSS Plus (a composite)"},
    {"study": "big2021", "arm": "placebo", "citation": "Big B et al. 2021 Lancet", "design": "randomised-crossover",
         "disease": "mixed", "group": "control", "cell_source": "none", "n": 50},
    {"study": "eps2015", "arm": "all", "citation": "Eps E 2015", "design": "single-arm", "disease": "MS", "group": "msc",
         "cell_source": "bone_marrow", "n": 6},
    {"study": "zeta2016", "arm": "all", "citation": "Zeta Z 2016", "design": "single-arm", "disease": "MS", "group": "msc",
         "cell_source": "bone_marrow", "n": 5},
]
EDSS = [
    {"study": "alpha2020", "arm": "msc", "timepoint_months": 6, "n": 4, "change_mean": -0.2, "change_sd": 0.5},
    {"study": "alpha2020", "arm": "sham", "timepoint_months": 6, "n": 4, "change_mean": 0.3, "change_sd": 0.5},
    {"study": "beta2018", "arm": "all", "timepoint_months": 12, "n": 10, "improved": 3, "stable": 5, "worsened": 2},
    {"study": "delta2019", "arm": "all", "timepoint_months": 12, "n": 8, "improved": 2, "stable": 5, "worsened": 1},
    {"study": "eps2015", "arm": "all", "timepoint_months": 12, "n": 6, "improved": 2, "stable": 3, "worsened": 1, "grade": "secondary",
         "secondary_fields": "improved;stable;worsened"},
    {"study": "zeta2016", "arm": "all", "timepoint_months": 12, "n": 5, "baseline_mean": 5.0, "followup_mean": 4.5},
]
SHARED = [{"study": "alpha2020", "arm": "msc", "other_arm": "sham", "patients": 2}]


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    return write_evidence(tmp_path_factory.mktemp("ev"), arms=ARMS, edss=EDSS, shared_patients=SHARED)


#: the spec's formats: means without SDs (zeta2016's row) are not one of them
FORMATS = ["patient", "change", "baseline_followup", "counts"]


def fit_of(evidence, **options):
    options = {"formats": FORMATS, **options}
    spec = spec_from_dict({"name": "EDSS change", "outcome": "edss_change", "covariates": [], "options": options})
    prepared = outcomes.get("edss_change").prepare(spec, evidence)
    return SimpleNamespace(spec=spec, prepared=prepared, notes=list(prepared.notes))


def row(name="msc_effect", informed_by="control", direction="lower_better"):
    return SimpleNamespace(name=name, informed_by=informed_by, direction=direction, point_null=True)


# --------------------------------------------------------------------------------------
# support
# --------------------------------------------------------------------------------------


def test_study_labels_from_citations():
    # the one rule (msc_bayes.evidence.labels, shared with the forest plots): without a citation, from the key
    assert study_label("petrou2020", "Petrou P et al. 2020 Brain 143(12)") == "Petrou 2020"
    assert study_label("bonab2012", "Mohyeddin Bonab M et al. 2012 Curr") == "Mohyeddin Bonab 2012"
    assert study_label("x2000", None) == "X 2000" and study_label("k", "no year here") == "k"


def test_a_control_row_rests_on_the_controlled_study_counting_patients_once(evidence):
    s = sp.support(fit_of(evidence), row(), evidence)
    # 4 + 4 periods, 2 patients in both arms: 6 patients
    assert s["studies"] == ("alpha2020",) and s["arms"] == 2 and s["patients"] == 6
    assert s["rests_on"] == "1 randomised crossover study (Alpha 2020: 2 arms, 6 patients in 8 analysed treatment periods)"
    assert s["dominance"] == "without Alpha 2020 this is the prior"


def test_an_msc_row_rests_on_the_msc_arms(evidence):
    s = sp.support(fit_of(evidence), row("mu", "msc"), evidence)
    # alpha's MSC arm alone holds 4 distinct patients; beta2018 10, eps2015 6 (delta2019 is outranked, zeta2016
    # has no usable format)
    assert s["studies"] == ("alpha2020", "beta2018", "eps2015") and s["arms"] == 3 and s["patients"] == 20
    assert s["rests_on"] == ("3 studies, 3 MSC arms, 20 patients; of the studies 2 single-arm open-label, "
                             "1 randomised crossover")
    assert s["dominance"] == ""


def _table(rows):
    cols = ["family", "scenario", "quantity", "median", sp.LOWER, sp.UPPER, "notes"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_dominance_from_leave_one_out_rows(evidence):
    # base -0.30 (-0.50 to -0.10): half-width 0.20, so a shift above 0.10 dominates
    table = _table([
        ("base", "base", "mu", -0.30, -0.50, -0.10, ""),
        ("leave-one-out", "without alpha2020", "mu", -0.39, -0.59, -0.19, ""),   # shift 0.09: not
        ("leave-one-out", "without beta2018", "mu", -0.41, -0.61, -0.21, ""),    # shift 0.11: dominates
        ("leave-one-out", "without gamma", "mu", -0.25, -0.50, 0.01, ""),        # includes 0 now
    ])
    s = sp.support(fit_of(evidence), row("mu", "msc"), evidence, sensitivity=table)
    assert "Alpha 2020" not in s["dominance"]
    assert "without Mohyeddin Beta 2018 the median moves from −0.30 to −0.41" in s["dominance"]
    assert "without gamma the interval includes 0 (−0.50 to 0.01)" in s["dominance"]


# --------------------------------------------------------------------------------------
# left out
# --------------------------------------------------------------------------------------


def test_left_out_reasons(evidence):
    fit = fit_of(evidence, exclude_secondary=True)
    reasons = {(x.study, x.arm): x for x in lo.left_out([SimpleNamespace(fit=fit)], evidence)}
    assert set(reasons) == {("delta2019", "all"), ("big2021", "msc_first"), ("big2021", "placebo"),
                            ("eps2015", "all"), ("zeta2016", "all")}
    big = reasons[("big2021", "msc_first")]
    assert big.reason == "no EDSS numbers in the sources read"
    assert big.note == "Outcome is EDSS Plus (a composite)"
    assert big.n == 60 and big.outcome == "edss_change"
    assert reasons[("big2021", "placebo")].reason == "no EDSS numbers in the sources read"
    assert reasons[("delta2019", "all")].reason == "left out as an overlapping report: beta keeps beta2018:all (rank 1)"
    assert reasons[("eps2015", "all")].reason == "secondary sources only, left out by exclude_secondary"
    assert reasons[("zeta2016", "all")].reason.startswith("EDSS rows present but in no format the model uses")
    assert "5 → 4.5" in reasons[("zeta2016", "all")].reason  # what the row reports, as describe writes it


def test_the_secondary_arm_is_used_without_the_option(evidence):
    used = {x.study for x in lo.left_out([fit_of(evidence)], evidence)}
    assert "eps2015" not in used and "delta2019" in used


def test_study_sizes_count_an_overlapping_combined_arm_once(tmp_path):
    arms = [{"study": "f", "arm": "low", "group": "msc", "n": 10, "overlap_group": "g", "overlap_rank": 1},
            {"study": "f", "arm": "high", "group": "msc", "n": 9, "overlap_group": "g", "overlap_rank": 1},
            {"study": "f", "arm": "both", "group": "msc", "n": 19, "overlap_group": "g", "overlap_rank": 2},
            {"study": "f", "arm": "placebo", "group": "control", "n": 11}]
    assert lo.study_sizes(write_evidence(tmp_path, arms=arms)) == {"f": 30}


# --------------------------------------------------------------------------------------
# the paragraph
# --------------------------------------------------------------------------------------


def finding(quantity, *, outcome="edss_change", est=(-0.49, -0.98, -0.06), p=0.98, scale="num",
            mostly_prior=False, studies=("alpha2020",), contraction=0.95, start="high"):
    cert = Certainty("very low", start, "why", (Downgrade("risk of bias", 1, "r"), Downgrade("inconsistency", 0, "i"),
                                                 Downgrade("imprecision", 2, "p")))
    return Finding(outcome=outcome, outcome_label={"edss_change": "EDSS change", "adverse_events": "Adverse events",
                                                   "mri_activity": "MRI activity"}[outcome],
                   quantity=quantity, label=f"label of {quantity}", unit="EDSS points", scale=scale,
                   estimate=Interval(*est), direction="favours MSC (P = 0.98)" if p else "a risk in MSC arms",
                   p_benefit=p, benefit_text="MSC better", p_important=0.48 if p else None,
                   important_text="a benefit of at least 0.5 EDSS points" if p else "", bayes_factor=2.6,
                   bayes_factor_text="BF10 = 2.6: anecdotal evidence for an effect" if p else "",
                   tau=None, i2=None, prediction=None, studies=studies, arms=3, patients=48,
                   rests_on="1 randomised crossover study (Alpha 2020: 3 arms, 48 patients)",
                   dominance="without Alpha 2020 this is the prior", contraction=contraction,
                   mostly_prior=mostly_prior, certainty=cert)


FINDINGS = (
    finding("msc_effect"),
    finding("route_contrast[IT vs IV]", est=(-0.05, -0.29, 0.18), p=0.68, studies=("a", "b"), start="low"),
    finding("risk_pooled_event[serious_ae]", outcome="adverse_events", est=(0.0123, 0.0011, 0.0601), p=None,
            scale="risk", studies=("a", "b"), start="low"),
    finding("msc_effect", outcome="adverse_events", est=(0.2047, -1.5891, 2.1142), p=0.42, mostly_prior=True,
            contraction=0.11),
)
SENSITIVITY = {"edss_change": _table([
    ("base", "base", "msc_effect", -0.49, -0.98, -0.06, ""),
    ("prior", "a", "msc_effect", -0.4, -0.9, -0.01, ""),
    ("prior", "b", "msc_effect", -0.4, -0.9, 0.02, ""),
    ("evidence", "c", "msc_effect", -0.4, -0.9, -0.2, ""),
])}
LEFT = (LeftOut("big2021", "msc_first", "edss_change", "no EDSS numbers in the sources read", 60, "x"),
        LeftOut("big2021", "placebo", "edss_change", "no EDSS numbers in the sources read", 50))


def _numbers(text: str) -> list[str]:
    return re.findall(r"[−-]?\d+(?:\.\d+)?%?", text)


def test_every_number_of_the_paragraph_is_a_findings_number():
    text = tx.paragraph(FINDINGS, left=LEFT, sensitivity=SENSITIVITY, sizes={"big2021": 110},
                        labels={"big2021": "Big 2021"})
    allowed = {"95%", "0", "2", "3", "110", "2021"}  # the interval, "excludes 0", k of m, the left-out study
    for f in FINDINGS:
        allowed |= set(_numbers(interval(f.estimate.median, f.estimate.lower, f.estimate.upper, f.scale)))
        allowed |= set(_numbers(prob(f.p_important))) if f.p_important is not None else set()
        allowed |= {number(f.contraction)}
        for words in (f.rests_on, f.dominance, f.direction, f.important_text, f.bayes_factor_text, f.unit, f.label):
            allowed |= set(_numbers(words))
    found = _numbers(text)
    assert found and set(found) <= allowed, set(found) - allowed
    main = FINDINGS[0]
    assert text.startswith("The one randomised comparison favours MSC (P = 0.98): label of msc_effect, −0.49 "
                           "(95% ETI −0.98 to −0.06) EDSS points.")
    assert "In 2 of 3 sensitivity scenarios" in text  # a and c exclude 0, b does not
    assert "Certainty: very low (rated down for risk of bias and imprecision)" in text
    assert main.dominance in text
    assert "1.2% (95% ETI 0.11% to 6.0%)" in text and "not the same as zero risk" in text
    assert "2 study arms in the evidence contribute nothing to EDSS change" in text and "Big 2021 (n = 110" in text


def test_mostly_prior_findings_are_the_priors_not_findings():
    text = tx.paragraph(FINDINGS, left=LEFT, sensitivity=SENSITIVITY)
    prior = FINDINGS[3]
    assert f"Mostly the prior's, not findings: Adverse events, {prior.label} (contraction 0.11)" in text
    for v in (prior.estimate.median, prior.estimate.lower, prior.estimate.upper):
        assert number(v) not in text


def test_route_contrast_including_zero_is_what_cannot_be_said():
    text = tx.paragraph(FINDINGS)
    assert "cannot say" in text and "label of route_contrast[IT vs IV] −0.05 (95% ETI −0.29 to 0.18)" in text


def test_every_edss_finding_mostly_prior():
    only = (finding("msc_effect", mostly_prior=True),)
    text = tx.paragraph(only)
    assert text.startswith("Every EDSS finding is mostly its prior's") and "−0.49" not in text


def _other(outcome, label, quantity, *, p, scale="num", mostly_prior=False, est=(0.41, 0.12, 0.73)):
    f = finding(quantity, est=est, p=p, scale=scale, mostly_prior=mostly_prior, start="low")
    return replace(f, outcome=outcome, outcome_label=label, unit="units of y", label=f"label of {quantity}",
                   direction="favours MSC (P = 0.99)" if p else "a rate in MSC arms (no comparison)")


def test_without_edss_the_first_other_outcome_answers_first():
    """An effect-size or event-rate report opens with its own first finding, not an empty paragraph; adverse
    events and MRI keep their own sentences and never open it."""
    effect = _other("effect_size", "Coaching", "mu", p=0.99)
    text = tx.paragraph((FINDINGS[2], effect))
    assert text.startswith("The one study favours MSC (P = 0.99): label of mu, 0.41 (95% ETI 0.12 to 0.73) units of y.")
    assert "Safety:" in text
    rate = _other("event_rates", "Event rates", "rate_pooled", p=None, scale="rate", est=(5.2, 1.3, 21.0))
    assert tx.paragraph((rate,)).startswith("Event rates: label of rate_pooled, 5.2 (95% ETI 1.3 to 21) units of y.")
    assert tx.paragraph((_other("effect_size", "Coaching", "mu", p=0.6, mostly_prior=True),)).startswith(
        "Every finding on Coaching is mostly its prior's")
    assert tx.primary_outcome((FINDINGS[2],)) is None and tx.paragraph((FINDINGS[2],)).startswith("Safety:")
