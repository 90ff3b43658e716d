"""The audit's corrections of the bundled evidence (issue #14): each corrected value with its flag.

Each test reads data/*.csv as text (no type guessing) and checks a value together with its
provenance (derived formula, secondary field, grade, location), so that a slip in either comes
back red. The last tests check the bounds every count has to respect against arms.csv.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
PETROU = "petrou2020"


@cache
def table(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.csv", dtype=str, keep_default_na=False)


def row(name: str, **match: str) -> pd.Series:
    """The one row of table `name` whose cells equal `match`."""
    df = table(name)
    hit = df[(df[list(match)] == pd.Series(match)).all(axis=1)]
    assert len(hit) == 1, f"{name}: {len(hit)} rows match {match}"
    return hit.iloc[0]


def derived(r: pd.Series) -> dict[str, str]:
    """'n: formula; x: formula' -> {'n': 'formula', 'x': 'formula'}."""
    out = {}
    for entry in r["derived"].split(";"):
        if ":" in entry:
            col, formula = entry.split(":", 1)
            out[col.strip()] = formula.strip()
    return out


def fields(text: str) -> set[str]:
    return {f.strip() for f in text.split(";") if f.strip()}


# 1. shared patients of Petrou 2020
@pytest.mark.parametrize(("arm", "other", "patients", "groups"), [
    ("msc_it", "sham", 16, "1B + 3A = 8 + 8"), ("msc_iv", "sham", 16, "2B + 3B = 8 + 8"),
    ("msc_it", "msc_it", 8, "1A = 8"), ("msc_iv", "msc_iv", 8, "2A = 8")])
def test_petrou2020_shared_patients(arm, other, patients, groups):
    r = row("shared_patients", study=PETROU, arm=arm, other_arm=other)
    assert int(r["patients"]) == patients
    assert groups in derived(r)["patients"] and "registry" in derived(r)["patients"]
    assert r["grade"] == "primary" and r["location"] == "registry NCT02166021 (group sizes)"
    assert "planned group size" in r["note"]


def test_shared_patients_only_petrou2020_and_no_it_iv_pair():
    sp = table("shared_patients")
    assert set(sp["study"]) == {PETROU} and len(sp) == 4
    pairs = {frozenset((a, b)) for a, b in zip(sp["arm"], sp["other_arm"])}
    assert frozenset(("msc_it", "msc_iv")) not in pairs  # IT and IV share no patient
    assert not sp.duplicated(["study", "arm", "other_arm"]).any()


# 2. Petrou 2020's arms count treatment periods; the sham arm's carry-over periods
@pytest.mark.parametrize("arm", ["msc_it", "msc_iv", "sham"])
def test_petrou2020_arm_n_is_treatment_periods(arm):
    r = row("arms", study=PETROU, arm=arm)
    assert int(r["n"]) == 32
    assert "16 first-cycle" in derived(r)["n"] and "+ 8" in derived(r)["n"] and "registry" in derived(r)["n"]
    assert "periods" in r["label"] and "periods" in r["note"]


def test_periods_after_msc():
    arms = table("arms")
    cols = list(arms.columns)
    assert cols.index("periods_after_msc") == cols.index("n") + 1
    sham = row("arms", study=PETROU, arm="sham")
    assert int(sham["periods_after_msc"]) == 16
    assert "1B + 2B = 8 + 8" in derived(sham)["periods_after_msc"]
    others = arms[~((arms["study"] == PETROU) & (arms["arm"] == "sham"))]
    assert (others["periods_after_msc"] == "").all()


# 3. Petrou 2020's EDSS denominators
@pytest.mark.parametrize(("arm", "n3", "n6"), [("msc_it", 31, 30), ("msc_iv", 29, 31), ("sham", 30, 31)])
def test_petrou2020_edss_n(arm, n3, n6):
    r3 = row("edss", study=PETROU, arm=arm, timepoint_months="3")
    r6 = row("edss", study=PETROU, arm=arm, timepoint_months="6")
    assert int(r3["n"]) == n3 and derived(r3)["n"] == "treatment-failure denominator at 3 months (Table 3)"
    assert int(r6["n"]) == n6 and derived(r6)["n"] == "treatment-failure denominator at 6 months (Table 3)"


@pytest.mark.parametrize(("arm", "n"), [("msc_it", 30), ("msc_iv", 31), ("sham", 31)])
def test_petrou2020_ae_n_at_risk_flagged(arm, n):
    r = row("adverse_events", study=PETROU, arm=arm)
    assert int(r["n_at_risk"]) == n and "6 months (Table 3)" in derived(r)["n_at_risk"]
    assert "none in the trial" in derived(r)["patients_with_event"]


# 4. The Tehran group
def test_tehran_overlap_group():
    bonab2012 = row("arms", study="bonab2012", arm="all")
    assert bonab2012["overlap_group"] == "" and bonab2012["overlap_rank"] == ""
    assert "sensitivity" in bonab2012["note"] and "4.0-6.5" in bonab2012["note"]
    ranks = {(s, a): row("arms", study=s, arm=a)["overlap_rank"]
             for s, a in [("bonab2005", "pilot"), ("sahraian2014", "spms"), ("sahraian2014", "nmo"),
                          ("bonab2007", "all")]}
    assert ranks == {("bonab2005", "pilot"): "1", ("sahraian2014", "spms"): "1", ("sahraian2014", "nmo"): "1",
                     ("bonab2007", "all"): "2"}
    arms = table("arms")
    assert set(arms.loc[arms["overlap_group"] == "tehran_it", "study"]) == {"bonab2005", "bonab2007", "sahraian2014"}
    assert "same patients" in row("arms", study="bonab2005", arm="pilot")["note"]


# 5. Harris 2018's two-year visit and follow-up
def test_harris2018_two_year_visit_at_30_months():
    harris = table("edss")[table("edss")["study"] == "harris2018"]
    assert list(harris["timepoint_months"]) == ["30"]
    r = harris.iloc[0]
    assert derived(r)["timepoint_months"].startswith("2 years after the third of three treatments")
    assert "6 + 24" in derived(r)["timepoint_months"]
    assert "after the third treatment" in r["timepoint_text"]
    arm = row("arms", study="harris2018", arm="all")
    assert arm["followup_months"] == "30" and "6 + 24" in derived(arm)["followup_months"]
    assert "followup_months" not in fields(arm["secondary_fields"])


# 6. Unsourced denominators
@pytest.mark.parametrize("tp", ["1", "3"])
def test_karussis_early_n_flagged(tp):
    r = row("edss", study="karussis2010", arm="ms", timepoint_months=tp)
    assert r["n"] == "15" and "15 enrolled" in derived(r)["n"] and "not reported" in derived(r)["n"]


def test_fu2016_12_month_n_flagged():
    r = row("edss", study="fu2016", arm="all", timepoint_months="12")
    assert r["n"] == "15" and "15 enrolled" in derived(r)["n"] and "24 months" in derived(r)["n"]


def test_lublin_timepoint_flagged_as_unquoted_extraction_field():
    rows = [row("arms", study="lublin2014", arm=a) for a in ("low_dose", "high_dose", "placebo")]
    rows += [r for _, r in table("mri")[table("mri")["study"] == "lublin2014"].iterrows()]
    assert len(rows) == 7
    for r in rows:
        assert "trial_extraction.csv's followup_months field" in r["note"]
        assert "does not state" in r["note"] and "low" in r["confidence"]
    assert all(r["followup_months"] == "6" for r in rows[:3])
    assert all(r["timepoint_months"] == "6" for r in rows[3:])


def test_li2014_control_n_flagged():
    r = row("arms", study="li2014", arm="control")
    assert r["n"] == "10" and derived(r)["n"] == "23 enrolled - 13 given hUC-MSC"


def test_connick_dose_range_secondary():
    r = row("arms", study="connick2012", arm="all")
    assert "1.1-2.0" in r["dose_text"] and "dose_text" in fields(r["secondary_fields"])
    assert r["dose_per_kg_million"] == "1.6" and "dose_per_kg_million" not in fields(r["secondary_fields"])


# 7. Fu 2016's secondary stable-or-improved count
def test_fu2016_stable_or_improved_secondary():
    r = row("edss", study="fu2016", arm="all", timepoint_months="24")
    assert r["stable_or_improved"] == "15" and r["n"] == "15"
    assert "stable_or_improved" in fields(r["secondary_fields"])
    assert derived(r)["stable_or_improved"] == "100% of 15 (Konen 2022 Table 2)"
    assert "Konen 2022" in r["location"]


# 8. Safety wording
VAGUE = {("bonab2012", "all", "major_ae", "delayed"), ("karussis2010", "ms", "major_ae", "whole"),
         ("odinak2012", "all", "significant_ae", "whole"),
         ("lu2020", "nmo", "intolerable_ae", "whole"), ("lu2020", "rrms", "intolerable_ae", "whole"),
         *(("sahraian2014", a, e, "whole") for a in ("spms", "nmo")
            for e in ("significant_ae", "infection", "neoplasm"))}


def test_vague_safety_words_are_their_own_event_never_serious():
    ae = table("adverse_events")
    vague = ae[ae["wording"] == "vague"]
    assert set(zip(vague["study"], vague["arm"], vague["event"], vague["timing"])) == VAGUE
    assert (vague["serious"] == "").all() and (vague["event"] != "serious_ae").all()
    for study in ("bonab2012", "karussis2010", "odinak2012", "sahraian2014"):
        assert "serious_ae" not in set(ae.loc[ae["study"] == study, "event"])
    assert all("'significant' may qualify all three" in n.lower()
               for n in ae.loc[ae["study"] == "sahraian2014", "note"])


def test_every_ae_row_has_timing_and_wording():
    ae = table("adverse_events")
    assert set(ae["timing"]) <= {"acute", "delayed", "whole"} and (ae["timing"] != "").all()
    assert set(ae["wording"]) <= {"count", "none", "vague"} and (ae["wording"] != "").all()
    counts = ae[ae["wording"] == "count"]
    assert set(zip(counts["study"], counts["event"])) == {("connick2012", "rash"), ("fernandez2018", "serious_ae")}
    assert (counts["patients_with_event"].astype(int) > 0).all()
    none = ae[ae["wording"] == "none"]
    assert (none["patients_with_event"] == "0").all()
    # "no serious adverse events" statements are serious_ae rows with wording none
    explicit = ae[ae["event"] == "serious_ae"]
    assert (explicit["serious"] == "true").all() and set(explicit["wording"]) == {"none", "count"}


def test_lu2020_tumour_formation_is_an_explicit_none_for_neoplasm():
    for arm in ("nmo", "rrms"):
        r = row("adverse_events", study="lu2020", arm=arm, event="neoplasm")
        assert (r["patients_with_event"], r["n_at_risk"], r["wording"], r["serious"]) == ("0", "5", "none", "")
        assert "such as tumor formation" in r["event_text"] and "none in the 10 treated" in derived(r)["patients_with_event"]


def test_well_tolerated_is_no_row():
    ae = table("adverse_events")
    assert not {"iacobaeus2019", "dahbour2017"} & set(ae["study"])
    assert not ae["event_text"].str.contains("tolerated").any()


# 9. Lublin 2014's high-dose MRI activity
def test_lublin_high_dose_t2_gd_increase():
    r = row("mri", study="lublin2014", arm="high_dose", event="t2_and_gd_increase")
    assert (r["patients_with_event"], r["n_at_risk"], r["timepoint_months"]) == ("1", "6", "6")
    assert "arm's n" in derived(r)["n_at_risk"] and "increase in T2 and gadolinium" in r["event_text"]
    assert r["grade"] == "primary"


# 11. Every count within its arm
def _arm_n() -> pd.Series:
    arms = table("arms")
    return arms.set_index(["study", "arm"])["n"].astype(int)


@pytest.mark.parametrize(("name", "column"), [("edss", "n"), ("adverse_events", "n_at_risk"), ("mri", "n_at_risk")])
def test_outcome_n_within_arm_n(name, column):
    df, n = table(name), _arm_n()
    for _, r in df.iterrows():
        assert int(r[column]) <= n[(r["study"], r["arm"])], (name, r["study"], r["arm"])


def test_shared_patients_and_carry_over_within_arm_n():
    n = _arm_n()
    for _, r in table("shared_patients").iterrows():
        assert 0 < int(r["patients"]) <= min(n[(r["study"], r["arm"])], n[(r["study"], r["other_arm"])])
        if r["arm"] == r["other_arm"]:  # two periods each: at most half the arm's periods
            assert 2 * int(r["patients"]) <= n[(r["study"], r["arm"])]
    arms = table("arms")
    after = arms[arms["periods_after_msc"] != ""]
    assert (after["periods_after_msc"].astype(int) <= after["n"].astype(int)).all()
    assert (after["group"] == "control").all()


def test_bundled_data_load_and_validate():
    """The corrected tables pass the package's validation and keep their new columns."""
    from msc_bayes.evidence import load_evidence
    ev = load_evidence(DATA)
    assert len(ev.shared_patients) == len(table("shared_patients")) == 4
    sham = ev.arms[(ev.arms["study"] == PETROU) & (ev.arms["arm"] == "sham")].iloc[0]
    assert sham["periods_after_msc"] == 16
    assert set(ev.adverse_events["wording"]) == {"count", "none", "vague"}
