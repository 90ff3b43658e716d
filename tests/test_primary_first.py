"""Primary values first: a secondary value is used only where an arm and timepoint has no format from primary values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import get
from msc_bayes.spec import load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
SPEC = spec_from_dict({"outcome": "edss_change", "covariates": []})


def _units(tmp_path, edss: list[dict], patients: list[dict] | None = None):
    folder = tmp_path / "d"
    folder.mkdir()
    pd.DataFrame([{"study": r["study"], "arm": "all", "n": 20} for r in edss]).drop_duplicates().to_csv(
        folder / "arms.csv", index=False)
    pd.DataFrame(edss).to_csv(folder / "edss.csv", index=False)
    if patients:
        pd.DataFrame(patients).to_csv(folder / "patients.csv", index=False)
    return get("edss_change").prepare(SPEC, load_evidence(folder))


def test_primary_counts_used_and_secondary_value_set_aside(tmp_path):
    prep = _units(tmp_path, [{"study": "a", "arm": "all", "timepoint_months": 12, "n": 15, "improved": 6,
                              "stable_or_improved": 15, "secondary_fields": "stable_or_improved"}])
    (u,) = prep.units.itertuples(index=False)
    assert u.formats == ["counts"] and np.isnan(u.stable_or_improved) and u.improved == 6
    assert any("secondary stable_or_improved set aside" in n for n in prep.notes)


def test_secondary_values_used_where_nothing_primary_is(tmp_path):
    prep = _units(tmp_path, [{"study": "a", "arm": "all", "timepoint_months": 6, "n": 4, "baseline_mean": 6.0,
                              "followup_mean": 5.5, "secondary_fields": "followup_mean"}],
                  [{"study": "a", "arm": "all", "patient": f"p{i}", "timepoint_months": 6, "change": c,
                    "grade": "secondary"} for i, c in enumerate((-0.5, 0, -1, 0))])
    (u,) = prep.units.itertuples(index=False)
    assert u.formats == ["patient"]  # the blog's list: first in the spec's order among secondary formats
    assert u.followup_mean == 5.5 and not prep.notes


def test_bundled_blog_and_review_values():
    prep = get("edss_change").prepare(load_spec(ROOT / "models" / "edss_change.toml"), load_evidence(ROOT / "data"))
    units = prep.units.set_index("study")
    assert units.loc["karussis2010", "formats"] == ["patient"]  # every EDSS value after baseline is a blog's
    assert units.loc["fu2016", "formats"] == ["counts"] and np.isnan(units.loc["fu2016", "stable_or_improved"])


def test_set_aside_note_only_for_the_timepoint_used(tmp_path):
    prep = _units(tmp_path, [
        {"study": "a", "arm": "all", "timepoint_months": 6, "n": 15, "improved": 5, "stable_or_improved": 15,
         "secondary_fields": "stable_or_improved"},
        {"study": "a", "arm": "all", "timepoint_months": 12, "n": 15, "improved": 6}])
    (u,) = prep.units.itertuples(index=False)
    assert u.timepoint_months == 12
    assert not any("set aside" in n for n in prep.notes)  # the 6-month row is not modelled
