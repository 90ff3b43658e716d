"""Tests for msc_bayes.evidence.describe: the per-arm table reproduces the sources' own numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from msc_bayes.cli import main
from msc_bayes.evidence import load_evidence
from msc_bayes.evidence.describe import arm_text, describe, edss_text
from msc_bayes.reporting.views import evidence_table

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


# --------------------------------------------------------------------------------------
# What the sources do not give reads "not reported", never nan (#16)
# --------------------------------------------------------------------------------------

MISSING_WORDS = re.compile(r"\bnan\b|<NA>|\bNone\b")  # as a word: 'fernandez2018' is a study


@pytest.fixture
def sparse(tmp_path) -> Path:
    """arms.csv of only study and arm; counts, events and exposure, effect sizes with se, sd+n or a CI."""
    files = {
        "arms": "study,arm\na2001,x\nb2002,x\nc2003,x\n",
        "adverse_events": "study,arm,event,patients_with_event,n_at_risk,events,exposure,exposure_unit\n"
                          "a2001,x,serious_ae,,20,3,12.5,person_years\nb2002,x,serious_ae,1,15,2,,\n",
        "mri": "study,arm,event,n_at_risk,events,timepoint_months\na2001,x,new_t2,20,4,12\n",
        "effect_sizes": "study,arm,y,se,sd,n,ci_lower,ci_upper,ci_level,timepoint_months\n"
                        "a2001,x,-0.3,0.1,,,,,,\nb2002,x,0.4,,,,0.1,0.7,,6\nc2003,x,1.5,,2.5,12,,,,\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_events_exposure_and_effect_sizes_are_described_as_reported(sparse):
    t = describe(load_evidence(sparse)).set_index("study")
    assert t.loc["a2001", "adverse_events"] == "serious_ae 3 events in 12.5 person-years of 20 at risk"
    assert t.loc["b2002", "adverse_events"] == "serious_ae 1/15, 2 events"  # patients and events: both shown
    assert t.loc["a2001", "mri"] == "new_t2 4 events of 20 at risk at 12 mo"
    assert t.loc["a2001", "effect_sizes"] == "y -0.3 (SE 0.1)"
    assert t.loc["b2002", "effect_sizes"] == "y 0.4 (95% CI 0.1 to 0.7) at 6 months"  # the default level, said
    assert t.loc["c2003", "effect_sizes"] == "y 1.5 (SD 2.5, n 12)"


def test_a_missing_n_or_follow_up_reads_not_reported(sparse, capsys):
    t = describe(load_evidence(sparse)).set_index("study")
    assert pd.isna(t.loc["a2001", "followup_months"])  # missing stays missing in the table
    lines = {s: arm_text(r) for s, r in zip(t.index, t.itertuples(index=False))}
    assert "follow-up not reported" in lines["a2001"] and "disease" not in lines["a2001"]
    assert main(["describe", "--data", str(sparse)]) == 0
    out = capsys.readouterr().out
    assert "effect size: y 1.5 (SD 2.5, n 12)" in out and "follow-up not reported" in out
    assert not MISSING_WORDS.search(out), out


def test_an_arm_without_any_count_says_n_not_reported(tmp_path, capsys):
    (tmp_path / "effect_sizes.csv").write_text("study,arm,y,se\na2001,x,-0.3,0.1\n", encoding="utf-8")
    t = describe(load_evidence(tmp_path))
    assert pd.isna(t["n"].iloc[0])
    assert arm_text(t.iloc[0]).startswith("msc, not reported, n not reported, route not reported, courses not "
                                          "reported, follow-up not reported")
    view = evidence_table(t, [])
    row = dict(zip(view["columns"], view["rows"][0]))
    assert (row["n"], row["disease"], row["follow-up (months)"], row["effect sizes"]) == ("NR", "NR", "NR",
                                                                                         "y -0.3 (SE 0.1)")
    assert main(["describe", "--data", str(tmp_path)]) == 0
    assert not MISSING_WORDS.search(capsys.readouterr().out)


def test_no_text_cell_of_the_bundled_evidence_holds_nan(table):
    text = table.drop(columns=["n", "followup_months"]).astype(str)
    assert not text.apply(lambda c: c.str.contains(MISSING_WORDS)).any().any()
    assert "effect sizes" not in evidence_table(table, [])["columns"]  # no arm has one: no empty column


def test_a_control_arm_has_no_route_or_courses():
    """A control arm received no MSC: describe names no route or courses for it (not 'route not reported')."""
    t = describe(load_evidence(DATA))
    sham = t[(t["study"] == "petrou2020") & (t["arm"] == "sham")].iloc[0]
    line = arm_text(sham)
    assert line.startswith("control, progressive, n=32, follow-up 6 months") and "route" not in line
