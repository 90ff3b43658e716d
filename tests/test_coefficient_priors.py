"""A prior per covariate coefficient: ``beta`` is every coefficient's default, ``beta_<covariate>`` every column of
one covariate, ``beta_<covariate>_<level>`` one level's column; the most specific wins (``Spec.coefficient_prior``).

Checked without MCMC: the model's log density of ``beta`` against scipy's per column (one family: ``beta`` one
random variable with vector prior data; several: groups stacked into a Deterministic), refits under other values
reusing the compiled form (same structure key, the vector data set by ``data_updates``), the Bayes factor and the
contraction of the route contrast and the courses effect, the Methods sentence, prior reweighting and the
figures' priors, and the errors for unknown covariates and levels.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor
import pytest
from scipy import stats
from test_findings_numbers import covariate_fit

from msc_bayes import outcomes
from msc_bayes.errors import SpecError
from msc_bayes.evidence import load_evidence
from msc_bayes.findings import bayes_factor as bf
from msc_bayes.findings import contraction as ct
from msc_bayes.findings import quantities as q
from msc_bayes.inference.engine import structure_key
from msc_bayes.inference.sampling import data_updates
from msc_bayes.outcomes.covariates import coefficient_prior_data
from msc_bayes.reporting.methods import own_prior_note, priors_text
from msc_bayes.sensitivity.prior import _log_ratio, default_prior_grid, log_prior
from msc_bayes.spec import Prior, load_spec, spec_from_dict
from msc_bayes.viz.common import hyperparameters

REPO = Path(__file__).resolve().parents[1]
NARROW = {"dist": "Normal", "mu": 0, "sigma": 0.1}
#: PyTensor mode of the log densities checked here at a point: the ops' Python implementations compile in
#: well under a second, where the default (numba) mode spends seconds per new graph on empty caches.
CHECK_MODE = "FAST_COMPILE"


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(REPO / "data")


@pytest.fixture(scope="module")
def base_spec():
    return load_spec(REPO / "models" / "edss_change.toml")  # covariates route (reference IV), courses, timepoint


def scipy_logpdf(prior: Prior, x: float) -> float:
    p = prior.params
    if prior.dist == "Normal":
        return float(stats.norm(p["mu"], p["sigma"]).logpdf(x))
    if prior.dist == "StudentT":
        return float(stats.t(p["nu"], p["mu"], p["sigma"]).logpdf(x))
    raise AssertionError(prior.dist)


# --------------------------------------------------------------------------------------
# Resolving keys (at load)
# --------------------------------------------------------------------------------------


def test_most_specific_key_wins():
    spec = spec_from_dict({"outcome": "edss_change", "covariates": ["route", "courses"], "priors": {
        "beta": {"dist": "Normal", "sigma": 0.7}, "beta_route": {"dist": "Normal", "sigma": 0.3},
        "beta_route_IT": NARROW}})
    assert spec.coefficient_key("route[IT]") == "beta_route_IT"
    assert spec.coefficient_prior("route[IT]") == Prior("Normal", {"mu": 0, "sigma": 0.1})
    assert spec.coefficient_key("route[mixed]") == "beta_route"  # the covariate's key for its other levels
    assert spec.coefficient_prior("route[mixed]") == Prior("Normal", {"mu": 0, "sigma": 0.3})
    assert spec.coefficient_key("courses") == "beta"
    assert spec.coefficient_prior("courses") == Prior("Normal", {"mu": 0, "sigma": 0.7})


def test_covariate_names_with_underscores_resolve_longest_first():
    spec = spec_from_dict({"outcome": "edss_change", "covariates": ["timepoint", "timepoint_months"], "priors": {
        "beta_timepoint_months": {"dist": "Normal", "sigma": 0.01}, "beta_timepoint_late": NARROW}})
    assert spec.coefficient_key("timepoint_months") == "beta_timepoint_months"  # the covariate, not a level
    assert spec.coefficient_key("timepoint[late]") == "beta_timepoint_late"  # level "late" of timepoint
    assert spec.coefficient_key("timepoint[early]") == "beta"


def test_quoted_toml_key_for_a_level_with_a_plus(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('outcome = "edss_change"\ncovariates = ["route"]\n[priors]\n'
                    '"beta_route_IT+IV" = { dist = "Normal", mu = 0, sigma = 0.2 }\n', encoding="utf-8")
    spec = load_spec(path)
    assert spec.coefficient_key("route[IT+IV]") == "beta_route_IT+IV"
    assert spec.coefficient_prior("route[IT+IV]").params["sigma"] == 0.2
    assert spec_from_dict(spec.to_dict()) == spec  # the key survives the round trip (fits store to_dict)


def test_unknown_covariate_is_a_spec_error_at_load(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('outcome = "edss_change"\ncovariates = ["route", "courses"]\n[priors]\n'
                    'tau = { dist = "HalfNormal", sigma = 0.5 }\nbeta_rout_IT = { dist = "Normal", sigma = 0.1 }\n',
                    encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.file == str(path) and problem.row == 5 and problem.column == "priors.beta_rout_IT"
    assert "a covariate of covariates: route, courses" in problem.expected
    assert "did you mean 'beta_route'" in problem.expected


def test_coefficient_key_needs_covariates_and_a_beta_slot():
    with pytest.raises(SpecError, match=r"covariates: \(none listed\)"):
        spec_from_dict({"outcome": "edss_change", "covariates": [], "priors": {"beta_route_IT": NARROW}})
    with pytest.raises(SpecError, match="beta_route_IT"):
        spec_from_dict({"outcome": "edss_change", "covariates": ["route"],
                        "priors": {"beta_route_IT": {"dist": "HalfNormal", "sigma": 1, "mu": 3}}})


def test_replace_drops_coefficient_priors_of_covariates_no_longer_listed(base_spec):
    spec = base_spec.replace(priors={"beta_route_IT": NARROW, "beta_courses": NARROW})
    assert set(spec.replace(covariates=["courses"]).priors) - set(base_spec.priors) == {"beta_courses"}


# --------------------------------------------------------------------------------------
# Unknown levels (when the design is built)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "words"), [
    ("beta_route_ITT", "a level of route in the arms used: IT, IT+IV, mixed (reference IV) (did you mean 'IT'?)"),
    ("beta_route_IV", "IV is the reference level, which has no coefficient"),
    ("beta_courses_2", "courses is numeric: one coefficient, no levels"),
])
def test_unknown_level_is_a_spec_error_naming_the_levels(tmp_path, evidence, key, words):
    path = tmp_path / "spec.toml"
    text = (REPO / "models" / "edss_change.toml").read_text(encoding="utf-8")
    path.write_text(text.replace("[priors]\n", f'[priors]\n"{key}" = {{ dist = "Normal", sigma = 0.1 }}\n', 1),
                    encoding="utf-8")
    spec = load_spec(path)  # a level is data: not known at load
    with pytest.raises(SpecError) as info:
        outcomes.get(spec.outcome).prepare(spec, evidence)
    (problem,) = info.value.problems
    assert problem.file == str(path) and problem.column == f"priors.{key}" and problem.value == key
    assert words in problem.expected


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def beta_logp(spec, evidence, x):
    """(model log density of the coefficients at x, its scipy value from each column's prior, the model)."""
    model, prep = outcomes.get(spec.outcome).build(spec, evidence)
    columns = prep.design.columns
    point = model.initial_point()
    priors = [spec.coefficient_prior(c) for c in columns]
    parts = [v for v in model.free_RVs if v.name == "beta" or v.name.startswith("beta_")]
    if [v.name for v in parts] == ["beta"]:
        point["beta"] = x
    else:  # several families: each part holds its columns, in column order
        for v in parts:
            idx = [i for i, p in enumerate(priors) if v.name == f"beta_{p.dist.lower()}_part"]
            point[v.name] = x[idx]
        values = [model.rvs_to_values[v] for v in parts]
        (beta,) = model.replace_rvs_by_values([model["beta"]])
        stacked = pytensor.function(values, beta, mode=CHECK_MODE)(*(point[v.name] for v in values))
        np.testing.assert_array_equal(stacked, x)  # beta, dim covariate, is the coefficients in column order
    logp = model.compile_logp(vars=parts, mode=CHECK_MODE)(point)
    return logp, sum(scipy_logpdf(p, v) for p, v in zip(priors, x)), model, prep


def test_one_level_prior_enters_the_model_for_that_coefficient_only(base_spec, evidence):
    spec = base_spec.replace(priors={"beta_route_IT": NARROW})
    x = np.array([0.3, -0.2, 0.1, 0.25, -0.05])
    logp, expected, model, prep = beta_logp(spec, evidence, x)
    assert prep.design.columns == ("route[IT]", "route[IT+IV]", "route[mixed]", "courses", "timepoint_months")
    assert [v.name for v in model.free_RVs if "beta" in v.name] == ["beta"]  # one family: one variable
    np.testing.assert_array_equal(model["prior_beta_sigma"].get_value(), [0.1, 0.5, 0.5, 0.5, 0.5])
    assert logp == pytest.approx(expected, rel=1e-12)
    # and it is not the default's density: the narrow prior changed exactly the first column's term
    default = sum(scipy_logpdf(base_spec.priors["beta"], v) for v in x)
    assert expected - default == pytest.approx(
        stats.norm(0, 0.1).logpdf(0.3) - stats.norm(0, 0.5).logpdf(0.3), rel=1e-12)


def test_families_per_coefficient_stack_into_beta(base_spec, evidence):
    spec = base_spec.replace(priors={"beta_route_IT": NARROW,
                                     "beta_courses": {"dist": "StudentT", "nu": 3, "mu": 0, "sigma": 0.4}})
    x = np.array([0.3, -0.2, 0.1, 0.25, -0.05])
    logp, expected, model, _ = beta_logp(spec, evidence, x)
    assert sorted(v.name for v in model.free_RVs if "beta" in v.name) == ["beta_normal_part", "beta_studentt_part"]
    assert "beta" in {d.name for d in model.deterministics}
    assert logp == pytest.approx(expected, rel=1e-12)


def test_refit_under_other_values_reuses_the_compiled_form(base_spec, evidence):
    a = base_spec.replace(priors={"beta_route_IT": NARROW})
    b = base_spec.replace(priors={"beta_route_IT": {"dist": "Normal", "mu": 0.2, "sigma": 0.3},
                                  "beta": {"dist": "Normal", "mu": 0, "sigma": 0.8}})
    assert structure_key(a, evidence) == structure_key(b, evidence)
    assert structure_key(a, evidence) != structure_key(base_spec, evidence)  # a new key is a new form
    # a compiled model of `a` given `b`'s data is `b`'s model
    model_a, prep = outcomes.get(a.outcome).build(a, evidence)
    updates = data_updates(b, model_a, prep, ())
    np.testing.assert_array_equal(updates["prior_beta_mu"], [0.2, 0, 0, 0, 0])
    np.testing.assert_array_equal(updates["prior_beta_sigma"], [0.3, 0.8, 0.8, 0.8, 0.8])
    for name in ("prior_beta_mu", "prior_beta_sigma"):
        model_a[name].set_value(updates[name])
    x = np.array([0.3, -0.2, 0.1, 0.25, -0.05])
    point = model_a.initial_point()
    point["beta"] = x
    got = model_a.compile_logp(vars=[model_a["beta"]], mode=CHECK_MODE)(point)
    assert got == pytest.approx(sum(scipy_logpdf(b.coefficient_prior(c), v)
                                    for c, v in zip(prep.design.columns, x)), rel=1e-12)


def test_prior_data_per_group_of_families(base_spec):
    spec = base_spec.replace(priors={"beta_courses": {"dist": "StudentT", "nu": 3, "sigma": 0.4}})
    data = coefficient_prior_data(spec, ("route[IT]", "courses", "timepoint_months"))
    assert set(data) == {"prior_beta_normal_part_mu", "prior_beta_normal_part_sigma", "prior_beta_studentt_part_nu",
                         "prior_beta_studentt_part_mu", "prior_beta_studentt_part_sigma"}
    np.testing.assert_array_equal(data["prior_beta_normal_part_sigma"], [0.5, 0.5])
    np.testing.assert_array_equal(data["prior_beta_studentt_part_sigma"], [0.4])


def test_structure_key_tells_parametrisations_apart(base_spec, evidence):
    lam = base_spec.replace(priors={"tau": {"dist": "Exponential", "lam": 2}})
    scale = base_spec.replace(priors={"tau": {"dist": "Exponential", "scale": 0.5}})
    assert structure_key(lam, evidence) != structure_key(scale, evidence)  # other pm.Data: another graph


# --------------------------------------------------------------------------------------
# Every consumer uses the coefficient's prior
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def narrow_fit(base_spec, evidence):
    spec = base_spec.replace(priors={"beta_route_IT": NARROW, "beta_courses": {"dist": "Normal", "sigma": 0.25}})
    return covariate_fit(spec, evidence)


def row(fit, name):
    return next(r for r in q.rows_for(fit) if r.name == name)


def test_bayes_factor_and_contraction_use_the_coefficients_prior(narrow_fit):
    contrast = row(narrow_fit, "route_contrast[IT vs IV]")
    cell = ct.results.cells(narrow_fit, "route_contrast")["route_contrast[IT vs IV]"]
    factor = q.bayes_factor(narrow_fit, contrast, cell)
    assert factor.prior_density == pytest.approx(stats.norm(0, 0.1).pdf(0), rel=1e-12)
    assert ct.prior_variance(narrow_fit, contrast) == pytest.approx(0.1**2, rel=1e-12)
    courses = row(narrow_fit, "beta[courses]")  # per doubling: multiplier ln 2
    assert ct.prior_variance(narrow_fit, courses) == pytest.approx(0.25**2 * math.log(2) ** 2, rel=1e-12)
    x = ct.results.cells(narrow_fit, "beta")["beta[courses]"]
    assert ct.contraction(narrow_fit, courses, x) == pytest.approx(
        1 - np.var(math.log(2) * x.ravel(), ddof=1) / (0.25**2 * math.log(2) ** 2), rel=1e-12)


def test_contrast_of_two_non_reference_levels_sums_their_priors(narrow_fit):
    contrast = dataclasses.replace(row(narrow_fit, "route_contrast[IT vs IV]"), name="route_contrast[IT vs mixed]")
    assert ct.prior_variance(narrow_fit, contrast) == pytest.approx(0.1**2 + 0.5**2, rel=1e-12)


def test_methods_list_each_coefficients_own_prior(narrow_fit):
    text = priors_text(narrow_fit)
    assert "beta[route[IT]] ~ Normal(mean 0, SD 0.1) (beta_route_IT)" in text
    assert "beta[courses] ~ Normal(mean 0, SD 0.25) (beta_courses)" in text
    assert "beta ~ Normal(mean 0, SD 0.5)" in text and "beta[route[mixed]]" not in text  # beta's own: not repeated


def test_key_table_notes_a_coefficients_own_prior(narrow_fit):
    assert own_prior_note(narrow_fit, "route_contrast[IT vs IV]") == " (prior Normal(mean 0, SD 0.1), beta_route_IT)"
    assert own_prior_note(narrow_fit, "beta[route[IT]]") == " (prior Normal(mean 0, SD 0.1), beta_route_IT)"
    assert own_prior_note(narrow_fit, "beta[courses]") == " (prior Normal(mean 0, SD 0.25), beta_courses)"
    assert own_prior_note(narrow_fit, "route_contrast[IT vs mixed]") == \
        " (prior Normal(mean 0, SD 0.1), beta_route_IT; prior Normal(mean 0, SD 0.5), beta)"
    assert own_prior_note(narrow_fit, "beta[route[mixed]]") == ""  # beta's own: nothing to add
    assert own_prior_note(narrow_fit, "mu") == ""


def test_reweighting_and_power_scaling_use_each_coefficients_prior(narrow_fit):
    beta = narrow_fit.posterior["beta"].transpose("chain", "draw", "covariate")
    lp = log_prior(narrow_fit.spec, "beta", beta)
    columns = list(beta["covariate"].values)
    for i, column in enumerate(columns):
        np.testing.assert_allclose(lp[..., i], narrow_fit.spec.coefficient_prior(column).logpdf(beta.values[..., i]),
                                   rtol=1e-12)
    # changing beta_route_IT reweights by route[IT]'s density ratio only
    new = Prior("Normal", {"mu": 0, "sigma": 0.2})
    x = beta.values[..., columns.index("route[IT]")]
    expected = stats.norm(0, 0.2).logpdf(x) - stats.norm(0, 0.1).logpdf(x)
    np.testing.assert_allclose(_log_ratio(narrow_fit, {"beta_route_IT": new}), expected, rtol=1e-10, atol=1e-12)
    # changing beta moves only the coefficients without a prior of their own
    others = [i for i, c in enumerate(columns) if c not in ("route[IT]", "courses")]
    wide = Prior("Normal", {"mu": 0, "sigma": 1.0})
    xs = beta.values[..., others]
    expected = (stats.norm(0, 1.0).logpdf(xs) - stats.norm(0, 0.5).logpdf(xs)).sum(axis=-1)
    np.testing.assert_allclose(_log_ratio(narrow_fit, {"beta": wide}), expected, rtol=1e-10, atol=1e-12)


def test_default_prior_grid_varies_each_coefficient_prior(narrow_fit):
    grid = default_prior_grid(narrow_fit.spec)
    assert [p.params["sigma"] for p in grid["beta_route_IT"]] == [0.05, 0.2]
    assert [p.params["sigma"] for p in grid["beta_courses"]] == [0.125, 0.5]


def test_prior_posterior_figure_draws_each_coefficients_prior(narrow_fit):
    priors = {label: prior for label, _, prior in hyperparameters(narrow_fit)}
    assert priors["beta[route[IT]]"] == Prior("Normal", {"mu": 0, "sigma": 0.1})
    assert priors["beta[route[mixed]]"] == narrow_fit.spec.priors["beta"]


@pytest.mark.slow
def test_nutpie_refit_under_another_coefficient_prior_value_samples_it_without_recompiling(evidence):
    """The adverse-events model (route: three coefficients) fitted under beta_route_IT = Normal(0, 0.01), then
    Normal(3, 0.01): the second fit reuses the compiled model and samples the new value. The prior's SD is 0.01
    and the data's information on route[IT] is weak (its posterior SD under beta's Normal(0, 1) is ~1), so the
    posterior mean lies within a few prior SDs of the prior mean; a stale first value (0) would be 300 SDs off."""
    from msc_bayes import inference

    spec = load_spec(REPO / "models" / "adverse_events.toml")
    settings = {"draws": 300, "tune": 300, "chains": 2}
    first = inference.fit(spec.replace(priors={"beta_route_IT": NARROW | {"sigma": 0.01}}), evidence, **settings)
    from msc_bayes.inference.engine import ENGINE

    compiled = len(ENGINE.compiled_models)
    second = inference.fit(spec.replace(priors={"beta_route_IT": NARROW | {"mu": 3, "sigma": 0.01}}), evidence,
                           **settings)
    assert len(ENGINE.compiled_models) == compiled  # the same compiled model
    for fit, centre in ((first, 0.0), (second, 3.0)):
        x = fit.posterior["beta"].sel(covariate="route[IT]").values
        assert abs(x.mean() - centre) < 5 * 0.01
        other = fit.posterior["beta"].sel(covariate="route[mixed]").values
        assert other.std() > 0.3  # beta's Normal(0, 1) still governs the other levels


@pytest.mark.slow
def test_report_methods_show_each_coefficients_own_prior(tmp_path, evidence, monkeypatch):
    """A report run (fake fits with beta draws, no sensitivity) on the bundled evidence with a beta_route_IT prior:
    the page's Methods name it, and the summary of findings' Bayes factor of the route contrast is over its
    density at 0."""
    from msc_bayes import inference
    from msc_bayes.reporting.run import report

    text = (REPO / "models" / "edss_change.toml").read_text(encoding="utf-8")
    spec_path = tmp_path / "edss_own.toml"
    spec_path.write_text(text.replace("[priors]\n", '[priors]\nbeta_route_IT = { dist = "Normal", mu = 0, '
                                                     'sigma = 0.1 }\n', 1), encoding="utf-8")
    fits = []

    def fake(spec, evidence_, **kw):
        fits.append(covariate_fit(spec, evidence_))
        return fits[-1]

    monkeypatch.setattr(inference.ENGINE, "fit", fake)
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: [])
    result = report(REPO / "data", spec_path, tmp_path / "run", sensitivity=False, log=lambda s: None)
    html = (result.out / "index.html").read_text(encoding="utf-8")
    assert "beta[route[IT]] ~ Normal(mean 0, SD 0.1) (beta_route_IT)" in html  # Methods
    assert "(prior Normal(mean 0, SD 0.1), beta_route_IT)" in html  # the key table's route contrast row
    (fit,) = fits
    table = pd.read_csv(result.out / "summary_of_findings.csv").set_index("quantity")
    cell = ct.results.cells(fit, "route_contrast")["route_contrast[IT vs IV]"]
    expected = bf.savage_dickey(cell, stats.norm(0, 0.1).pdf(0)).bf10  # Savage-Dickey over the narrow prior
    assert table.loc["route_contrast[IT vs IV]", "bayes_factor_10"] == pytest.approx(expected, rel=1e-9)
    assert table.loc["route_contrast[IT vs IV]", "contraction"] == pytest.approx(
        1 - np.var(cell.ravel(), ddof=1) / 0.1**2, rel=1e-9)


def test_fit_command_reports_an_unknown_level_as_one_message_and_exit_2(tmp_path, capsys):
    from msc_bayes.cli import main

    path = tmp_path / "spec.toml"
    text = (REPO / "models" / "edss_change.toml").read_text(encoding="utf-8")
    path.write_text(text.replace("[priors]\n", '[priors]\nbeta_route_XX = { dist = "Normal", sigma = 0.1 }\n', 1),
                    encoding="utf-8")
    assert main(["fit", str(path), "--data", str(REPO / "data"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "priors.beta_route_XX" in err and "IT, IT+IV, mixed (reference IV)" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()  # refused before any sampling
