"""msc_bayes.numbers: the one set of rules for writing numbers (findings, figures and report share it), and
msc_bayes.evidence.labels: the one study label."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from msc_bayes import numbers as nb
from msc_bayes.evidence.labels import study_label, study_labels

M = "\u2212"


def test_a_true_minus_sign_and_never_minus_zero():
    assert nb.fmt(-0.31) == f"{M}0.31" and nb.fmt(-0.001) == "0.00" and nb.fmt(math.nan) == "NA"
    assert nb.number(-0.049) == f"{M}0.049"  # below 0.1: 2 significant digits
    assert nb.number(-0.0001, "log_odds_ratio") == "0.00"
    assert "-" not in nb.interval(-0.5, -1.0, -0.1) + nb.span(-0.02, -0.01) + nb.signed_g(-2) + nb.sig3(-0.3571)


def test_one_interval_rule_for_its_median_and_ends():
    assert nb.interval(0.014, -0.0044, 0.038) == f"0.014 ({M}0.0044 to 0.038)"  # every end below 0.1
    assert nb.interval(-0.49, -0.98, -0.06, label="95% ETI") == f"{M}0.49 (95% ETI {M}0.98 to {M}0.06)"
    assert nb.span(0.05, 0.2) == "0.05 to 0.20"  # one end at or above 0.1: decimals for both
    text = nb.interval(0.0, -0.7, 0.7, "log_odds_ratio")
    assert text == (f"0.00 ({M}0.70 to 0.70), i.e. odds ratio 1.00 ({math.exp(-0.7):.2f} to "
                    f"{math.exp(0.7):.2f})")


@pytest.mark.parametrize(("p", "text"), [
    (0, "0%"), (0.0042, "0.42%"), (0.005, "0.50%"), (0.00996, "1.0%"), (0.0123, "1.2%"), (0.252, "25.2%"),
])
def test_risks_in_percent(p, text):
    assert nb.risk(p) == text == nb.number(p, "risk")


def test_risk_digits_above_one_percent():
    assert nb.risk(0.05, digits=2) == "5.00%" and nb.risk(0.004, digits=2) == "0.40%"


@pytest.mark.parametrize(("p", "text"), [
    (0.12, "0.12"), (0.995, "0.995"), (0.004, "0.004"), (0.999, "0.999"), (0.9996, "> 0.999"), (0.0004, "< 0.001"),
])
def test_probabilities_never_read_as_certain(p, text):
    assert nb.prob(p) == text


def test_p_equals_has_no_equals_before_a_bound():
    assert nb.p_equals(0.95) == "P = 0.95" and nb.p_equals(0.9999) == "P > 0.999"
    assert nb.p_equals(0.3, "benefit") == "P(benefit) = 0.30"


def test_plural():
    assert nb.plural(1, "divergent transition") == "1 divergent transition"
    assert nb.plural(0, "study", "studies") == "0 studies"


def test_study_label_from_citation_then_key():
    assert study_label("petrou2020", "Petrou P et al. 2020 Brain 143(12)") == "Petrou 2020"
    assert study_label("bonab2012", "Mohyeddin Bonab M, et al. 2012 Curr") == "Mohyeddin Bonab 2012"
    assert study_label("karussis_2010b", None) == "Karussis 2010b"
    assert study_label("k", "") == "k"


def test_study_labels_tell_alike_studies_apart():
    arms = pd.DataFrame({"study": ["a2020", "a2020", "b2020"],
                         "citation": ["Smith J et al. 2020 X", "Smith J et al. 2020 X", "Smith K et al. 2020 Y"]})
    assert study_labels(arms) == {"a2020": "Smith 2020 (a2020)", "b2020": "Smith 2020 (b2020)"}


def test_a_stated_probability_has_no_equals_before_a_bound():
    assert nb.stated("P(risk > 10%)", 0.42) == "P(risk > 10%) = 0.42"
    assert nb.stated("P(risk > 10%)", 0.0001) == "P(risk > 10%) < 0.001"
