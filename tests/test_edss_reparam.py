"""The standardised study effects of msc_bayes.outcomes.edss.model are a pure change of variables.

`edss.build` samples each study's effect through a free ``study_offset`` z standardised by
the effect's conditional normal posterior (module docstring of msc_bayes.outcomes.edss.model);
`build(..., standardise=False)` is the plain non-centred model (study_offset = effect / tau).
For the same posterior, the joint densities must satisfy, at every point,

    logp_standardised(z, rest) = logp_plain(offset(z, rest), rest) + sum_s log |d offset_s / d z_s|,

with the same theta and per-unit log likelihood. offset(z, rest) is read off the models
(theta_standardised minus theta_plain at offset 0, divided by tau) and the Jacobian by finite
differences (offset_s is affine in z_s), so neither comes from the code under test's formula.
The bundled data exercise every format (baseline/follow-up, change, counts, patient), latent
courses and a control arm; unit weights (leave-one-out sweeps) are checked as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import edss
from msc_bayes.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SEED = 20261121
#: float64 graphs summing ~40 terms of size ~10-100; finite differences of an affine map
RTOL, FD_STEP = 1e-9, 1e-3


@pytest.fixture(scope="module")
def models():
    spec, ev = load_spec(REPO / "models" / "edss_change.toml"), load_evidence(REPO / "data")
    new, prep = edss.build(spec, ev)
    plain, _ = edss.build(spec, ev, standardise=False)
    assert [v.name for v in new.value_vars] == [v.name for v in plain.value_vars]
    fns = {}
    for key, m in (("new", new), ("plain", plain)):
        fns[key] = {"logp": m.compile_logp(), "theta": value_fn(m, "theta"), "loglik": value_fn(m, "loglik")}
    study_idx = np.array([prep.studies.index(s) for s in prep.units["study"]])
    return {"new": new, "plain": plain, "fns": fns, "study_idx": study_idx, "n_units": len(prep.units)}


def value_fn(model, name):
    """Compiled function of a model variable, taking the sampler's value variables."""
    [out] = model.replace_rvs_by_values([model[name]])
    return model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")


def random_point(model, rng):
    """A point on the sampler's (unconstrained) scale around the initial point."""
    return {k: v + rng.normal(0, 0.7, np.shape(v)) for k, v in model.initial_point().items()}


def offsets(m, point):
    """effect / tau per study as the standardised model maps `point`, read off theta."""
    tau = np.exp(point["tau_log__"])
    fixed = m["fns"]["plain"]["theta"]({**point, "study_offset": np.zeros_like(point["study_offset"])})
    per_unit = (m["fns"]["new"]["theta"](point) - fixed) / tau
    out = np.full(len(point["study_offset"]), np.nan)
    for s in range(len(out)):  # every arm of a study has the same effect
        vals = per_unit[m["study_idx"] == s]
        np.testing.assert_allclose(vals, vals[0], rtol=1e-9, atol=1e-12)
        out[s] = vals[0]
    return out


def set_weights(m, w):
    for key in ("new", "plain"):
        m[key]["unit_weight"].set_value(np.asarray(w, dtype=float))


@pytest.mark.parametrize("weights", ["ones", "random", "leave_petrou2020_out"])
def test_standardised_offsets_are_a_change_of_variables(models, weights):
    m = models
    rng = np.random.default_rng([SEED, 1, ["ones", "random", "leave_petrou2020_out"].index(weights)])
    U = m["n_units"]
    w = {"ones": np.ones(U), "random": rng.uniform(0, 1, U),
         "leave_petrou2020_out": (np.array(m["new"].coords["arm"]) != "").astype(float)}[weights]
    if weights == "leave_petrou2020_out":
        w = np.array([0.0 if a.startswith("petrou2020:") else 1.0 for a in m["new"].coords["arm"]])
    set_weights(m, w)
    try:
        for _ in range(5):
            point = random_point(m["new"], rng)
            off = offsets(m, point)
            mapped = {**point, "study_offset": off}
            # same theta and per-unit log likelihood
            np.testing.assert_allclose(m["fns"]["new"]["theta"](point), m["fns"]["plain"]["theta"](mapped), rtol=RTOL)
            np.testing.assert_allclose(m["fns"]["new"]["loglik"](point), m["fns"]["plain"]["loglik"](mapped), rtol=RTOL)
            # Jacobian of z -> offset: diagonal, by central differences
            log_jac = 0.0
            for s in range(len(off)):
                dz = np.zeros_like(point["study_offset"])
                dz[s] = FD_STEP
                up = offsets(m, {**point, "study_offset": point["study_offset"] + dz})
                down = offsets(m, {**point, "study_offset": point["study_offset"] - dz})
                col = (up - down) / (2 * FD_STEP)
                np.testing.assert_allclose(np.delete(col, s), 0.0, atol=1e-9)
                log_jac += np.log(abs(col[s]))
            expected = float(m["fns"]["plain"]["logp"](mapped)) + log_jac
            assert float(m["fns"]["new"]["logp"](point)) == pytest.approx(expected, rel=RTOL)
            if weights == "leave_petrou2020_out":  # weight 0: the plain non-centred form
                s = list(m["new"].coords["study"]).index("petrou2020")
                assert off[s] == pytest.approx(point["study_offset"][s], rel=1e-12)
    finally:
        set_weights(m, np.ones(U))


def test_studies_without_normal_terms_keep_the_plain_offset(models):
    """Counts-only and patient-only studies have no normal term: effect / tau = z."""
    m = models
    rng = np.random.default_rng([SEED, 2])
    point = random_point(m["new"], rng)
    off = offsets(m, point)
    studies = list(m["new"].coords["study"])
    for s in ("iacobaeus2019", "karussis2010", "yamout2010", "harris2018", "odinak2012", "fu2016"):
        i = studies.index(s)
        assert off[i] == pytest.approx(point["study_offset"][i], rel=1e-12)
    for s in ("petrou2021", "petrou2020", "bonab2012"):  # baseline/follow-up or change data
        i = studies.index(s)
        assert abs(off[i] - point["study_offset"][i]) > 1e-6
