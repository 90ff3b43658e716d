"""The outcome ``event_rates``: events over person-time, events ~ Poisson(exposure · exp(theta)).

Checks: which rows enter and with what count and exposure (zero events exact, unit conversion through the
one home ``schema.PERSON_YEARS_PER_UNIT``, an arm's two counts used once per model, administrations another
scale); the per-unit log likelihood equals scipy's Poisson log pmf at exposure · exp(theta) (the likelihood of
brms's ``poisson`` family with ``offset(log(exposure))``; R is not available here, so brms itself was NOT
run); the derived rates; the exact grid posterior (:mod:`msc_bayes.oracle.poisson`) against adaptive
quadrature and, for a published Poisson data set with exposure times (the pump failures), against MCMC
within 4 Monte Carlo standard errors; and a report of the example spec that renders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import write_evidence
from scipy import integrate, stats

from msc_bayes import inference, outcomes
from msc_bayes.evidence.schema import PERSON_YEARS_PER_UNIT
from msc_bayes.oracle.poisson import log_marginal_study, poisson_lognormal
from msc_bayes.spec import load_spec, spec_from_dict

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "event_rates.toml"
RATES = outcomes.get("event_rates")

#: Pump failures (Gaver & O'Muircheartaigh 1987, Technometrics 29:1-15, Table 1; the BUGS "Pumps" example):
#: failures of 10 power-plant pumps over their operating times in thousands of hours.
PUMP_FAILURES = (5, 1, 5, 14, 3, 19, 1, 1, 4, 22)
PUMP_THOUSAND_HOURS = (94.32, 15.72, 62.88, 125.76, 5.24, 31.44, 1.048, 1.048, 2.096, 10.48)
#: The rows give each operating time in one of the person-time units (a thousand hours as one "year"):
#: as is, times 12 in months, times 365.25 in days, so the model's exposure must come back to the published time.
_UNITS = ("person_years", "person_months", "person_days")
_IN_UNIT = {"person_years": 1.0, "person_months": 12.0, "person_days": 365.25}


def _spec(**options):
    priors = {"mu": {"dist": "Normal", "mu": -2, "sigma": 2}, "tau": {"dist": "HalfNormal", "sigma": 1}}
    return spec_from_dict({"name": "rates", "outcome": "event_rates", "covariates": options.pop("covariates", []),
                           "priors": priors, "options": options})


def _pump_tables():
    arms = [{"study": f"pump{i + 1:02d}", "arm": "all", "n": 1} for i in range(10)]
    rows = []
    for i, (k, t) in enumerate(zip(PUMP_FAILURES, PUMP_THOUSAND_HOURS)):
        unit = _UNITS[i % 3]
        rows.append({"study": f"pump{i + 1:02d}", "arm": "all", "event": "failure", "n_at_risk": 1, "events": k,
                     "exposure": repr(t * _IN_UNIT[unit]), "exposure_unit": unit})
    return arms, rows


@pytest.fixture(scope="module")
def pumps(tmp_path_factory):
    arms, rows = _pump_tables()
    folder = tmp_path_factory.mktemp("pumps")
    return folder, write_evidence(folder, arms=arms, adverse_events=rows)


# --------------------------------------------------------------------------------------
# Which rows enter, with what count and exposure
# --------------------------------------------------------------------------------------


def test_person_time_is_converted_to_person_years_through_the_schema(pumps):
    _, evidence = pumps
    units = RATES.prepare(_spec(), evidence).units
    table = evidence.adverse_events.set_index("study")
    for r in units.itertuples(index=False):
        row = table.loc[r.study]
        assert r.model_exposure == float(row["exposure"]) * PERSON_YEARS_PER_UNIT[row["exposure_unit"]]
    np.testing.assert_allclose(units["model_exposure"], PUMP_THOUSAND_HOURS, rtol=1e-12)
    np.testing.assert_array_equal(units["event_count"], PUMP_FAILURES)
    assert PERSON_YEARS_PER_UNIT["person_months"] * 12 == 1.0 and PERSON_YEARS_PER_UNIT["person_days"] * 365.25 == 1


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Arms whose rows show each rule once; a control arm and routes for the derived quantities."""
    arms = [{"study": s, "arm": "all", "n": 10, "group": "msc", "route": r}
            for s, r in (("zero", "IV"), ("patients", "IV"), ("both", "IT"), ("no_time", "IV"), ("admin", "IT"))]
    arms.append({"study": "zero", "arm": "ctl", "n": 10, "group": "control", "route": "IV"})
    py = {"exposure": 12.5, "exposure_unit": "person_years"}
    rows = [
        {"study": "zero", "arm": "all", "event": "serious_ae", "patients_with_event": 0, "n_at_risk": 10, **py},
        {"study": "zero", "arm": "ctl", "event": "serious_ae", "events": 2, "n_at_risk": 10,
         "exposure": 6, "exposure_unit": "person_months"},
        {"study": "patients", "arm": "all", "event": "serious_ae", "patients_with_event": 2, "n_at_risk": 10, **py},
        {"study": "both", "arm": "all", "event": "serious_ae", "patients_with_event": 2, "events": 3,
         "n_at_risk": 10, **py},
        {"study": "no_time", "arm": "all", "event": "serious_ae", "events": 1, "n_at_risk": 10},
        {"study": "admin", "arm": "all", "event": "serious_ae", "events": 4, "n_at_risk": 10,
         "exposure": 30, "exposure_unit": "administrations"},
    ]
    return write_evidence(tmp_path_factory.mktemp("mixed"), arms=arms, adverse_events=rows)


def test_counts_zero_events_exactly_and_each_count_once(mixed):
    prep = RATES.prepare(_spec(), mixed)
    u = prep.units.set_index("label")
    assert list(u.index) == ["zero:all:serious_ae", "both:all:serious_ae", "zero:ctl:serious_ae"]  # arms.csv order
    assert u.loc["zero:all:serious_ae", "event_count"] == 0.0  # patients_with_event 0, no events column value
    assert u.loc["zero:ctl:serious_ae", "model_exposure"] == 6 * PERSON_YEARS_PER_UNIT["person_months"]
    assert u.loc["both:all:serious_ae", "event_count"] == 3.0  # the events, not the 2 patients
    notes = " | ".join(prep.notes)
    assert "patients:all:serious_ae left out: its event count is not reported" in notes
    assert "no_time:all:serious_ae left out: no exposure reported" in notes
    assert "admin:all:serious_ae left out: its exposure is in administrations" in notes
    assert "both:all:serious_ae: its 3 events enter this model" in notes
    # the adverse-event (risk) model takes the same arm's patients, not its events
    ae = outcomes.get("adverse_events").prepare(spec_from_dict({"name": "ae", "outcome": "adverse_events",
                                                                "covariates": []}), mixed).units.set_index("label")
    assert ae.loc["both:all:serious_ae", "likelihood"] == "binomial"


def test_administrations_are_another_scale(mixed):
    prep = RATES.prepare(_spec(exposure="administrations"), mixed)
    assert list(prep.units["label"]) == ["admin:all:serious_ae"] and prep.units["model_exposure"].tolist() == [30.0]
    assert prep.exposure_words == "administrations"
    assert any("zero:all:serious_ae left out: its exposure is in person_years" in n for n in prep.notes)


def test_a_crossover_arm_keeps_its_periods_person_time(tmp_path):
    """An arm whose 4 patients contribute two periods each: a rate counts events over the periods' person-time,
    as reported (the risk model's n_at_risk - 4 patients does not apply), and its count is not capped."""
    arms = [{"study": "x", "arm": "msc", "n": 10}]
    shared = [{"study": "x", "arm": "msc", "other_arm": "msc", "patients": 4}]
    rows = [{"study": "x", "arm": "msc", "event": "headache", "events": 12, "n_at_risk": 10, "exposure": 60,
             "exposure_unit": "person_months"}]
    ev = write_evidence(tmp_path / "d", arms=arms, adverse_events=rows, shared_patients=shared)
    units = RATES.prepare(_spec(), ev).units
    assert units["event_count"].tolist() == [12.0] and units["model_exposure"].tolist() == [5.0]
    assert units["n"].tolist() == [10.0]


def test_mri_table_is_read_with_option_table(tmp_path):
    arms = [{"study": "s1", "arm": "all", "n": 8}]
    mri = [{"study": "s1", "arm": "all", "event": "gd_enhancing", "timepoint_months": 6, "n_at_risk": 8,
            "events": 5, "exposure": 48, "exposure_unit": "person_months"}]
    ev = write_evidence(tmp_path / "d", arms=arms, mri=mri)
    units = RATES.prepare(_spec(table="mri"), ev).units
    assert units["event_count"].tolist() == [5.0] and units["model_exposure"].tolist() == [4.0]


# --------------------------------------------------------------------------------------
# The likelihood and the derived quantities
# --------------------------------------------------------------------------------------


def test_unit_log_likelihood_is_the_poisson_log_pmf_with_log_exposure_offset(mixed):
    """brms's poisson family with offset(log(exposure)) has log likelihood log Poisson(k | exposure · exp(eta)):
    ours per unit equals scipy's at random parameter values (brms itself was not run: no R here)."""
    model, prep = RATES.build(_spec(covariates=["route"]), mixed)
    rng = np.random.default_rng(7)
    import pytensor

    outs = model.replace_rvs_by_values([model["theta"], model["loglik"]])
    g = pytensor.function(model.value_vars, outs, on_unused_input="ignore", mode="FAST_COMPILE")  # Python ops: no numba compile
    f = lambda point: g(*[point[v.name] for v in model.value_vars])
    for _ in range(3):
        point = {v.name: rng.normal(0, 1.5, np.shape(model.initial_point()[v.name])) for v in model.value_vars}
        theta, ll = f(point)
        k, e = prep.units["event_count"].to_numpy(), prep.units["model_exposure"].to_numpy()
        np.testing.assert_allclose(ll, stats.poisson.logpmf(k, e * np.exp(theta)), rtol=1e-13, atol=0)
    assert {"msc_effect", "beta"} <= set(model.named_vars)


def test_derived_rates_per_100_units_of_exposure(mixed):
    spec = _spec(covariates=["route"])
    prep = RATES.prepare(spec, mixed)
    rng = np.random.default_rng(3)
    C, D, U = 2, 40, len(prep.units)
    post = xr.Dataset({
        "mu": (("chain", "draw"), rng.normal(-2, 1, (C, D))), "tau": (("chain", "draw"), rng.gamma(2, 0.3, (C, D))),
        "msc_effect": (("chain", "draw"), rng.normal(0, 1, (C, D))),
        "beta": (("chain", "draw", "covariate"), rng.normal(0, 1, (C, D, 1))),
        "theta": (("chain", "draw", "arm"), rng.normal(-2, 1, (C, D, U))),
    }, coords={"chain": range(C), "draw": range(D), "covariate": list(prep.design.columns),
               "arm": list(prep.units["label"])})
    d = RATES.derive(post, prep, spec)
    xr.testing.assert_identical(d, RATES.derive(post, prep, spec))  # seeded
    np.testing.assert_allclose(d["rate_pooled"], 100 * np.exp(post["mu"]), rtol=1e-14)
    np.testing.assert_allclose(d["rate_ratio"], np.exp(post["msc_effect"]), rtol=1e-14)
    np.testing.assert_allclose(d["rate_new"], 100 * np.exp(d["theta_new"]), rtol=1e-14)
    np.testing.assert_allclose(d["rate_new_control"], d["rate_new"] * np.exp(-post["msc_effect"]), rtol=1e-12)
    route = next(t for t in prep.design.terms if t.name == "route")
    reference, other = route.levels
    np.testing.assert_allclose(d["rate_by_route"].sel(route=reference), d["rate_new"], rtol=1e-14)
    np.testing.assert_allclose(d["rate_by_route"].sel(route=other),
                               d["rate_new"] * np.exp(post["beta"].sel(covariate=f"route[{other}]")), rtol=1e-12)
    np.testing.assert_array_equal(d["route_contrast"].sel(contrast=f"{other} vs {reference}"),
                                  post["beta"].sel(covariate=f"route[{other}]"))
    e = prep.units["model_exposure"].to_numpy()
    np.testing.assert_allclose(d["expected_events"], e * np.exp(post["theta"]), rtol=1e-14)
    np.testing.assert_allclose(d["rate_arm"], 100 * np.exp(post["theta"]), rtol=1e-14)
    for t in (1.0, 10.0, 100.0):
        np.testing.assert_array_equal(d["p_rate_above"].sel(threshold=t), (d["rate_new"] > t).astype(float))
    assert d["predicted_count"].dims == ("chain", "draw", "arm")


# --------------------------------------------------------------------------------------
# The exact posterior
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, e, mu, tau, rtol", [
    (5, 94.32, -2.0, 1.0, 1e-12), (22, 10.48, 0.0, 0.05, 1e-12), (19, 31.44, -4.0, 2.5, 1e-12),
    (1, 1.048, 2.0, 1e-3, 1e-12), (0, 1.048, -1.0, 3.0, 5e-5), (0, 50.0, -3.0, 0.5, 1e-8)])
def test_grid_integral_matches_adaptive_quadrature(k, e, mu, tau, rtol):
    f = lambda t: stats.poisson.pmf(k, e * math.exp(t)) * stats.norm.pdf(t, mu, tau)
    mode = math.log(max(k, 0.5) / e)
    ref = integrate.quad(f, min(mu, mode) - 15 * tau - 15, max(mu, mode) + 15 * tau + 2, points=sorted({mu, mode}),
                         limit=2000, epsabs=0, epsrel=1e-13)[0]
    got = math.exp(float(log_marginal_study(k, e, np.array(mu), np.array(tau))))
    assert got == pytest.approx(ref, rel=rtol)


def _mcse(x: np.ndarray, method: str, **kw) -> float:
    import arviz_stats as azs

    return float(azs.mcse(x, method=method, **kw))


@pytest.mark.slow
def test_pump_failures_mcmc_matches_the_exact_grid_posterior(pumps):
    """MCMC (the package's fit) against the exact 2-D grid posterior of (mu, tau) of the pump failures under
    mu ~ Normal(-2, 2), tau ~ HalfNormal(1): means and 2.5/50/97.5% quantiles within 4 MCSE."""
    _, evidence = pumps
    exact = poisson_lognormal(PUMP_FAILURES, PUMP_THOUSAND_HOURS, mu_prior=stats.norm(-2, 2),
                              tau_prior=stats.halfnorm(scale=1), mu_range=(-4.5, 2.0), tau_max=4.5, size=301)
    assert exact.edge_mass() < 1e-3
    fit = inference.fit(_spec(), evidence, draws=2500, tune=1000, chains=2, seed=5)
    checks = []
    for name in ("mu", "tau"):
        x = fit.tree["posterior"][name].values
        checks.append((f"mean {name}", x.mean(), exact.mean(name), _mcse(x, "mean")))
        for p in (0.025, 0.5, 0.975):
            checks.append((f"q{p} {name}", np.quantile(x, p), exact.quantile(name, p), _mcse(x, "quantile", prob=p)))
    bad = [c for c in checks if not abs(c[1] - c[2]) <= 4 * c[3]]
    assert not bad, bad


# --------------------------------------------------------------------------------------
# The example spec: loads, fits, reports
# --------------------------------------------------------------------------------------


def test_example_spec_loads_with_the_outcome_defaults():
    spec = load_spec(EXAMPLE)
    assert spec.outcome == "event_rates"
    assert set(spec.options) == set(RATES.options)
    assert {k: v.default for k, v in RATES.options.items()} == dict(spec.options)


@pytest.mark.slow
def test_example_spec_fits_and_its_report_renders(pumps, tmp_path):
    from msc_bayes.reporting import run_report

    folder, _ = pumps
    out = tmp_path / "run"
    run_report(data=folder, models=[str(EXAMPLE)], out=out, draws=300, tune=300, chains=2, sensitivity=False,
               allow_unconverged=True, log=lambda s: None)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Poisson" in html and "events per 100 person-years" in html
    stem = EXAMPLE.stem
    summary = (out / "summary_of_findings.csv").read_text(encoding="utf-8")
    assert "rate_pooled" in summary
    assert list(out.glob(f"{stem}*forest*.png")) or list(out.glob(f"**/{stem}*forest*"))
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["models"][0]["attempts"][0]["draws"] == 300


def test_the_pooled_rate_row_contracts_on_the_log_rate_so_a_prior_decided_rate_is_flagged():
    """The summary row of the pooled rate (100·exp(mu) per 100 person-years) has the contraction of mu: with
    the default prior mu ~ N(-2, 2), posterior draws of log rate with SD s contract by exactly 1 − s²/4."""
    from types import SimpleNamespace

    from msc_bayes.findings import contraction as ct

    spec = spec_from_dict({"name": "r", "outcome": "event_rates", "covariates": []})
    row = next(r for r in outcomes.get("event_rates").summary if r.name == "rate_pooled")
    fit = SimpleNamespace(spec=spec)
    rng = np.random.default_rng(3)
    for s in (0.5, 1.9):
        z = rng.standard_normal(200_000)
        rate = 100 * np.exp(-1.0 + s * (z - z.mean()) / z.std(ddof=1))  # log rate with SD exactly s
        value = ct.contraction(fit, row, rate)
        assert value == pytest.approx(1 - s**2 / 4, abs=1e-9)
        assert ct.mostly_prior(value) == (s > math.sqrt(2))
