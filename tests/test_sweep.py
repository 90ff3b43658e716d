"""Tests of msc_bayes.sweep: scenarios, the local runner, the oracle fast path, and Dask.

The Dask test starts a local multi-process cluster (two worker processes, one thread each):
each worker compiles the small plain model once, so it is marked slow.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from msc_bayes.evidence import load_evidence
from msc_bayes.oracle import normal_normal
from msc_bayes.spec import Prior, spec_from_dict
from msc_bayes.sweep import (
    LOWER,
    SUMMARY_COLUMNS,
    UPPER,
    Scenario,
    oracle_posterior,
    run_sweep,
)

SEED = 20261121
Y = [-0.35, -0.25, -0.4, -0.2, -0.3, -0.45, -0.3, -0.15, 1.2]
SE = [0.1, 0.12, 0.15, 0.1, 0.12, 0.15, 0.1, 0.12, 0.12]
STUDIES = [f"s{i + 1}" for i in range(len(Y))]
TINY = {"draws": 200, "tune": 200, "chains": 2}


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> object:
    folder = tmp_path_factory.mktemp("plain")
    pd.DataFrame({"study": STUDIES, "arm": "a", "timepoint_months": 6.0, "n": 30, "change_mean": Y,
                  "change_se": SE}).to_csv(folder / "edss.csv", index=False)
    return load_evidence(folder)


def spec(**priors):
    return spec_from_dict({"outcome": "edss_change", "covariates": [], "sampler": {"seed": SEED},
                           "priors": {k: v.to_dict() for k, v in priors.items()}})


def test_scenario_validates_its_settings(plain):
    with pytest.raises(ValueError, match="unknown fit settings"):
        Scenario("x", spec(), plain, {"draw": 10})
    with pytest.raises(ValueError, match="method"):
        Scenario("x", spec(), plain, method="exact")
    sc = Scenario("x", spec(), plain, {"exclude_studies": ["s1"]})
    assert sc.fit_kwargs["exclude_studies"] == ("s1",)


def test_scenarios_pickle_for_the_workers(plain):
    sc = Scenario("x", spec(tau=Prior("HalfCauchy", {"beta": 0.3})), plain, TINY, meta={"family": "prior"})
    back = pickle.loads(pickle.dumps(sc))
    assert back.spec == sc.spec and back.evidence.data_hash == plain.data_hash
    pd.testing.assert_frame_equal(back.evidence.edss, plain.edss)


def test_oracle_path_is_exact_and_tagged(plain):
    post = oracle_posterior(spec(), plain)
    y, se = plain.edss["change_mean"].to_numpy(), plain.edss["change_se"].to_numpy()
    ref = normal_normal(y, se, prior_mean=0.0, prior_sd=1.0, tau_logpdf=spec().priors["tau"].logpdf)
    assert post.mu_mean == pytest.approx(ref.mu_mean, rel=1e-12)
    df = run_sweep([Scenario("a", spec(), plain, quantities=("mu", "tau"), meta={"family": "test"}),
                    Scenario("b", spec(), plain, {"exclude_studies": ["s9"]}, quantities=("mu",))])
    assert list(df.columns[:3]) == ["scenario", "family", "quantity"]
    assert set(SUMMARY_COLUMNS) <= set(df.columns) and {"method", "notes", "seconds"} <= set(df.columns)
    assert list(df["method"]) == ["oracle"] * 3
    a = df[(df["scenario"] == "a") & (df["quantity"] == "mu")].iloc[0]
    assert [a[LOWER], a["median"], a[UPPER]] == pytest.approx(list(ref.mu_quantile([0.025, 0.5, 0.975])), rel=1e-9)
    assert a["prob_below_0"] == pytest.approx(ref.cdf(0, 0.0), rel=1e-9)
    b = df[df["scenario"] == "b"].iloc[0]
    ref_b = normal_normal(y[:-1], se[:-1], prior_mean=0.0, prior_sd=1.0, tau_logpdf=spec().priors["tau"].logpdf)
    assert b["mean"] == pytest.approx(ref_b.mu_mean, rel=1e-12)


def test_summarise_is_the_one_summary_engine():
    """sweep.summarise: SUMMARY_COLUMNS of results.quantity_summary, requested quantities in order
    (a variable: all its cells; a cell label: that cell; missing: skipped); constant: MCSE 0, no ESS/R-hat."""
    import xarray as xr

    from msc_bayes import results
    from msc_bayes.sweep import summarise

    rng = np.random.default_rng(SEED)
    draws = {"mu": rng.normal(size=(2, 300)), "theta": rng.normal(size=(2, 300, 2))}
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"mu": (("chain", "draw"), draws["mu"]),
                                 "theta": (("chain", "draw", "study"), draws["theta"])}, coords={"study": ["s1", "s2"]}),
        "derived": xr.Dataset({"p_below": (("chain", "draw", "threshold"), np.ones((2, 300, 2))),
                               "route_contrast": (("chain", "draw", "contrast"), rng.normal(size=(2, 300, 1)))},
                              coords={"threshold": [0.0, 0.5], "contrast": ["IT vs IV"]})})
    df = summarise(tree, quantities=["theta", "mu", "route_contrast[IT vs IV]", "p_below[0]", "missing"])
    assert list(df.columns) == list(SUMMARY_COLUMNS)
    assert list(df["quantity"]) == ["theta[s1]", "theta[s2]", "mu", "route_contrast[IT vs IV]", "p_below[0]"]
    full = results.quantity_summary(tree).set_index("quantity").loc[df["quantity"], list(SUMMARY_COLUMNS[1:])]
    pd.testing.assert_frame_equal(df.set_index("quantity"), full, check_exact=True)
    mu = df.set_index("quantity").loc["mu"]
    lo, hi = results.quantile_probs()
    assert [mu[LOWER], mu["median"], mu[UPPER]] == list(np.quantile(draws["mu"].ravel(), [lo, 0.5, hi]))
    assert mu["prob_below_0"] == np.mean(draws["mu"] < 0)
    const = df.set_index("quantity").loc["p_below[0]"]
    assert const["mcse_mean"] == 0.0 and np.isnan(const["ess_bulk"]) and np.isnan(const["r_hat"])


def test_oracle_does_not_apply_with_covariates_or_another_mu_prior(plain):
    assert oracle_posterior(spec(mu=Prior("StudentT", {"nu": 3, "mu": 0, "sigma": 1})), plain) is None
    bundled = load_evidence(Path(__file__).resolve().parents[1] / "data")
    assert oracle_posterior(spec(), bundled) is None  # several formats and a control arm


def test_failed_scenarios_are_recorded_or_raised(plain):
    bad = Scenario("bad", spec(mu=Prior("StudentT", {"nu": 3, "mu": 0, "sigma": 1})), plain, method="oracle")
    df = run_sweep([bad])
    assert list(df["method"]) == ["error"] and "does not apply" in df["notes"].iloc[0]
    assert np.isnan(df["mean"].iloc[0])
    with pytest.raises(ValueError, match="does not apply"):
        run_sweep([bad], on_error="raise")
    # models that cannot be built: recorded per scenario (not raised before the sweep starts)
    no_rows = spec_from_dict({"outcome": "edss_change", "covariates": [], "options": {"formats": ["counts"]}})
    no_column = spec_from_dict({"outcome": "edss_change", "covariates": ["no_such_column"]})
    df = run_sweep([Scenario("no rows", no_rows, plain), Scenario("no column", no_column, plain)])
    assert list(df["method"]) == ["error", "error"]
    assert "no usable EDSS rows" in df["notes"].iloc[0] and "no_such_column" in df["notes"].iloc[1]


@pytest.mark.slow
def test_dask_cluster_gives_the_local_numbers(plain):
    LocalCluster = pytest.importorskip("distributed").LocalCluster

    scenarios = [
        Scenario("base", spec(), plain, TINY, method="mcmc"),
        Scenario("wide tau", spec(tau=Prior("HalfNormal", {"sigma": 1.0})), plain, TINY, method="mcmc"),
        Scenario("without s9", spec(), plain, {**TINY, "exclude_studies": ["s9"]}, method="mcmc"),
        Scenario("other seed", spec(), plain, {**TINY, "seed": 7}, method="mcmc"),
        Scenario("exact", spec(), plain),
    ]
    local = run_sweep(scenarios)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run_sweep(scenarios, scheduler=cluster.scheduler_address)
    assert list(local["method"]) == ["mcmc"] * 12 + ["oracle"] * 3  # mu, tau, theta_new each
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), remote.drop(columns="seconds"), check_exact=True)
    # and the scenarios did differ
    mu = local[local["quantity"] == "mu"].set_index("scenario")["mean"]
    assert mu["without s9"] < mu["base"] - 0.1 and mu["other seed"] != mu["base"]


def test_a_local_sweep_hands_the_models_it_will_sample_to_the_helper(plain, monkeypatch):
    """One (spec, evidence) per model structure the sweep samples; none for structures only the
    exact oracle answers (inference.precompile itself is tested in test_compile_cache.py)."""
    from msc_bayes import inference, sweep

    handed = []
    monkeypatch.setattr(inference.ENGINE, "precompile", lambda models: handed.extend(models) or [])
    monkeypatch.setattr(sweep, "run_scenario", lambda sc, on_error: sc.name)
    cauchy = spec(tau=Prior("HalfCauchy", {"beta": 0.3}))
    student = spec(mu=Prior("StudentT", {"nu": 4, "mu": 0, "sigma": 1}))
    scenarios = [Scenario("oracle", spec(), plain), Scenario("oracle, other prior value", spec(
                 tau=Prior("HalfNormal", {"sigma": 1.0})), plain),  # the same structure: both exact
                 Scenario("cauchy", cauchy, plain), Scenario("cauchy, mcmc", cauchy, plain, method="mcmc"),
                 Scenario("student", student, plain, TINY)]  # the oracle needs a Normal mu prior
    assert sweep.run_scenarios(scenarios) == [sc.name for sc in scenarios]
    assert [(s.priors["tau"].dist, s.priors["mu"].dist) for s, _ in handed] == [("HalfCauchy", "Normal"),
                                                                                ("HalfNormal", "StudentT")]
    assert all(ev is plain for _, ev in handed)


def test_a_fit_asked_for_twice_or_remembered_is_sampled_once(plain, monkeypatch):
    """sweep.fit_cached (the engine's fit cache): the same request returns the same Fit; other
    settings are another fit; a remembered fit is returned without sampling; the oldest are dropped."""
    from msc_bayes import inference, sweep

    engine = inference.ENGINE
    made = []
    monkeypatch.setattr(engine, "fit", lambda spec, evidence, **kw: made.append(kw) or object())
    monkeypatch.setattr(engine, "fits", OrderedDict())  # the engine's fit cache, empty for this test
    first = sweep.fit_cached(spec(), plain, **TINY)
    assert sweep.fit_cached(spec(), plain, **TINY) is first  # the same request: not sampled again
    assert sweep.fit_cached(spec(), plain, **{**TINY, "seed": SEED}) is first  # the spec's seed, said explicitly
    assert sweep.fit_cached(spec(), plain, **{**TINY, "seed": 7}) is not first
    assert made == [TINY, {**TINY, "seed": 7}]

    remembered = SimpleNamespace(spec=spec(tau=Prior("HalfNormal", {"sigma": 1.0})))
    inference.remember_fit(remembered, plain, **TINY)
    assert sweep.fit_cached(remembered.spec, plain, **TINY) is remembered and len(made) == 2
    for seed in range(engine.FITS_MAX):
        sweep.fit_cached(spec(), plain, **{**TINY, "seed": 100 + seed})
    assert len(engine.fits) == engine.FITS_MAX and sweep.fit_cached(spec(), plain, **TINY) is not first
