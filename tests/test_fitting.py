"""fit(): a refit of a cached compiled model equals a fit from a fresh compile."""

from __future__ import annotations

import numpy as np
import pytest

from msc_bayes import fitting
from msc_bayes.evidence import load_evidence
from msc_bayes.spec import Prior, spec_from_dict

SEED = 20261121
KW = {"draws": 200, "tune": 200, "chains": 2, "seed": SEED}


@pytest.mark.slow
def test_draws_do_not_depend_on_which_spec_compiled_the_model(tmp_path):
    (tmp_path / "edss.csv").write_text(
        "study,arm,timepoint_months,n,change_mean,change_se\n"
        "s1,a,12,20,-0.3,0.15\ns2,a,12,30,0.1,0.12\ns3,a,6,15,-0.5,0.2\ns4,a,12,40,-0.1,0.1\n")
    evidence = load_evidence(tmp_path)
    base = spec_from_dict({"outcome": "edss_change", "covariates": []})
    wide = base.replace(priors={"tau": Prior("HalfNormal", {"sigma": 2.0})})

    fitting._COMPILED.clear()
    fresh = fitting.fit(wide, evidence, **KW).posterior["tau"].values
    fitting._COMPILED.clear()
    fitting.fit(base, evidence, **KW)  # compiles the model with base's prior values
    refit = fitting.fit(wide, evidence, **KW).posterior["tau"].values
    assert np.array_equal(fresh, refit)
