"""The event models' design rules: periods versus patients, and which safety statements enter.

Periods versus patients: an arm to which m patients contribute two periods (a
shared_patients.csv row with other_arm == arm) enters a binomial unit with n_at_risk - m
patients, its count capped there; a patient in two arms counts in each. Statements: the
option ``statements = "explicit"`` keeps counts and "none" statements (and rows without a
wording) and leaves vague wording out; the methods list the statements that entered.
Fast tests build small tables in a tmp folder; one short fit runs on the bundled data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_evidence

from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import events as ae
from msc_bayes.outcomes import get
from msc_bayes.outcomes.events.wording import statements, statements_text
from msc_bayes.spec import load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[1]


def spec(outcome: str = "adverse_events", **options):
    return spec_from_dict({"outcome": outcome, "covariates": [], "options": options})


def arm(study: str, name: str, n: int, group: str = "msc") -> dict:
    return {"study": study, "arm": name, "group": group, "route": "IT", "administrations": 1, "n": n}


def ae_row(study: str, name: str, y: int, n: int, *, event: str = "serious_ae", wording: str = "",
           words: str = "", timing: str = "", events: str = "") -> dict:
    return {"study": study, "arm": name, "event": event, "event_text": words, "serious": "true",
            "attribution": "any", "patients_with_event": y, "n_at_risk": n, "events": events,
            "timing": timing, "wording": wording}


def crossover(folder: Path, *, shared: bool = True, y_it: int = 0, n_it: int = 30):
    """A crossover (MSC-IT and sham arms of 32 periods each: 8 patients twice on MSC, 16 on both)
    beside a one-arm study."""
    tables = {
        "arms": [arm("x", "msc_it", 32), arm("x", "sham", 32, "control"), arm("s", "all", 10)],
        "adverse_events": [ae_row("x", "msc_it", y_it, n_it), ae_row("x", "sham", 0, 31), ae_row("s", "all", 1, 10)],
    }
    if shared:
        tables["shared_patients"] = [{"study": "x", "arm": "msc_it", "other_arm": "msc_it", "patients": 8},
                                     {"study": "x", "arm": "msc_it", "other_arm": "sham", "patients": 16}]
    return write_evidence(folder, **tables)


def unit(prepared, label: str):
    units = prepared.units.set_index("label")
    return units.loc[label]


# --------------------------------------------------------------------------------------
# periods versus patients
# --------------------------------------------------------------------------------------


def test_an_arm_with_patients_in_two_periods_counts_each_patient_once(tmp_path):
    p = ae.prepare(spec(), crossover(tmp_path))
    it, sham, single = (unit(p, f"{s}:serious_ae") for s in ("x:msc_it", "x:sham", "s:all"))
    assert (it["n"], it["n_periods"], it["patients_two_periods"]) == (30 - 8, 30, 8)
    # a patient in two arms (IT and sham) counts in each: the sham arm and the other study unchanged
    assert (sham["n"], sham["patients_two_periods"]) == (31, 0)
    assert (single["n"], single["patients_with_event"]) == (10, 1)
    assert "x:msc_it:serious_ae: n_at_risk 30 - 8 patients with two periods = 22" in p.notes
    assert sum("patients with two periods" in n for n in p.notes) == 1
    assert "x:msc_it:serious_ae: 30 - 8 = 22" in get("adverse_events").units_text(p.units, spec())


def test_no_shared_patients_no_adjustment(tmp_path):
    p = ae.prepare(spec(), crossover(tmp_path, shared=False))
    assert (p.units["n"] == p.units["n_at_risk"].astype(float)).all()
    assert (p.units["patients_two_periods"] == 0).all()
    assert not any("two periods" in n for n in p.notes)
    assert "no modelled arm has patients with two periods" in get("adverse_events").units_text(p.units, spec())


def test_a_count_above_the_patients_is_capped(tmp_path):
    # 25 of 30 periods with an event cannot be 25 of 22 patients: the count is capped at 22
    p = ae.prepare(spec(), crossover(tmp_path, y_it=25))
    it = unit(p, "x:msc_it:serious_ae")
    assert (it["n"], it["patients_with_event"]) == (22, 22)
    assert any(n.endswith("patients_with_event 25 capped at 22") for n in p.notes)
    # below the cap the count is kept
    p = ae.prepare(spec(), crossover(tmp_path / "kept", y_it=3))
    assert unit(p, "x:msc_it:serious_ae")["patients_with_event"] == 3


def test_more_repeated_patients_than_fit_in_the_periods_reported(tmp_path):
    # 10 periods at risk hold at most 5 patients with two periods: n is 10 - 5, not 10 - 8
    p = ae.prepare(spec(), crossover(tmp_path, n_it=10))
    assert unit(p, "x:msc_it:serious_ae")["n"] == 5
    assert any("only 5 of the 8 patients with two periods fit in 10 periods" in n for n in p.notes)


def test_an_event_count_keeps_its_periods_as_exposure(tmp_path):
    ev = write_evidence(
        tmp_path, arms=[arm("x", "msc_it", 32)],
        adverse_events=[{**ae_row("x", "msc_it", 3, 30, events="4"), "secondary_fields": "patients_with_event"}],
        shared_patients=[{"study": "x", "arm": "msc_it", "other_arm": "msc_it", "patients": 8}])
    p = ae.prepare(spec(exclude_secondary=True), ev)  # the patient count is secondary: only the event count left
    u = p.units.iloc[0]
    assert (u["likelihood"], u["n"], u["patients_two_periods"]) == ("poisson", 30, 0)
    assert any(n.startswith("x:msc_it:serious_ae: an event count over its 30 periods") for n in p.notes)


# --------------------------------------------------------------------------------------
# statements by wording
# --------------------------------------------------------------------------------------


def worded(folder: Path):
    return write_evidence(folder, arms=[arm("a", "all", 20), arm("b", "all", 25), arm("c", "all", 8),
                                        arm("d", "all", 12)],
                          adverse_events=[
                              ae_row("a", "all", 0, 20, wording="none", words="'no serious adverse events'"),
                              ae_row("b", "all", 0, 25, event="major_ae", wording="vague", timing="delayed",
                                     words="'No major delayed adverse effect was reported'"),
                              ae_row("c", "all", 1, 8, event="rash", wording="count", words="One patient <had> a *rash*"),
                              ae_row("d", "all", 0, 12)])  # no wording: user data, explicit


def test_explicit_statements_drop_vague_rows_only(tmp_path):
    ev = worded(tmp_path)
    every = ae.prepare(spec(), ev)
    explicit = ae.prepare(spec(statements="explicit"), ev)
    assert list(every.units["study"]) == ["a", "b", "c", "d"]
    assert list(explicit.units["study"]) == ["a", "c", "d"]
    assert "statements='explicit': vague statements left out: b:all:major_ae" in explicit.notes
    assert not any("vague statements left out" in n for n in every.notes)
    # the units carry the wording and timing columns
    assert list(every.units["wording"].fillna("")) == ["none", "vague", "count", ""]
    assert every.units["timing"].iloc[1] == "delayed"
    with pytest.raises(Exception, match="statements"):
        spec(statements="vague_only")


def test_mri_rows_without_wording_are_explicit():
    bundled_mri = load_evidence(REPO / "data")
    every = ae.prepare(spec("mri_activity"), bundled_mri)
    explicit = ae.prepare(spec("mri_activity", statements="explicit"), bundled_mri)
    assert list(every.units["label"]) == list(explicit.units["label"])
    assert statements_text(every.units) == ""  # mri.csv has no wording: no statements sentence


def test_the_methods_list_the_statements_that_entered(tmp_path):
    ev = worded(tmp_path)
    units = ae.prepare(spec(), ev).units
    assert statements(units) == {
        "none": [("a", "serious_ae", "'no serious adverse events'")],
        "vague": [("b", "major_ae", "'No major delayed adverse effect was reported'")],
        "count": [("c", "rash", "'One patient <had> a *rash*'")],
        "": [("d", "serious_ae", "(no words recorded)")],
    }
    text = statements_text(units)
    assert text.startswith("Safety statements that entered, every statement (option statements = 'all'): ")
    assert "1 explicit count (c rash 'One patient <had> a *rash*')" in text
    assert "1 explicit 'none' statement (a serious_ae 'no serious adverse events')" in text
    assert ("1 vague statement coded only for the events their words name "
            "(major_ae: b 'No major delayed adverse effect was reported')") in text
    assert "1 statement without a recorded wording (d serious_ae (no words recorded))" in text
    explicit = statements_text(ae.prepare(spec(statements="explicit"), ev).units, "explicit")
    assert "option statements = 'explicit'" in explicit and "major_ae" not in explicit
    # the sentence reaches the Markdown report escaped (report.md.j2 pipes the methods through md_escape)
    from msc_bayes.reporting.render import md_escape

    assert "\\<had\\> a \\*rash\\*" in md_escape(text)


def test_the_same_statement_of_two_arms_is_listed_once(tmp_path):
    words = "'None of the intolerant adverse events were observed'"
    ev = write_evidence(tmp_path, arms=[arm("l", "nmo", 5), arm("l", "rrms", 5)],
                        adverse_events=[ae_row("l", a, 0, 5, event="intolerable_ae", wording="vague", words=words)
                                        for a in ("nmo", "rrms")])
    units = ae.prepare(spec(), ev).units
    assert len(units) == 2 and statements(units) == {"vague": [("l", "intolerable_ae", words)]}


def test_statements_of_two_periods(tmp_path):
    ev = write_evidence(tmp_path, arms=[arm("a", "all", 20), arm("b", "all", 20), arm("c", "all", 20)], adverse_events=[
        ae_row("a", "all", 0, 20, wording="none", timing="acute", words="'no acute adverse events'"),
        ae_row("a", "all", 0, 20, wording="none", timing="delayed", words="'no delayed adverse events'"),
        ae_row("b", "all", 2, 20, wording="count", timing="acute"),
        ae_row("b", "all", 1, 20, wording="count", timing="whole"),
        ae_row("c", "all", 2, 20, wording="count", timing="acute"),
        ae_row("c", "all", 1, 20, wording="count", timing="delayed")])
    p = ae.prepare(spec(), ev)
    assert list(p.units["label"]) == ["a:all:serious_ae", "b:all:serious_ae", "c:all:serious_ae (acute)",
                                      "c:all:serious_ae (delayed)"]
    a, b = p.units.iloc[0], p.units.iloc[1]
    assert (a["patients_with_event"], a["timing"], a["n"]) == (0, "acute+delayed", 20)
    assert (b["patients_with_event"], b["timing"]) == (1, "whole")
    assert list(p.units["patients_with_event"].iloc[2:]) == [2, 1]  # no invented number of patients in either
    assert any(n.startswith("a:all:serious_ae: statements of acute+delayed combined") for n in p.notes)
    assert "b:all:serious_ae: the 'whole' follow-up statement used over the statements of its periods" in p.notes
    assert any(n.startswith("c:all:serious_ae: statements of acute+delayed with events kept as event types")
               for n in p.notes)


# --------------------------------------------------------------------------------------
# one fit on the bundled data
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_explicit_statements_fit_on_the_bundled_data():
    from msc_bayes.diagnostics import convergence
    from msc_bayes.inference import Attempt, fit
    from msc_bayes.reporting.methods import methods_paragraph

    bundled = load_evidence(REPO / "data")
    base = load_spec(REPO / "models" / "adverse_events.toml")
    s = base.replace(options={"statements": "explicit"})
    every = ae.prepare(base, bundled)
    f = fit(s, bundled, draws=1000, tune=1000, chains=4, seed=11)
    units = f.prepared.units
    # the units are the explicit statements of the bundled data, every patient once per arm
    assert set(units["wording"].dropna()) <= {"count", "none"}
    vague = every.units["wording"] == "vague"
    assert len(units) == len(every.units) - int(vague.sum())
    assert (units["patients_with_event"].dropna() <= units["n"][units["patients_with_event"].notna()]).all()
    assert (units["n"] == units["n_periods"] - units["patients_two_periods"]).all()
    verdict = convergence(f)  # 4 x 1000 draws: long enough for the gate's thresholds
    assert verdict.passed, verdict.reasons
    attempt = Attempt(1000, 1000, 4, s.sampler.target_accept, 0.0, True, ())
    text = methods_paragraph(f, (attempt,))
    assert "option statements = 'explicit'" in text and "Arms count patients, not periods" in text
