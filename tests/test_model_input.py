"""A model whose evidence leaves it no data ends in one EvidenceError naming the table (issue 12):
a header-only table the model reads, or options that filter out every arm."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from msc_bayes.errors import EvidenceError, SpecError
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import edss
from msc_bayes.outcomes import events as adverse_events
from msc_bayes.spec import load_spec, spec_from_dict

MODELS = Path(__file__).resolve().parents[1] / "models"


def header_only(folder: Path, *tables: str) -> Path:
    """Cut each table of `folder` down to its header row."""
    for table in tables:
        path = folder / f"{table}.csv"
        path.write_text(path.read_text(encoding="utf-8").splitlines(True)[0], encoding="utf-8")
    return folder


def write_tables(folder: Path, **tables: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


def the_problem(excinfo):
    (problem,) = excinfo.value.problems
    return problem


def edss_spec(**options):
    return spec_from_dict({"outcome": "edss_change", "covariates": [], "options": options})


# --------------------------------------------------------------------------------------
# Header-only tables
# --------------------------------------------------------------------------------------


def test_a_header_only_edss_table_beside_patient_data_is_not_an_error_of_its_own(data_copy):
    """Patient-level data alone is evidence (a folder may have no edss.csv at all): the model uses
    the arms with patient data, and what the spec then asks of them is checked as usual."""
    ev = load_evidence(header_only(data_copy, "edss"))
    prep = edss.prepare(edss_spec(), ev)
    assert len(prep.units) > 0 and all(list(fs) == ["patient"] for fs in prep.units["formats"])
    with pytest.raises(SpecError) as ei:  # the bundled spec's reference route is not among those arms
        edss.prepare(load_spec(MODELS / "edss_change.toml"), ev)
    p = the_problem(ei)
    assert p.column == "covariate_options.route.reference" and p.value == "IV"


def test_edss_header_only_edss_and_patients_tables(data_copy):
    ev = load_evidence(header_only(data_copy, "edss", "patients"))  # was a TypeError deep in the design matrix
    with pytest.raises(EvidenceError) as ei:
        edss.prepare(load_spec(MODELS / "edss_change.toml"), ev)
    p = the_problem(ei)
    assert p.file == str(data_copy / "edss.csv") and "header only" in p.value
    assert "patient" not in p.expected  # no patient data to fall back on


def test_patient_only_spec_with_a_header_only_patients_table(data_copy):
    ev = load_evidence(header_only(data_copy, "patients"))
    with pytest.raises(EvidenceError) as ei:
        edss.prepare(edss_spec(formats=["patient"]), ev)
    p = the_problem(ei)
    assert p.file == str(data_copy / "patients.csv") and "header only" in p.value


@pytest.mark.parametrize("spec_file, table", [("adverse_events", "adverse_events"), ("mri_activity", "mri")])
def test_event_models_name_their_header_only_table(data_copy, spec_file, table):
    ev = load_evidence(header_only(data_copy, table))
    with pytest.raises(EvidenceError) as ei:
        adverse_events.prepare(load_spec(MODELS / f"{spec_file}.toml"), ev)
    p = the_problem(ei)
    assert p.file == str(data_copy / f"{table}.csv") and "header only" in p.value
    assert f"at least one row of {table}.csv" in p.expected


# --------------------------------------------------------------------------------------
# Options that leave no arm
# --------------------------------------------------------------------------------------

ARMS = [{"study": "s1", "arm": "a", "n": 10}, {"study": "s2", "arm": "a", "n": 12}]


def test_edss_formats_no_arm_reports(tmp_path):
    folder = write_tables(tmp_path / "data", arms=ARMS, edss=[
        {"study": "s1", "arm": "a", "timepoint_months": 6, "n": 10, "improved": 3, "stable": 5, "worsened": 2},
        {"study": "s2", "arm": "a", "timepoint_months": 6, "n": 12, "worsened": 4},
    ])
    with pytest.raises(EvidenceError) as ei:  # was "no usable EDSS rows", naming only the folder
        edss.prepare(edss_spec(formats=["change", "means_only"]), load_evidence(folder))
    p = the_problem(ei)
    assert p.file == str(folder / "edss.csv") and p.column == "formats"
    assert "['change', 'means_only']" in p.value and p.expected.endswith("the data report: counts")


def test_edss_exclude_secondary_leaving_no_arm_says_so(tmp_path):
    folder = write_tables(tmp_path / "data", arms=ARMS[:1], edss=[
        {"study": "s1", "arm": "a", "timepoint_months": 6, "n": 10, "change_mean": -0.2, "change_sd": 0.5,
         "secondary_fields": "change_mean;change_sd"},
    ])
    ev = load_evidence(folder)
    assert len(edss.prepare(edss_spec(), ev).units) == 1
    with pytest.raises(EvidenceError) as ei:
        edss.prepare(edss_spec(exclude_secondary=True), ev)
    p = the_problem(ei)
    assert p.column == "formats" and "the data report: none" in p.expected and "exclude_secondary" in p.expected


def test_edss_no_arm_with_the_spec_covariates_names_them(tmp_path):
    folder = write_tables(tmp_path / "data", arms=ARMS[:1], edss=[
        {"study": "s1", "arm": "a", "timepoint_months": 6, "n": 10, "change_mean": -0.2, "change_sd": 0.5},
    ])
    spec = spec_from_dict({"outcome": "edss_change", "covariates": ["dose_per_kg_million"]})
    with pytest.raises(EvidenceError) as ei:
        edss.prepare(spec, load_evidence(folder))
    p = the_problem(ei)
    assert p.file == str(folder / "arms.csv") and p.expected.endswith("every covariate of the spec: dose_per_kg_million")


def test_event_model_exclude_secondary_leaving_no_row_says_so(tmp_path):
    folder = write_tables(tmp_path / "data", arms=ARMS[:1], adverse_events=[
        {"study": "s1", "arm": "a", "event": "serious_ae", "patients_with_event": 0, "n_at_risk": 10,
         "secondary_fields": "patients_with_event"},
    ])
    spec = load_spec(MODELS / "adverse_events.toml").replace(covariates=[], options={"exclude_secondary": True})
    with pytest.raises(EvidenceError) as ei:
        adverse_events.prepare(spec, load_evidence(folder))
    p = the_problem(ei)
    assert p.file == str(folder / "adverse_events.csv") and "exclude_secondary=true" in p.value


def test_an_unknown_event_in_the_spec_names_the_spec_not_the_table(data_copy, tmp_path):
    text = (MODELS / "mri_activity.toml").read_text(encoding="utf-8")
    spec_file = tmp_path / "mri.toml"
    spec_file.write_text(text.replace("events = []", 'events = ["new_t3"]', 1), encoding="utf-8")
    with pytest.raises(SpecError) as ei:
        adverse_events.prepare(load_spec(spec_file), load_evidence(data_copy))
    p = the_problem(ei)
    assert (p.file, p.column, p.value) == (str(spec_file), "options.events", "new_t3")
    assert "mri.csv" in p.expected
