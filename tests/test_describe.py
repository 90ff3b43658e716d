"""Tests for msc_bayes.evidence.describe: the per-arm table reproduces the sources' own numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from msc_bayes.evidence import load_evidence
from msc_bayes.evidence.describe import describe, edss_text

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return describe(load_evidence(DATA))


def row(table: pd.DataFrame, study: str, arm: str = "all") -> pd.Series:
    hits = table[(table["study"] == study) & (table["arm"] == arm)]
    assert len(hits) == 1, hits
    return hits.iloc[0]


def test_one_row_per_arm(table):
    ev = load_evidence(DATA)
    assert list(zip(table.study, table.arm)) == list(zip(ev.arms.study, ev.arms.arm))
    assert {"study", "arm", "n", "route", "courses", "edss", "adverse_events", "mri", "grade"} <= set(table.columns)


def test_petrou2021_row(table):
    r = row(table, "petrou2021")
    assert "6.75 ± 0.68 → 6.42 ± 0.84" in r.edss
    assert "improved 10" in r.edss and "stable or improved 22" in r.edss and "of 24" in r.edss
    assert "serious_ae (related) 0/24" in r.adverse_events
    assert (r.n, r.route, r.courses, r.followup_months, r.grade) == (24, "IT+IV", "1-9", 27.8, "primary")


def test_iacobaeus2019_row(table):
    r = row(table, "iacobaeus2019")
    assert "stable 6 of 6" in r.edss and "worsened 3 of 5" in r.edss
    assert r.edss.index("12 weeks") < r.edss.index("48 weeks")  # in time order
    assert "improved" not in r.edss  # not reported: not shown as zero
    assert "new_t2 1/6" in r.mri and "new_t2 3/5" in r.mri
    assert (r.n, r.route, r.courses) == (7, "IV", "1")


@pytest.mark.parametrize("arm, disease", [("nmo", "NMO"), ("rrms", "RRMS")])
def test_lu2020_rows(table, arm, disease):
    r = row(table, "lu2020", arm)
    assert (r.n, r.route, r.disease, r.followup_months) == (5, "IT+IV", disease, 120)
    assert "intolerable_ae (vague words) 0/5" in r.adverse_events  # 'none of the intolerant adverse events'
    assert r.edss == ""  # no EDSS reported: nothing invented


def test_overlap_and_missing_route_are_shown(table):
    assert row(table, "lu2020", "nmo").overlap == "lu_nmo #1"
    assert row(table, "lu2013", "nmo").route == "NR" and row(table, "lu2013", "nmo").courses == "NR"


def test_change_rows_and_secondary_grade(table):
    assert "change -0.29 ± 0.3" in row(table, "petrou2020", "msc_it").edss
    assert "change +0.3 ± 0.4" in row(table, "petrou2020", "sham").edss
    assert row(table, "bonab2007").grade == "secondary"


def test_edss_text_with_ci_and_se():
    r = pd.Series({"baseline_mean": float("nan"), "baseline_sd": float("nan"), "followup_mean": float("nan"),
                   "followup_sd": float("nan"), "change_mean": -0.25, "change_sd": float("nan"), "change_se": 0.1,
                   "change_ci_lower": -0.45, "change_ci_upper": -0.05, "change_ci_level": 0.95,
                   "improved": pd.NA, "stable": pd.NA, "worsened": pd.NA, "stable_or_improved": pd.NA,
                   "stable_or_worsened": pd.NA, "threshold": float("nan"), "timepoint_text": None,
                   "timepoint_months": 6.0, "n": 20})
    text = edss_text(r)
    assert text == "6 months, n=20: change -0.25 (95% CI -0.45 to -0.05)"
    no_ci = r.copy()
    no_ci["change_ci_lower"] = no_ci["change_ci_upper"] = float("nan")
    assert edss_text(no_ci) == "6 months, n=20: change -0.25 SE 0.1"


def test_plain_effect_size_table_is_described(tmp_path):
    (tmp_path / "edss.csv").write_text("study,arm,timepoint_months,n,change_mean,change_se\n"
                                       "a2001,x,6,20,-0.2,0.1\nb2002,x,12,15,0.1,0.15\n")
    t = describe(load_evidence(tmp_path))
    assert list(t.study) == ["a2001", "b2002"] and list(t.route) == ["NR", "NR"]
    assert t.edss.iloc[0] == "6 months, n=20: change -0.2 SE 0.1"
