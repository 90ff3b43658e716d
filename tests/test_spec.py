"""Tests for msc_bayes.spec: declarative, validated model specs (no sampling)."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import scipy.stats as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from msc_bayes.errors import SpecError
from msc_bayes.outcomes import OUTCOMES
from msc_bayes.spec import (
    DISTRIBUTIONS,
    CovariateOption,
    Prior,
    SamplerSettings,
    Spec,
    load_spec,
    spec_from_dict,
)

MODELS = Path(__file__).resolve().parents[1] / "models"


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def problems(excinfo) -> list:
    return excinfo.value.problems


MINIMAL = {"outcome": "edss_change", "covariates": []}


# --------------------------------------------------------------------------------------
# Bundled specs
# --------------------------------------------------------------------------------------


def test_bundled_edss_change():
    s = load_spec(MODELS / "edss_change.toml")
    assert s.outcome == "edss_change"
    assert s.covariates == ("route", "courses", "timepoint_months")
    assert s.covariate_options["courses"].transform == "log"
    assert s.covariate_options["timepoint_months"].centre == 12.0  # mu is the 12-month change
    assert s.covariate_options["route"].reference == "IV"
    assert s.covariate_options["route"].transform == "identity"
    assert s.priors["mu"] == Prior("Normal", {"mu": 0, "sigma": 1})
    assert s.priors["tau"] == Prior("HalfNormal", {"sigma": 0.5})
    assert s.priors["beta"] == Prior("Normal", {"mu": 0, "sigma": 0.5})
    # written out explicitly, equal to the registry defaults
    assert dict(s.priors) == {k: slot.default for k, slot in OUTCOMES["edss_change"].priors.items()}
    assert s.sampler == SamplerSettings(target_accept=0.99, tune=500)  # see the comments in the spec
    assert s.path == str(MODELS / "edss_change.toml")


@pytest.mark.parametrize("outcome, covariates", [("adverse_events", ("route",)), ("mri_activity", ())])
def test_bundled_binary_specs(outcome, covariates):
    s = load_spec(MODELS / f"{outcome}.toml")
    assert s.outcome == outcome
    assert s.covariates == covariates
    assert set(s.priors) == {"mu", "tau", "beta", "msc_effect", "tau_event"}
    assert s.priors["mu"] == Prior("Normal", {"mu": -2, "sigma": 2})
    assert s.priors["tau"] == Prior("HalfNormal", {"sigma": 1})
    if covariates:
        assert s.covariate_options["route"].reference == "IV"
    assert s.options["attribution"] == "all" and s.options["events"] == ()


def test_bundled_specs_document_every_key():
    """Each bundled spec writes its priors and options out explicitly (not relying on defaults)."""
    import tomllib

    for f in MODELS.glob("*.toml"):
        raw = tomllib.loads(f.read_text())
        info = OUTCOMES[raw["outcome"]]
        assert set(raw["priors"]) == set(info.priors), f
        assert set(raw["options"]) == set(info.options), f
        # each writes out its outcome's defaults (EDSS: target_accept 0.99 and tune 500, documented in the spec)
        expected = SamplerSettings(target_accept=info.target_accept, tune=info.tune).to_dict()
        assert raw["sampler"] == expected, f


# --------------------------------------------------------------------------------------
# Defaults, immutability, round trip
# --------------------------------------------------------------------------------------


def test_defaults_filled(tmp_path):
    s = load_spec(write(tmp_path, 'outcome = "edss_change"\ncovariates = ["courses"]\n', "my_model.toml"))
    assert s.name == "my_model"  # file stem
    assert set(s.priors) == set(OUTCOMES["edss_change"].priors)
    assert s.priors["rho"] == Prior("Beta", {"alpha": 4, "beta": 2})
    assert s.priors["sigma_mu"].params["mu"] == pytest.approx(math.log(0.7))
    assert s.priors["sigma_edss"] == Prior("HalfNormal", {"sigma": 1.5})
    assert dict(s.options) == {
        "timepoint": "last",
        "formats": ("patient", "change", "baseline_followup", "counts", "means_only"),
        "combine": "priority",
        "default_threshold": 0.5,
        "exclude_overlapping": True,
        "exclude_secondary": False,
        "shared_patients": True,
        "carry_over": "estimate",
        "mcid": 0.5,
    }
    assert s.priors["rho_within"] == Prior("TruncatedNormal", {"mu": 0, "sigma": 0.5, "lower": -1, "upper": 1})
    assert s.priors["carry_over"] == Prior("Beta", {"alpha": 1, "beta": 1})
    assert s.covariate_options == {"courses": CovariateOption("identity", False, False, None)}
    # target_accept and tune not given: the outcome's (edss_change: 0.99 and 500, outcomes/edss)
    assert s.sampler == SamplerSettings(draws=1000, tune=500, chains=4, target_accept=0.99, seed=20261121)


def test_partial_priors_and_options_override_only_given_keys():
    s = spec_from_dict({
        "outcome": "adverse_events", "covariates": [],
        "priors": {"tau": {"dist": "HalfCauchy", "beta": 1}},
        "options": {"serious_only": True, "events": ["fever", "headache"]},
    })  # fmt: skip
    assert s.name == "adverse_events"
    assert s.priors["tau"] == Prior("HalfCauchy", {"beta": 1})
    assert s.priors["mu"] == OUTCOMES["adverse_events"].priors["mu"].default
    assert s.options["serious_only"] is True and s.options["events"] == ("fever", "headache")
    assert s.options["attribution"] == "all"


def test_spec_is_immutable():
    s = load_spec(MODELS / "edss_change.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.outcome = "mri_activity"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.priors["tau"] = Prior("HalfNormal", {"sigma": 9})  # type: ignore[index]
    with pytest.raises(TypeError):
        s.options["timepoint"] = "all"  # type: ignore[index]
    with pytest.raises(TypeError):
        s.priors["tau"].params["sigma"] = 9.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.sampler.draws = 5  # type: ignore[misc]
    assert isinstance(s.covariates, tuple) and isinstance(s.options["formats"], tuple)


@pytest.mark.parametrize("name", ["edss_change", "adverse_events", "mri_activity"])
def test_to_dict_round_trip(name):
    s = load_spec(MODELS / f"{name}.toml")
    d = s.to_dict()
    json.dumps(d)  # JSON-serialisable
    assert spec_from_dict(d) == s
    assert spec_from_dict(json.loads(json.dumps(d))) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(spec_from_dict(d)) == hash(s)


def test_prior_round_trip_and_str():
    p = Prior("HalfNormal", {"sigma": 0.5})
    assert str(p) == "HalfNormal(sigma=0.5)"
    assert str(Prior("Normal", {"sigma": 1})) == "Normal(mu=0, sigma=1)"  # PyMC default mu=0 filled in
    assert Prior.from_dict(p.to_dict()) == p
    assert p.to_dict() == {"dist": "HalfNormal", "sigma": 0.5}
    assert pickle.loads(pickle.dumps(p)) == p and hash(p) == hash(Prior("HalfNormal", {"sigma": 0.5}))
    with pytest.raises(SpecError, match="did you mean 'HalfNormal'"):
        Prior("Halfnormal", {"sigma": 1})


def test_replace_validates_and_merges():
    s = load_spec(MODELS / "edss_change.toml")
    r = s.replace(priors={"tau": Prior("HalfCauchy", {"beta": 0.5})}, options={"timepoint": "all"})
    assert r.priors["tau"] == Prior("HalfCauchy", {"beta": 0.5})
    assert r.priors["mu"] == s.priors["mu"] and r.options["formats"] == s.options["formats"]
    assert r.options["timepoint"] == "all" and s.options["timepoint"] == "last"  # original untouched
    r2 = s.replace(covariates=["route"], sampler={"draws": 50})
    assert r2.covariates == ("route",) and set(r2.covariate_options) == {"route"}
    assert r2.covariate_options["route"].reference == "IV" and r2.sampler.draws == 50
    r3 = s.replace(priors={"tau": {"dist": "HalfNormal", "sigma": 2}})
    assert r3.priors["tau"] == Prior("HalfNormal", {"sigma": 2})
    with pytest.raises(SpecError, match="positive values for 'tau'"):
        s.replace(priors={"tau": Prior("Normal", {"mu": 0, "sigma": 1})})
    with pytest.raises(SpecError, match="options.timepoint"):
        s.replace(options={"timepoint": "middle"})


# --------------------------------------------------------------------------------------
# Error kinds
# --------------------------------------------------------------------------------------


def test_toml_syntax_error_reports_line(tmp_path):
    p = write(tmp_path, 'outcome = "edss_change"\ncovariates = []\n[priors\n')
    with pytest.raises(SpecError, match=r"valid TOML \(.*at line 3, column \d+") as ei:
        load_spec(p)
    assert problems(ei)[0].row == 3 and problems(ei)[0].file == str(p)


def test_missing_file():
    with pytest.raises(SpecError, match="readable TOML file"):
        load_spec("/nonexistent/dir/spec.toml")


def test_unknown_top_level_key(tmp_path):
    p = write(tmp_path, 'outcome = "edss_change"\ncovariates = []\noutcom = "x"\n')
    with pytest.raises(SpecError, match=r"did you mean 'outcome'") as ei:
        load_spec(p)
    (prob,) = problems(ei)
    assert prob.column == "outcom" and prob.row == 3 and prob.value == "x"


def test_required_keys_missing():
    with pytest.raises(SpecError) as ei:
        spec_from_dict({})
    assert {p.column for p in problems(ei)} == {"outcome", "covariates"}


def test_unknown_outcome():
    with pytest.raises(SpecError, match=r"did you mean 'edss_change'"):
        spec_from_dict({"outcome": "edss_chnage", "covariates": []})


def test_misspelt_distribution(tmp_path):
    text = 'outcome = "edss_change"\ncovariates = []\n[priors]\ntau = { dist = "HalfNormel", sigma = 0.5 }\n'
    p = write(tmp_path, text)
    with pytest.raises(SpecError, match=r"did you mean 'HalfNormal'") as ei:
        load_spec(p)
    (prob,) = problems(ei)
    assert (prob.column, prob.value, prob.row, prob.file) == ("priors.tau.dist", "HalfNormel", 4, str(p))


def test_misspelt_prior_key():
    d = {**MINIMAL, "priors": {"tua": {"dist": "HalfNormal", "sigma": 0.5}}}
    with pytest.raises(SpecError, match=r"priors.tua.*did you mean 'tau'") as ei:
        spec_from_dict(d)
    assert problems(ei)[0].file == "<dict>"


def test_misspelt_parameter():
    d = {**MINIMAL, "priors": {"mu": {"dist": "Normal", "mu": 0, "sigam": 1}}}
    with pytest.raises(SpecError, match=r"priors.mu.sigam.*did you mean 'sigma'") as ei:
        spec_from_dict(d)
    # and the then-missing required sigma is reported too
    assert {p.column for p in problems(ei)} == {"priors.mu.sigam", "priors.mu.sigma"}


@pytest.mark.parametrize(
    "prior, column, match",
    [
        ({"dist": "HalfNormal"}, "priors.tau.sigma", "required by HalfNormal"),
        ({"dist": "HalfNormal", "sigma": "0.5"}, "priors.tau.sigma", "finite number"),
        ({"dist": "HalfNormal", "sigma": True}, "priors.tau.sigma", "finite number"),
        ({"dist": "HalfNormal", "sigma": float("nan")}, "priors.tau.sigma", "finite number"),
        ({"dist": "HalfNormal", "sigma": -1}, "priors.tau.sigma", "number > 0"),
        ({"dist": "HalfNormal", "sigma": 0}, "priors.tau.sigma", "number > 0"),
        ({"dist": "HalfNormal", "sigma": 1, "mu": 0}, "priors.tau.mu", "a parameter of HalfNormal"),
        ({"dist": "Normal", "tau": 1}, "priors.tau.tau", "not the precision tau"),
        ({"dist": "Exponential", "lam": 1, "scale": 1}, "priors.tau.lam", "exactly one of lam or scale"),
        ({"dist": "Uniform", "lower": 2, "upper": 1}, "priors.tau.upper", "upper > lower"),
        ({"sigma": 1}, "priors.tau.dist", "distribution name"),
        ({"dist": 3}, "priors.tau.dist", "one of Normal"),
        ("HalfNormal(0.5)", "priors.tau", "inline table"),
        ({"dist": "Normal", "mu": 0, "sigma": 1}, "priors.tau.dist", "positive values for 'tau'"),
        ({"dist": "TruncatedNormal", "mu": 0, "sigma": 1, "upper": 3}, "priors.tau.dist", "positive values"),
    ],
)
def test_bad_prior(prior, column, match):
    with pytest.raises(SpecError, match=match) as ei:
        spec_from_dict({**MINIMAL, "priors": {"tau": prior}})
    assert column in {p.column for p in problems(ei)}


@pytest.mark.parametrize(
    "prior, ok",
    [
        ({"dist": "Beta", "alpha": 2, "beta": 2}, True),
        ({"dist": "Uniform", "lower": -1, "upper": 1}, True),
        ({"dist": "TruncatedNormal", "mu": 0.5, "sigma": 0.3, "lower": -1, "upper": 1}, True),
        ({"dist": "Uniform", "lower": -2, "upper": 1}, False),
        ({"dist": "TruncatedNormal", "mu": 0.5, "sigma": 0.3, "lower": -1}, False),
        ({"dist": "Normal", "mu": 0.5, "sigma": 0.1}, False),
    ],
)
def test_rho_support_within_minus1_1(prior, ok):
    d = {**MINIMAL, "priors": {"rho": prior}}
    if ok:
        assert spec_from_dict(d).priors["rho"] == Prior.from_dict(prior)
    else:
        with pytest.raises(SpecError, match=r"support within \[-1, 1\] for 'rho'"):
            spec_from_dict(d)


@pytest.mark.parametrize(
    "options, column, match",
    [
        ({"timepoint": "lats"}, "options.timepoint", "did you mean 'last'"),
        ({"formats": ["patient", "chnage"]}, "options.formats[1]", "did you mean 'change'"),
        ({"formats": []}, "options.formats", "at least one"),
        ({"formats": ["change", "change"]}, "options.formats[1]", "no duplicates"),
        ({"formats": "change"}, "options.formats", "a list of"),
        ({"combine": "both"}, "options.combine", "'priority', 'all'"),
        ({"default_threshold": 0}, "options.default_threshold", "number > 0"),
        ({"default_threshold": "1"}, "options.default_threshold", "number > 0"),
        ({"exclude_overlapping": "yes"}, "options.exclude_overlapping", "true or false"),
        ({"exclude_overlapping": 1}, "options.exclude_overlapping", "true or false"),
        ({"attribution": "any"}, "options.attribution", "an option of edss_change"),  # not an EDSS option
        ({"timepiont": "last"}, "options.timepiont", "did you mean 'timepoint'"),
    ],
)
def test_bad_edss_option(options, column, match):
    with pytest.raises(SpecError, match=match) as ei:
        spec_from_dict({**MINIMAL, "options": options})
    assert [p.column for p in problems(ei)] == [column]


def test_binary_outcome_options():
    base = {"outcome": "mri_activity", "covariates": []}
    s = spec_from_dict({**base, "options": {"attribution": "related", "timepoint": "all", "events": ["Gd+"]}})
    assert s.options["attribution"] == "related" and s.options["events"] == ("Gd+",)
    for bad in ({"attribution": "some"}, {"events": "Gd+"}, {"events": [""]}, {"formats": ["change"]}):
        with pytest.raises(SpecError):
            spec_from_dict({**base, "options": bad})
    bad_priors = {
        "rho": {"dist": "Beta", "alpha": 1, "beta": 1},  # an edss_change prior only
        "tau": {"dist": "HalfNormal", "sigma": 1},
        "tau_evnt": {"dist": "HalfNormal", "sigma": 1},
    }
    with pytest.raises(SpecError, match="a prior of mri_activity.*did you mean 'tau_event'") as ei:
        spec_from_dict({**base, "priors": bad_priors})
    assert [p.column for p in problems(ei)] == ["priors.rho", "priors.tau_evnt"]


@pytest.mark.parametrize(
    "d, column, match",
    [
        ({"covariates": "route"}, "covariates", "a list of column names"),
        ({"covariates": ["route", "route"]}, "covariates[1]", "no duplicate"),
        ({"covariates": ["route", ""]}, "covariates[1]", "non-empty string"),
        ({"covariates": ["route"], "covariate_options": {"rout": {}}},
         "covariate_options.rout", "did you mean 'route'"),
        ({"covariates": ["dose"], "covariate_options": {"dose": {"transform": "sqrt"}}},
         "covariate_options.dose.transform", "'identity', 'log'"),
        ({"covariates": ["dose"], "covariate_options": {"dose": {"center": True}}},
         "covariate_options.dose.center", "did you mean 'centre'"),
        ({"covariates": ["dose"], "covariate_options": {"dose": {"scale": "no"}}},
         "covariate_options.dose.scale", "true or false"),
        ({"covariates": ["dose"], "covariate_options": {"dose": 1}}, "covariate_options.dose", "a table"),
        ({"covariates": [], "sampler": {"draws": 0}}, "sampler.draws", "integer >= 1"),
        ({"covariates": [], "sampler": {"chains": 2.0}}, "sampler.chains", "integer >= 1"),
        ({"covariates": [], "sampler": {"seed": -1}}, "sampler.seed", "integer >= 0"),
        ({"covariates": [], "sampler": {"target_accept": 1}}, "sampler.target_accept", "between 0 and 1"),
        ({"covariates": [], "sampler": {"thin": 2}}, "sampler.thin", "one of draws"),
        ({"covariates": [], "name": ""}, "name", "non-empty string"),
        ({"covariates": [], "priors": [1]}, "priors", "a table"),
    ],
)
def test_bad_structure(d, column, match):
    with pytest.raises(SpecError, match=match) as ei:
        spec_from_dict({"outcome": "edss_change", **d})
    assert [p.column for p in problems(ei)] == [column]


def test_covariate_options(tmp_path):
    s = spec_from_dict({
        "outcome": "edss_change", "covariates": ["dose", "route"],
        "covariate_options": {"dose": {"transform": "log", "centre": True, "scale": True}},
    })  # fmt: skip
    assert s.covariate_options["dose"] == CovariateOption("log", True, True, None)
    assert s.covariate_options["route"] == CovariateOption()
    assert list(s.covariate_options) == ["dose", "route"]


def test_all_problems_reported_together(tmp_path):
    text = """\
outcome = "edss_change"
covariates = ["route"]
nme = "x"
[covariate_options.cources]
transform = "log"
[priors]
tua = { dist = "HalfNormal", sigma = 0.5 }
tau = { dist = "HalfNormel", sigma = 0.5 }
mu = { dist = "Normal", mu = 0, sigma = "one" }
[options]
timepoint = "lats"
[sampler]
draws = -5
"""
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    probs = problems(ei)
    assert len(probs) == 7
    assert {(q.column, q.row) for q in probs} == {
        ("nme", 3),
        ("covariate_options.cources", 4),
        ("priors.tua", 7),
        ("priors.tau.dist", 8),
        ("priors.mu.sigma", 9),
        ("options.timepoint", 11),
        ("sampler.draws", 13),
    }
    assert all(q.file == str(p) for q in probs)
    assert str(ei.value).startswith("7 problem(s) in the model spec:")


# --------------------------------------------------------------------------------------
# Prior.create and Prior.logpdf
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prior, scipy_dist, point",
    [
        (Prior("Normal", {"mu": 1, "sigma": 2}), st.norm(1, 2), 0.3),
        (Prior("HalfNormal", {"sigma": 0.5}), st.halfnorm(scale=0.5), 0.3),
        (Prior("HalfCauchy", {"beta": 1.5}), st.halfcauchy(scale=1.5), 0.7),
        (Prior("Beta", {"alpha": 4, "beta": 2}), st.beta(4, 2), 0.6),
        (Prior("Exponential", {"scale": 2}), st.expon(scale=2), 1.1),
    ],
)
def test_create_makes_variable_of_right_distribution(prior, scipy_dist, point):
    with pm.Model() as model:
        rv = prior.create("theta")
    assert model["theta"] is rv
    assert type(rv.owner.op).__name__.lower().startswith(prior.dist.lower())
    # logp in the model, on the original (constrained) scale, equals scipy's log density
    # (to 1e-7: PyMC builds some logp constants in float32 under PyTensor's default cast policy)
    value = pm.logp(rv, point).eval(mode="FAST_COMPILE")  # Python ops: no numba compile per prior
    assert value == pytest.approx(scipy_dist.logpdf(point), rel=1e-7)


def test_create_with_explicit_model_and_dims():
    model = pm.Model(coords={"cov": ["route", "courses"]})
    rv = Prior("Normal", {"mu": 0, "sigma": 0.5}).create("beta", dims="cov", model=model)
    assert model["beta"] is rv
    assert model.named_vars_to_dims["beta"] == ("cov",)
    assert rv.eval(mode="FAST_COMPILE").shape == (2,)


X = np.array([-1.0, 0.0, 1e-3, 0.2, 0.5, 0.9, 1.0, 2.5, 7.0])


@pytest.mark.parametrize(
    "prior, scipy_dist",
    [
        (Prior("Normal", {"mu": -0.3, "sigma": 0.5}), st.norm(-0.3, 0.5)),
        (Prior("HalfNormal", {"sigma": 0.5}), st.halfnorm(scale=0.5)),
        (Prior("HalfCauchy", {"beta": 1}), st.halfcauchy(scale=1)),
        (Prior("LogNormal", {"mu": 0.2, "sigma": 0.8}), st.lognorm(s=0.8, scale=math.exp(0.2))),
        (Prior("Beta", {"alpha": 4, "beta": 2}), st.beta(4, 2)),
        (Prior("Gamma", {"alpha": 2, "beta": 3}), st.gamma(2, scale=1 / 3)),
        (Prior("StudentT", {"nu": 3, "mu": 0, "sigma": 2}), st.t(3, 0, 2)),
        (Prior("TruncatedNormal", {"mu": 0, "sigma": 1, "lower": -1, "upper": 1}), st.truncnorm(-1, 1)),
    ],
)
def test_logpdf_matches_scipy(prior, scipy_dist):
    got = prior.logpdf(X)
    want = scipy_dist.logpdf(X)
    assert got.shape == X.shape
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9)
    assert np.all(np.isneginf(got[~finite]))  # -inf outside the support, like scipy


def test_logpdf_shape_and_integrates_to_one():
    p = Prior("HalfNormal", {"sigma": 0.5})
    assert p.logpdf(np.zeros((2, 3))).shape == (2, 3)
    assert np.ndim(p.logpdf(0.3)) == 0
    grid = np.linspace(0, 6, 20001)
    assert np.trapezoid(np.exp(p.logpdf(grid)), grid) == pytest.approx(1.0, abs=1e-6)


def test_distribution_table_derived_from_pymc_signatures():
    assert list(DISTRIBUTIONS["Normal"]) == ["mu", "sigma"]
    assert DISTRIBUTIONS["Normal"]["mu"].default == 0.0
    assert "tau" not in DISTRIBUTIONS["HalfNormal"]
    required = {"HalfNormal", "HalfCauchy", "Beta", "Gamma", "Laplace", "Cauchy", "StudentT"}
    assert required <= set(DISTRIBUTIONS)
    for dist in DISTRIBUTIONS:
        import inspect

        sig = inspect.signature(getattr(pm, dist).dist)
        assert set(DISTRIBUTIONS[dist]) <= set(sig.parameters)


def test_registry_defaults_are_valid_for_their_domains():
    for outcome, info in OUTCOMES.items():
        assert {"mu", "tau", "beta", "msc_effect"} <= set(info.priors), outcome
        stated = {k: info.priors[k].default.to_dict() for k in info.required_priors}  # no default: the spec states it
        s = spec_from_dict({"outcome": outcome, "covariates": [], "priors": stated})
        assert dict(s.priors) == {k: slot.default for k, slot in info.priors.items()}
        assert dict(s.options) == {k: o.default for k, o in info.options.items()}
    assert {"edss_change", "adverse_events", "mri_activity", "effect_size"} <= set(OUTCOMES)


# --------------------------------------------------------------------------------------
# Property: spec_from_dict returns a Spec or raises SpecError, never anything else
# --------------------------------------------------------------------------------------

_KEYS = ["name", "outcome", "covariates", "covariate_options", "priors", "options", "sampler", "nme", "", "dist"]
_PRIOR_KEYS = ["mu", "tau", "beta", "msc_effect", "rho", "sigma_mu", "sigma_tau", "sigma_edss", "tau_event", "tua"]
_PARAMS = ["mu", "sigma", "tau", "beta", "alpha", "nu", "lam", "scale", "lower", "upper", "b", "sigam"]
_OPTION_KEYS = ["timepoint", "formats", "combine", "default_threshold", "exclude_overlapping",
                "exclude_secondary", "events", "attribution", "serious_only", "timepiont"]  # fmt: skip
_STRINGS = ["edss_change", "adverse_events", "mri_activity", "last", "all", "priority", "patient", "change",
            "IV", "log", "identity", "route", "courses", "", "HalfNormal", "Normal", "Beta", "Uniform",
            "TruncatedNormal", "Exponential", "HalfNormel", "related"]  # fmt: skip

scalars = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(min_value=-(10**400), max_value=10**400),
    hs.floats(allow_nan=True, allow_infinity=True),
    hs.sampled_from(_STRINGS),
    hs.text(max_size=5),
)
anything = hs.recursive(
    scalars,
    lambda inner: hs.one_of(
        hs.lists(inner, max_size=4),
        hs.dictionaries(hs.one_of(hs.sampled_from(_KEYS + _PARAMS), hs.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=12,
)
prior_body = hs.one_of(
    hs.fixed_dictionaries(
        {"dist": hs.one_of(hs.sampled_from(sorted(DISTRIBUTIONS) + ["HalfNormel", "Flat"]), scalars)},
        optional={p: hs.one_of(hs.floats(-3, 3), scalars) for p in _PARAMS},
    ),
    anything,
)
spec_dicts = hs.fixed_dictionaries(
    {},
    optional={
        "name": hs.one_of(hs.text(max_size=8), scalars),
        "outcome": hs.one_of(hs.sampled_from(list(OUTCOMES) + ["edss"]), scalars),
        "covariates": hs.one_of(hs.lists(hs.sampled_from(["route", "courses", "", "dose"]), max_size=3), anything),
        "covariate_options": hs.one_of(
            hs.dictionaries(
                hs.sampled_from(["route", "courses", "dose"]),
                hs.one_of(
                    hs.fixed_dictionaries({}, optional={
                        "transform": hs.one_of(hs.sampled_from(["log", "identity", "sqrt"]), scalars),
                        "centre": scalars, "scale": scalars, "reference": scalars, "center": scalars}),
                    anything,
                ),
                max_size=3,
            ),
            anything,
        ),
        "priors": hs.one_of(hs.dictionaries(hs.sampled_from(_PRIOR_KEYS), prior_body, max_size=4), anything),
        "options": hs.one_of(
            hs.dictionaries(
                hs.sampled_from(_OPTION_KEYS),
                hs.one_of(hs.lists(hs.sampled_from(_STRINGS), max_size=3), scalars, anything),
                max_size=4,
            ),
            anything,
        ),
        "sampler": hs.one_of(
            hs.dictionaries(hs.sampled_from(["draws", "tune", "chains", "target_accept", "seed", "thin"]), scalars),
            anything,
        ),
        "nme": scalars,
    },
)


_VALID = [load_spec(MODELS / f"{n}.toml").to_dict() for n in ("edss_change", "adverse_events", "mri_activity")]


def _paths(d, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


@hs.composite
def mutated_valid(draw):
    """A valid spec dict with 0-3 entries replaced, deleted or added: mostly near-valid input."""
    import copy

    d = copy.deepcopy(draw(hs.sampled_from(_VALID)))
    for _ in range(draw(hs.integers(0, 3))):
        path = draw(hs.sampled_from(sorted(_paths(d), key=str)))
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        action = draw(hs.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(hs.one_of(scalars, hs.floats(-3, 3), hs.sampled_from(_STRINGS), anything))
        else:
            parent[draw(hs.sampled_from(_KEYS + _PARAMS + _PRIOR_KEYS + _OPTION_KEYS))] = draw(scalars)
        if not d:
            break
    return d


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=hs.one_of(spec_dicts, anything, mutated_valid()))
def test_spec_from_dict_never_raises_anything_but_spec_error(d):
    try:
        s = spec_from_dict(d)
    except SpecError as e:
        assert e.problems, "a SpecError must carry at least one problem"
        str(e)
        return
    assert isinstance(s, Spec)
    assert spec_from_dict(s.to_dict()) == s
    json.dumps(s.to_dict())


def test_centre_may_be_a_value_to_subtract():
    base = {"outcome": "edss_change", "covariates": ["timepoint_months"]}
    s = spec_from_dict(base | {"covariate_options": {"timepoint_months": {"centre": 12}}})
    assert s.covariate_options["timepoint_months"].centre == 12.0
    assert spec_from_dict(s.to_dict()) == s
    assert spec_from_dict(base | {"covariate_options": {"timepoint_months": {"centre": True}}}).covariate_options[
        "timepoint_months"].centre is True
    with pytest.raises(SpecError, match="true, false, or a number"):
        spec_from_dict(base | {"covariate_options": {"timepoint_months": {"centre": "twelve"}}})


def test_share_and_correlation_priors_keep_their_domain():
    """carry_over is a share (support within [0, 1]), rho_within a correlation ([-1, 1])."""
    with pytest.raises(SpecError, match=r"support within \[0, 1\] for 'carry_over'"):
        spec_from_dict({"outcome": "edss_change", "covariates": [],
                        "priors": {"carry_over": {"dist": "Uniform", "lower": -0.5, "upper": 1}}})
    with pytest.raises(SpecError, match=r"support within \[-1, 1\] for 'rho_within'"):
        spec_from_dict({"outcome": "edss_change", "covariates": [],
                        "priors": {"rho_within": {"dist": "Normal", "mu": 0, "sigma": 0.5}}})
    ok = spec_from_dict({"outcome": "edss_change", "covariates": [], "options": {"carry_over": "full"},
                         "priors": {"carry_over": {"dist": "Beta", "alpha": 2, "beta": 5}}})
    assert ok.options["carry_over"] == "full"
