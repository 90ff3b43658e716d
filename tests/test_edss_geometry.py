"""What the EDSS model's standardised locations keep: the compiled model's data and a safe fallback.

The change of variables itself (same density, Jacobian) is tested in tests/test_edss_reparam.py. Here:
a refit under other prior values or other unit weights sets the same pm.Data in the standardised
model as in the plain one (so it costs sampling only), the standardisation follows those values
(a refit under a tighter prior is standardised by it), and a location prior that is not a
location-scale family on the real line keeps mu, beta and msc_effect free. These build models only:
nothing is compiled for sampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import edss
from msc_bayes.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs():
    return load_spec(REPO / "models" / "edss_change.toml"), load_evidence(REPO / "data")


def free(model) -> set[str]:
    return {v.name for v in model.value_vars}


def test_standardised_model_reads_the_same_data(inputs):
    spec, ev = inputs
    new, _ = edss.build(spec, ev, locations=True)
    plain, _ = edss.build(spec, ev, standardise=False)
    assert {d.name for d in new.data_vars} == {d.name for d in plain.data_vars}
    assert "location_offset" in free(new) and not {"mu", "beta", "msc_effect"} & free(new)
    assert list(new.coords["location"]) == ["mu", *new.coords["covariate"], "msc_effect"]
    assert {"mu", "beta", "msc_effect"} <= {d.name for d in new.deterministics}


def test_standardisation_follows_the_prior_values(inputs):
    """At location_offset 0, mu is its conditional mean given the scales: a prior on mu concentrated at
    2 (prior_mu_mu, prior_mu_sigma set as a refit sets them) moves it there."""
    spec, ev = inputs
    new, _ = edss.build(spec, ev, locations=True)
    [mu] = new.replace_rvs_by_values([new["mu"]])
    f = new.compile_fn(mu, inputs=new.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    point = new.initial_point()
    wide = float(f(point))
    new["prior_mu_mu"].set_value(np.float64(2.0))
    new["prior_mu_sigma"].set_value(np.float64(1e-3))
    assert abs(wide - 2.0) > 0.5
    assert float(f(point)) == pytest.approx(2.0, abs=1e-2)


@pytest.mark.parametrize("key, prior", [("mu", {"dist": "Uniform", "lower": -3.0, "upper": 3.0}),
                                        ("beta", {"dist": "HalfNormal", "sigma": 0.5})])
def test_other_location_priors_keep_the_locations_free(inputs, key, prior):
    spec, ev = inputs
    other = spec.replace(priors={key: prior})
    model, _ = edss.build(other, ev, locations=True)
    assert "location_offset" not in free(model) and "location" not in model.coords
    assert {"mu", "beta", "msc_effect"} <= {v.name for v in model.free_RVs}
