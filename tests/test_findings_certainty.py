"""The certainty rules of msc_bayes.findings.certainty: each downgrade triggered and not triggered at its
boundary, on hand-made rows, arms and numbers (no MCMC)."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict

from msc_bayes.findings import certainty as ct
from msc_bayes.findings.base import Interval
from msc_bayes.spec import Prior

SEED = 20261121


def row(**kw):
    base = {"name": "msc_effect", "informed_by": "control", "direction": "lower_better", "point_null": True,
                "important": "mcid", "important_side": "benefit", "scale": "num"}
    return SimpleNamespace(**{**base, **kw})


def fit(*, outcome="edss_change", mcid=0.5, carry_mode="estimate", carry=None):
    """A fit with a spec (options, priors) and, when `carry` draws are given, a carry_over posterior."""
    post = {"mu": np.zeros((2, 50))}
    if carry is not None:
        post["carry_over"] = carry
    spec = SimpleNamespace(outcome=outcome, options=MappingProxyType({"mcid": mcid, "carry_over": carry_mode}),
                           priors=MappingProxyType({"carry_over": Prior("Beta", {"alpha": 1, "beta": 1})}), name=outcome)
    return SimpleNamespace(tree=from_dict({"posterior": post}), spec=spec)


def arms(rows):
    cols = {"study": "s", "arm": "a", "group": "msc", "design": "single-arm", "disease": "SPMS", "cell_source": "bone_marrow",
                "patients": 10.0, "N": 10, "periods_after_msc": np.nan, "timepoint_months": 12.0, "study_label": "S 2020"}
    return pd.DataFrame([{**cols, **r} for r in rows])


def nums(est, pred=None, mostly_prior=False, contraction=0.9):
    return {"estimate": Interval(*est), "prediction": None if pred is None else Interval(*pred),
            "tau": Interval(0.2, 0.05, 0.5), "mostly_prior": mostly_prior, "contraction": contraction}


# --------------------------------------------------------------------------------------
# Start and grade
# --------------------------------------------------------------------------------------


def test_start_high_only_for_randomised_control_comparisons():
    randomised = arms([{"design": "randomised-crossover", "group": g} for g in ("msc", "control")])
    assert ct.start_of(row(), randomised)[0] == "high"
    mixed = arms([{"design": "randomised"}, {"design": "non-randomised-controlled", "study": "t"}])
    assert ct.start_of(row(), mixed)[0] == "low"
    assert ct.start_of(row(informed_by="msc"), randomised)[0] == "low"


def test_grade_counts_levels_and_never_goes_below_very_low():
    d = [ct.Downgrade("imprecision", 1, ""), ct.Downgrade("indirectness", 0, "")]
    assert ct.grade_of("high", d) == "moderate"
    assert ct.grade_of("low", d) == "very low"
    assert ct.grade_of("low", [ct.Downgrade("imprecision", 2, "")] * 3) == "very low"
    assert ct.grade_of("high", []) == "high"


# --------------------------------------------------------------------------------------
# Risk of bias
# --------------------------------------------------------------------------------------


def test_single_arm_share_at_the_boundary():
    at = arms([{"patients": 50.0}, {"design": "randomised", "patients": 50.0, "study": "t"}])
    below = arms([{"patients": 49.0}, {"design": "randomised", "patients": 51.0, "study": "t"}])
    r = row(informed_by="msc")
    assert ct.SINGLE_ARM_SHARE == 0.5
    down = ct.risk_of_bias(r, at, fit())
    assert down.levels == 1 and "50 of 100 patients (50%)" in down.reason
    assert ct.risk_of_bias(r, below, fit()).levels == 0


def test_carry_over_whose_posterior_is_its_prior_rates_down_and_says_so():
    rng = np.random.default_rng(SEED)
    flat = rng.uniform(size=(4, 500))  # the Beta(1, 1) prior itself: contraction ~ 0
    a = arms([{"group": "control", "design": "randomised-crossover", "periods_after_msc": 16, "N": 32, "arm": "sham"},
              {"design": "randomised-crossover", "arm": "msc"}])
    down = ct.risk_of_bias(row(), a, fit(carry=flat))
    assert down.levels == 1 and "16 of 32 control periods" in down.reason and "is its prior" in down.reason
    narrow = 0.5 + 0.01 * rng.standard_normal((4, 500))  # well informed: contraction ~ 1
    informed = ct.risk_of_bias(row(), a, fit(carry=narrow))
    assert informed.levels == 1 and "is estimated" in informed.reason
    fixed = ct.risk_of_bias(row(), a, fit(carry_mode="none"))
    assert fixed.levels == 1 and "fixed at none" in fixed.reason


def test_no_period_after_msc_no_downgrade():
    a = arms([{"group": "control", "design": "randomised", "arm": "placebo"}, {"design": "randomised"}])
    assert ct.risk_of_bias(row(), a, fit()).levels == 0


# --------------------------------------------------------------------------------------
# Inconsistency
# --------------------------------------------------------------------------------------


def test_one_study_is_not_assessable_for_inconsistency():
    down = ct.inconsistency(row(), nums((-0.5, -0.9, -0.1), (-2, -3, 1)), 1, fit())
    assert down.levels == 0 and "not assessable with 1 study" in down.reason


@pytest.mark.parametrize(("pred", "levels"), [
    ((-0.3, -0.8, 0.49), 0),   # the estimate already crosses -0.5 and 0; +0.5 is outside the prediction
    ((-0.3, -0.8, 0.51), 1),   # a new study could show an important harm the estimate's interval never reaches
])
def test_prediction_interval_beyond_a_threshold_the_estimate_does_not_reach(pred, levels):
    r = row(informed_by="msc", point_null=False)
    down = ct.inconsistency(r, nums((-0.2, -0.6, 0.2), pred), 3, fit())
    assert down.levels == levels, down.reason


def test_prediction_crossing_zero_rates_down_only_when_the_estimate_excludes_it():
    r = row(informed_by="msc", important=None)
    assert ct.inconsistency(r, nums((-0.3, -0.5, -0.01), (-0.3, -0.9, 0.01)), 4, fit()).levels == 1
    assert ct.inconsistency(r, nums((-0.3, -0.5, -0.01), (-0.3, -0.9, -0.001)), 4, fit()).levels == 0


# --------------------------------------------------------------------------------------
# Imprecision
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("est", "levels"), [
    ((-0.7, -0.9, -0.51), 0),  # wholly beyond the MCID
    ((-0.7, -0.9, -0.49), 1),  # crosses the MCID
    ((-0.1, -0.4, 0.1), 1),    # crosses 0 only
    ((0.0, -0.51, 0.51), 2),   # an important benefit and an important harm
])
def test_imprecision_by_the_interval(est, levels):
    down = ct.imprecision(row(), nums(est), ct.OPTIMAL_INFORMATION_SIZE, fit())
    assert down.levels == levels, down.reason


def test_optimal_information_size_at_the_boundary():
    est = nums((-0.7, -0.9, -0.51))
    assert ct.imprecision(row(), est, ct.OPTIMAL_INFORMATION_SIZE, fit()).levels == 0
    low = ct.imprecision(row(), est, ct.OPTIMAL_INFORMATION_SIZE - 1, fit())
    assert low.levels == 1 and f"{ct.OPTIMAL_INFORMATION_SIZE - 1} patients" in low.reason
    both = ct.imprecision(row(), nums((0.0, -0.6, 0.6)), 10, fit())
    assert both.levels == ct.MAX_LEVELS  # 2 + 1, capped


def test_the_mcid_comes_from_the_spec_option():
    est = nums((-0.7, -0.9, -0.55))
    assert ct.imprecision(row(), est, 1000, fit(mcid=0.5)).levels == 0
    assert ct.imprecision(row(), est, 1000, fit(mcid=0.6)).levels == 1


def test_a_risk_is_judged_against_its_important_risk():
    r = row(name="risk_pooled", informed_by="msc", direction="none", point_null=False, important=0.05,
            important_side="harm", scale="risk")
    assert ct.thresholds(r, fit()) == {"the important risk": 0.05}
    assert ct.imprecision(r, nums((0.01, 0.001, 0.049)), 1000, fit()).levels == 0
    down = ct.imprecision(r, nums((0.01, 0.001, 0.051)), 1000, fit())
    assert down.levels == 1 and "5.00%" in down.reason


# --------------------------------------------------------------------------------------
# Indirectness and publication bias
# --------------------------------------------------------------------------------------


def test_nmo_share_at_the_boundary():
    at = arms([{"disease": "NMO", "patients": 25.0}, {"patients": 75.0, "study": "t"}])
    below = arms([{"disease": "NMOSD", "patients": 24.0}, {"patients": 76.0, "study": "t"}])
    assert ct.indirectness(row(), nums((0, -1, 1)), at, "adverse_events").levels == 1
    down = ct.indirectness(row(), nums((0, -1, 1)), below, "adverse_events")
    assert down.levels == 0 and "24 of 100 patients (24%)" in down.reason


def test_non_classical_products_and_umbilical_cord():
    placenta = arms([{"cell_source": "placenta", "patients": 12.0}, {"patients": 4.0, "group": "control",
                                                                     "cell_source": "none"}])
    assert ct.indirectness(row(), nums((0, -1, 1)), placenta, "adverse_events").levels == 1
    cord = arms([{"cell_source": "umbilical_cord", "patients": 12.0}])
    assert ct.indirectness(row(), nums((0, -1, 1)), cord, "adverse_events").levels == 0


def test_short_edss_follow_up_at_the_boundary():
    six = arms([{"timepoint_months": 6.0}])
    twelve = arms([{"timepoint_months": ct.SHORT_FOLLOWUP_MONTHS}])
    assert ct.indirectness(row(), nums((0, -1, 1)), six, "edss_change").levels == 1
    assert ct.indirectness(row(), nums((0, -1, 1)), twelve, "edss_change").levels == 0
    assert ct.indirectness(row(), nums((0, -1, 1)), six, "adverse_events").levels == 0  # EDSS only


def test_surrogate_and_mostly_prior_add_up_to_at_most_two():
    a = arms([{"cell_source": "placenta"}])
    down = ct.indirectness(row(), nums((0, -1, 1), mostly_prior=True, contraction=0.18), a, "mri_activity")
    assert down.levels == ct.MAX_LEVELS and "surrogate" in down.reason and "contraction 0.18" in down.reason
    assert ct.indirectness(row(), nums((0, -1, 1), mostly_prior=True), arms([{}]), "adverse_events").levels == 1


def test_publication_bias_is_never_rated_down_and_says_why():
    few = ct.publication_bias(ct.PUBLICATION_BIAS_STUDIES - 1)
    assert few.levels == 0 and "not assessable" in few.reason and "fewer than 10" in few.reason
    many = ct.publication_bias(ct.PUBLICATION_BIAS_STUDIES)
    assert many.levels == 0 and "not assessable" not in many.reason


def test_rules_text_names_every_threshold():
    text = ct.rules_text()
    for value in (f"{ct.SINGLE_ARM_SHARE:.0%}", f"{ct.INDIRECT_SHARE:.0%}", str(ct.OPTIMAL_INFORMATION_SIZE),
                  f"{ct.SHORT_FOLLOWUP_MONTHS:g} months", str(ct.PUBLICATION_BIAS_STUDIES), "64:1283"):
        assert value in text


def test_certainty_reports_all_five_domains():
    a = arms([{"group": "control", "design": "randomised", "arm": "placebo"}, {"design": "randomised"}])
    c = ct.certainty(nums((-0.7, -0.9, -0.55)), {"studies": ("s",), "patients": 500}, None, fit(), row(), arms=a)
    assert [d.domain for d in c.downgrades] == ["risk of bias", "inconsistency", "imprecision", "indirectness",
                                               "publication bias"]
    assert (c.start, c.grade) == ("high", "high")
