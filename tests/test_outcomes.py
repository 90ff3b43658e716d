"""The outcome registry: every outcome declares what the package reads of it, and a new
outcome is one new module plus one registry entry (the toy below goes through spec loading,
model building, fitting, derived quantities and the diagnostics' per-unit estimates)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from msc_bayes import diagnostics, inference, outcomes
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import Outcome, Quantity
from msc_bayes.spec import spec_from_dict

DATA = Path(__file__).resolve().parents[1] / "data"

#: A whole outcome in one file: a plain normal mean over edss.csv's mean changes with an SD or SE,
#: y_i ~ N(mu, se_i), mu ~ Normal prior (conjugate: the exact posterior is known).
TOY_MODULE = '''
"""Toy outcome: the mean of reported mean changes with a known SE (or SD / sqrt(n)), y ~ N(mu, se)."""

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import xarray as xr

from msc_bayes.outcomes import Outcome, Quantity
from msc_bayes.outcomes.covariates import Design, design
from msc_bayes.outcomes.likelihood import observe
from msc_bayes.spec import Prior, PriorSlot


@dataclass(frozen=True)
class Prepared:
    units: pd.DataFrame
    design: Design
    notes: tuple = ()


def prepare(spec, evidence):
    edss = evidence.edss
    n, sd = edss["n"].to_numpy(dtype=float), edss["change_sd"].to_numpy(dtype=float)
    rows = edss.assign(se=np.where(edss["change_se"].isna(), sd / np.sqrt(n), edss["change_se"].to_numpy(dtype=float)))
    rows = rows[rows["change_mean"].notna() & rows["se"].notna()]
    rows = rows.groupby(["study", "arm"], sort=False).last().reset_index()
    units = pd.DataFrame({"study": rows["study"], "arm": rows["arm"], "label": rows["study"] + ":" + rows["arm"],
                          "n": rows["n"], "y": rows["change_mean"], "se": rows["se"], "group": "msc"})
    return Prepared(units, design(units, spec, units["label"]))


def build(spec, evidence):
    import pymc as pm

    prep = prepare(spec, evidence)
    u = prep.units
    with pm.Model(coords={"arm": list(u["label"])}) as model:
        mu = spec.priors["mu"].create("mu")
        observe(pm.logp(pm.Normal.dist(mu, u["se"].to_numpy()), u["y"].to_numpy()))
    return model, prep


def derive(posterior, prepared, spec):
    return xr.Dataset({"p_mu_below_0": (posterior["mu"] < 0).astype(float)})


def observed(fit, *, evidence, probs, interval):
    return [(r.y, r.y - 1.96 * r.se, r.y + 1.96 * r.se, "mean change") for r in fit.prepared.units.itertuples()]


def replicates(fit, *, evidence, rng, probs):
    mu = fit.tree["posterior"]["mu"].values.ravel()
    return [("mean change", r.label, "mean change", r.y, rng.normal(mu, r.se))
            for r in fit.prepared.units.itertuples()]


OUTCOME = Outcome(
    name="toy", description="a toy normal mean", tables=("edss",), formats=("change",),
    priors=MappingProxyType({"mu": PriorSlot(Prior("Normal", {"mu": 0, "sigma": 1}), "the mean")}),
    options=MappingProxyType({}),
    prepare=prepare, build=build, derive=derive, used=lambda units: ["change"] * len(units),
    observed=observed, replicates=replicates, unit_estimate="mu",
    headline=(Quantity("mu", "mean change", "EDSS points", "lower_better"),), thresholds=(0.0,),
    model_text="a normal mean with known SEs", format_text=MappingProxyType({"change": "mean change with its SE"}),
    words="toy change", axis_label="toy change (points)",
)
'''


@pytest.mark.parametrize("name", list(outcomes.OUTCOMES))
def test_every_outcome_declares_what_the_package_reads(name):
    o = outcomes.get(name)
    assert isinstance(o, Outcome) and o.name == name and o.description
    assert o.priors and {"mu", "tau"} <= set(o.priors)
    assert o.tables and o.formats and o.thresholds
    assert all(callable(f) for f in (o.prepare, o.build, o.derive, o.used, o.observed, o.replicates))
    assert set(o.format_text) == set(o.formats) and all(o.format_text.values())
    assert o.model_text and o.words and o.axis_label and o.unit_estimate
    assert o.headline and all(isinstance(q, Quantity) and q.label and q.unit for q in o.headline)
    assert {q.direction for q in o.headline} <= {"lower_better", "higher_better", "none"}
    assert o.quantity(o.headline[0].name) is o.headline[0]
    for key, variables in o.prior_variables.items():
        assert key in o.priors and variables


def test_get_names_the_known_outcomes():
    with pytest.raises(KeyError, match="edss_change"):
        outcomes.get("edss")
    with pytest.raises(ValueError, match="already registered"):
        outcomes.register(outcomes.get("edss_change"))


@pytest.fixture
def toy(tmp_path):
    """The toy outcome: one new file, imported, plus one registry entry (removed afterwards)."""
    path = tmp_path / "toy_outcome.py"
    path.write_text(TOY_MODULE)
    found = importlib.util.spec_from_file_location("toy_outcome", path)
    module = importlib.util.module_from_spec(found)
    sys.modules["toy_outcome"] = module
    found.loader.exec_module(module)
    outcomes.register(module.OUTCOME)
    yield module
    outcomes.unregister("toy")
    del sys.modules["toy_outcome"]


def test_a_toy_outcome_is_one_file_and_one_registry_entry(toy):
    evidence = load_evidence(DATA)
    prior = {"mu": {"dist": "Normal", "mu": 0.2, "sigma": 0.5}}
    spec = spec_from_dict({"name": "toy", "outcome": "toy", "covariates": [], "priors": prior})
    assert spec.outcome_info is outcomes.get("toy") and spec.priors["mu"].params == {"mu": 0.2, "sigma": 0.5}
    units = toy.prepare(spec, evidence).units
    assert len(units) >= 3

    fit = inference.fit(spec, evidence, draws=200, tune=200, chains=2, seed=11)

    # exact conjugate posterior of mu, within 4 Monte Carlo standard errors of the fit's mean
    import arviz_stats as azs

    y, se = units["y"].to_numpy(float), units["se"].to_numpy(float)
    precision = 1 / 0.5**2 + (1 / se**2).sum()
    exact = (0.2 / 0.5**2 + (y / se**2).sum()) / precision
    mu = fit.tree["posterior"]["mu"].values
    mcse = float(azs.mcse(mu, method="mean"))
    assert abs(mu.mean() - exact) < 4 * mcse
    assert 0.5 < mu.std() * math.sqrt(precision) < 1.5  # the posterior SD, loosely
    np.testing.assert_array_equal(fit.tree["derived"]["p_mu_below_0"].values, (mu < 0).astype(float))

    est = diagnostics.study_estimates(fit)
    assert list(est["label"]) == list(units["label"]) and set(est["used"]) == {"change"}
    np.testing.assert_allclose(est["observed"], y)
    assert set(est["shrunken_quantity"]) == {"mu"}
    checks = diagnostics.predictive_checks(fit, seed=1)
    assert len(checks) == len(units) and checks["p_replicate_ge_observed"].between(0, 1).all()
