"""The standardised parameterisation of msc_bayes.outcomes.edss.model is a pure change of variables.

`edss.build(..., locations=True)` samples the locations (mu, beta, msc_effect) through a free ``location_offset`` and each
study's effect through a free ``study_offset``, both standardised by their conditional normal
posteriors given the normal-likelihood formats (module docstring of msc_bayes.outcomes.edss.model);
`build(..., standardise=False)` is the plain non-centred model (free locations, study_offset =
effect / tau). For the same posterior, the joint densities must satisfy, at every point,

    logp_standardised(w, z, rest) = logp_plain(L(w, z, rest), offset(w, z, rest), rest) + log |det J|,

J the Jacobian of (w, z) -> (L, offset), with the same theta and per-unit log likelihood. L is read
off the standardised model's Deterministics, offset off theta (theta_standardised minus theta_plain
at offset 0, divided by tau), and J by central finite differences, so neither the map nor its
Jacobian comes from the code under test's formula. The bundled data exercise every format
(baseline/follow-up, change, counts, patient), latent courses, a control arm with carry-over and
arms that share patients; unit weights (leave-one-out sweeps) are checked as well.
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
#: float64 graphs summing ~40 terms of size ~10-100; finite differences of a map that is affine in
#: (location_offset, study_offset) given the other parameters, so exact up to rounding
RTOL, FD_STEP = 1e-9, 1e-3
#: the ops' Python implementations: a check of the graph at points, not of the compiled sampler
CHECK_MODE = "FAST_COMPILE"
LOCATIONS = ("mu", "beta", "msc_effect")


@pytest.fixture(scope="module")
def models():
    spec, ev = load_spec(REPO / "models" / "edss_change.toml"), load_evidence(REPO / "data")
    new, prep = edss.build(spec, ev, locations=True)
    plain, _ = edss.build(spec, ev, standardise=False)
    new_free = {v.name for v in new.value_vars}
    assert new_free - {v.name for v in plain.value_vars} == {"location_offset"}
    assert {v.name for v in plain.value_vars} - new_free == set(LOCATIONS)
    fns = {key: {"logp": m.compile_logp(mode=CHECK_MODE), "theta": value_fn(m, "theta"), "loglik": value_fn(m, "loglik")}
           for key, m in (("new", new), ("plain", plain))}
    fns["new"]["locations"] = {k: value_fn(new, k) for k in LOCATIONS}
    study_idx = np.array([prep.studies.index(s) for s in prep.units["study"]])
    return {"new": new, "plain": plain, "fns": fns, "study_idx": study_idx, "n_units": len(prep.units),
            "plain_names": [v.name for v in plain.value_vars]}


def value_fn(model, name):
    """Compiled function of a model variable, taking the sampler's value variables."""
    [out] = model.replace_rvs_by_values([model[name]])
    return model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore", mode=CHECK_MODE)


def random_point(model, rng):
    """A point on the sampler's (unconstrained) scale around the initial point."""
    return {k: v + rng.normal(0, 0.7, np.shape(v)) for k, v in model.initial_point().items()}


def mapped(m, point) -> dict:
    """The plain model's point that the standardised model's `point` stands for."""
    q = {k: v for k, v in point.items() if k in m["plain_names"]}
    q.update({k: np.asarray(f(point)) for k, f in m["fns"]["new"]["locations"].items()})
    tau = np.exp(point["tau_log__"])
    fixed = m["fns"]["plain"]["theta"]({**q, "study_offset": np.zeros_like(point["study_offset"])})
    per_unit = (m["fns"]["new"]["theta"](point) - fixed) / tau
    off = np.full(len(point["study_offset"]), np.nan)
    for s in range(len(off)):  # every arm of a study has the same effect
        vals = per_unit[m["study_idx"] == s]
        np.testing.assert_allclose(vals, vals[0], rtol=1e-9, atol=1e-12)
        off[s] = vals[0]
    q["study_offset"] = off
    return q


def flat(q) -> np.ndarray:
    return np.concatenate([np.atleast_1d(q[k]) for k in (*LOCATIONS, "study_offset")])


def jacobian(m, point) -> np.ndarray:
    """d (L, offset) / d (w, z) by central differences (rows: mu, beta, msc_effect, study offsets)."""
    cols = []
    for name in ("location_offset", "study_offset"):
        for i in range(len(point[name])):
            up, down = dict(point), dict(point)
            up[name], down[name] = point[name].copy(), point[name].copy()
            up[name][i] += FD_STEP
            down[name][i] -= FD_STEP
            cols.append((flat(mapped(m, up)) - flat(mapped(m, down))) / (2 * FD_STEP))
    return np.column_stack(cols)


def set_weights(m, w):
    for key in ("new", "plain"):
        m[key]["unit_weight"].set_value(np.asarray(w, dtype=float))


@pytest.mark.parametrize("weights", ["ones", "random", "leave_petrou2020_out"])
def test_standardised_parameterisation_is_a_change_of_variables(models, weights):
    m = models
    rng = np.random.default_rng([SEED, 1, ["ones", "random", "leave_petrou2020_out"].index(weights)])
    U = m["n_units"]
    arms = np.array(m["new"].coords["arm"])
    w = {"ones": np.ones(U), "random": rng.uniform(0, 1, U),
         "leave_petrou2020_out": np.array([0.0 if a.startswith("petrou2020:") else 1.0 for a in arms])}[weights]
    set_weights(m, w)
    n_loc = len(m["new"].coords["location"])
    try:
        for _ in range(4):
            point = random_point(m["new"], rng)
            q = mapped(m, point)
            # same theta and per-unit log likelihood
            np.testing.assert_allclose(m["fns"]["new"]["theta"](point), m["fns"]["plain"]["theta"](q), rtol=RTOL)
            np.testing.assert_allclose(m["fns"]["new"]["loglik"](point), m["fns"]["plain"]["loglik"](q), rtol=RTOL)
            J = jacobian(m, point)
            # triangular: the locations do not depend on the study offsets; each offset only on its own z
            np.testing.assert_allclose(J[:n_loc, n_loc:], 0.0, atol=1e-9)
            z_block = J[n_loc:, n_loc:]
            np.testing.assert_allclose(z_block - np.diag(np.diag(z_block)), 0.0, atol=1e-9)
            sign, log_jac = np.linalg.slogdet(J)
            assert sign != 0
            expected = float(m["fns"]["plain"]["logp"](q)) + log_jac
            assert float(m["fns"]["new"]["logp"](point)) == pytest.approx(expected, rel=RTOL)
            if weights == "leave_petrou2020_out":  # weight 0: the plain non-centred form
                s = list(m["new"].coords["study"]).index("petrou2020")
                assert q["study_offset"][s] == pytest.approx(point["study_offset"][s], rel=1e-12)
    finally:
        set_weights(m, np.ones(U))


def test_studies_without_normal_terms_keep_the_plain_offset(models):
    """Counts-only and patient-only studies have no normal term: effect / tau = z."""
    m = models
    rng = np.random.default_rng([SEED, 2])
    point = random_point(m["new"], rng)
    off = mapped(m, point)["study_offset"]
    studies = list(m["new"].coords["study"])
    for s in ("iacobaeus2019", "karussis2010", "yamout2010", "harris2018", "odinak2012", "fu2016"):
        i = studies.index(s)
        assert off[i] == pytest.approx(point["study_offset"][i], rel=1e-12)
    for s in ("petrou2021", "petrou2020", "bonab2012"):  # baseline/follow-up or change data
        i = studies.index(s)
        assert abs(off[i] - point["study_offset"][i]) > 1e-6
