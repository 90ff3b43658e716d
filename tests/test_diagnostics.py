"""Tests for msc_bayes.diagnostics: the convergence gate, observed estimates and predictive checks.

No MCMC here: fits are faked from numpy draws with the real `prepare` and `derive` of each
outcome module (`fake_fit`), so the DataTree has exactly the layout of a real fit. The
helpers are shared with tests/test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from arviz_base import from_dict
from scipy import stats

from msc_bayes import diagnostics, inference, outcomes
from msc_bayes.evidence import load_evidence
from msc_bayes.inference import Fit
from msc_bayes.outcomes.edss.formats import HALF_STEP
from msc_bayes.spec import load_spec

HOSTILE = "<script>alert(1)</script>"

ARMS = f"""study,arm,design,disease,group,route,courses,n,followup_months,grade
alpha2019,all,single-arm,RRMS,msc,IV,1,10,6,primary
{HOSTILE},all,single-arm,SPMS,msc,IT,2,8,12,primary
beta2020,msc,randomised,RRMS,msc,IV,1,12,6,primary
beta2020,placebo,randomised,RRMS,control,,,11,6,primary
gamma2021,all,single-arm,progressive,msc,IV,1,6,12,secondary
"""
EDSS = f"""study,arm,timepoint_months,n,change_mean,change_sd,change_se,baseline_mean,baseline_sd,followup_mean,followup_sd,improved,stable,worsened,threshold
alpha2019,all,6,10,-0.3,0.6,,,,,,,,,
{HOSTILE},all,12,8,,,,4.0,1.0,3.8,1.1,,,,
beta2020,msc,6,12,,,,,,,,3,7,2,0.5
beta2020,placebo,6,11,0.2,,0.15,,,,,,,,
gamma2021,all,12,6,-0.1,,,,,,,,,,
"""
AES = f"""study,arm,event,attribution,serious,patients_with_event,n_at_risk,events
alpha2019,all,serious_ae,any,true,0,10,
{HOSTILE},all,serious_ae,any,true,1,8,
beta2020,msc,serious_ae,any,true,2,12,
beta2020,placebo,serious_ae,any,true,1,11,
gamma2021,all,fever,any,false,2,6,3
"""
EDSS_SPEC = """name = "EDSS <b>plain</b>"
outcome = "edss_change"
covariates = []
[sampler]
draws = 100
tune = 100
chains = 2
"""
AE_SPEC = """name = "Adverse events"
outcome = "adverse_events"
covariates = []
"""


def write_fixture(folder: Path) -> tuple[Path, Path, Path]:
    """A tiny evidence folder (5 arms, 4 studies, one named like a script tag) and two specs."""
    data = folder / "evidence"
    data.mkdir(parents=True)
    for name, text in (("arms", ARMS), ("edss", EDSS), ("adverse_events", AES)):
        (data / f"{name}.csv").write_text(text, encoding="utf-8")
    specs = folder / "specs"
    specs.mkdir()
    (specs / "edss_plain.toml").write_text(EDSS_SPEC, encoding="utf-8")
    (specs / "ae_plain.toml").write_text(AE_SPEC, encoding="utf-8")
    return data, specs / "edss_plain.toml", specs / "ae_plain.toml"


@pytest.fixture
def fixture_files(tmp_path) -> tuple[Path, Path, Path]:
    return write_fixture(tmp_path)


# --------------------------------------------------------------------------------------
# Fake fits: numpy draws in the layout of a real fit
# --------------------------------------------------------------------------------------


def _edss_draws(prep, rng, C, D):
    units = prep.units
    labels = list(units["label"])
    studies = prep.studies
    formats = list(units["formats"])
    bf = [lb for lb, f in zip(labels, formats) if "baseline_followup" in f]
    arm_sd = [lb for lb, f in zip(labels, formats) if set(f) & {"counts", "means_only", "patient"} and lb not in bf]
    idx = np.array([studies.index(s) for s in units["study"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    p = {"mu": rng.normal(-0.1, 0.2, (C, D)), "tau": np.abs(rng.normal(0, 0.3, (C, D))),
         "study_offset": rng.normal(size=(C, D, len(studies)))}
    if control.any():
        p["msc_effect"] = rng.normal(-0.3, 0.15, (C, D))
    if arm_sd:
        p |= {"sigma_mu": rng.normal(-0.35, 0.2, (C, D)), "sigma_tau": np.abs(rng.normal(0, 0.3, (C, D))),
              "sigma_offset": rng.normal(size=(C, D, len(arm_sd)))}
    if bf:
        p |= {"rho": rng.beta(4, 2, (C, D)), "sd_baseline": np.abs(rng.normal(1, 0.1, (C, D, len(bf)))),
              "sd_followup": np.abs(rng.normal(1, 0.1, (C, D, len(bf))))}

    def theta(p):
        t = p["mu"][..., None] + p["tau"][..., None] * p["study_offset"][..., idx]
        return t - p["msc_effect"][..., None] * control if "msc_effect" in p else t

    dims = {"study_offset": ["study"], "theta": ["arm"], "sigma_offset": ["arm_sd"], "sd_baseline": ["arm_bf"],
            "sd_followup": ["arm_bf"]}
    coords = {"study": studies, "arm": labels, "arm_sd": arm_sd, "arm_bf": bf}
    return p, theta, dims, coords


def _event_draws(prep, rng, C, D):
    units = prep.units
    se = prep.study_events
    events = list(prep.events)
    se_idx = np.array([se.index(s) for s in units["study_event"]])
    ev_idx = np.array([events.index(e) for e in units["event"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    p = {"mu": rng.normal(-3, 0.4, (C, D)), "tau": np.abs(rng.normal(0, 0.5, (C, D))),
         "study_offset": rng.normal(size=(C, D, len(se)))}
    if len(events) > 1:
        p["tau_event"] = np.abs(rng.normal(0, 0.5, (C, D)))
        p["event_offset"] = rng.normal(size=(C, D, len(events)))
    if control.any():
        p["msc_effect"] = rng.normal(0, 0.5, (C, D))

    def theta(p):
        t = p["mu"][..., None] + p["tau"][..., None] * p["study_offset"][..., se_idx]
        if "event_offset" in p:
            p["event_effect"] = p["tau_event"][..., None] * p["event_offset"]
            t = t + p["event_effect"][..., ev_idx]
        return t - p["msc_effect"][..., None] * control if "msc_effect" in p else t

    dims = {"study_offset": ["study_event"], "event_offset": ["event"], "event_effect": ["event"], "theta": ["arm"]}
    coords = {"study_event": se, "event": events, "arm": list(units["label"])}
    return p, theta, dims, coords


def fake_fit(spec, evidence, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
             seed: int | None = None, target_accept: float | None = None, progress: bool = False,
             shift: float = 0.0, divergences: int = 0, walk: bool = False, sticky_energy: bool = False) -> Fit:
    """A Fit like `inference.fit` returns, from independent numpy draws (no MCMC).

    shift: added to mu in chain 0 (R-hat fails); divergences: that many flagged draws;
    walk: mu is a random walk (ESS fails); sticky_energy: energy a random walk (E-BFMI low).
    """
    module = outcomes.get(spec.outcome)
    prep = module.prepare(spec, evidence)
    C, D = chains or 4, draws or 250
    rng = np.random.default_rng(seed or 0)
    make = _edss_draws if spec.outcome == "edss_change" else _event_draws
    p, theta, dims, coords = make(prep, rng, C, D)
    if walk:
        p["mu"] = np.cumsum(rng.normal(0, 0.05, (C, D)), axis=1)
    p["mu"][0] += shift
    p["theta"] = theta(p)
    energy = np.cumsum(rng.normal(size=(C, D)), axis=1) if sticky_energy else rng.normal(size=(C, D))
    diverging = np.zeros(C * D, dtype=bool)
    diverging[:divergences] = True
    used = {k for k in p}
    tree = from_dict({"posterior": p, "sample_stats": {"diverging": diverging.reshape(C, D), "energy": energy,
                                                       "maxdepth_reached": np.zeros((C, D), dtype=bool)}},
                     dims={k: v for k, v in dims.items() if k in used},
                     coords={k: v for k, v in coords.items() if v})
    posterior = tree["posterior"].to_dataset()
    tree["derived"] = xr.DataTree(module.derive(posterior, prep, spec))
    s = spec.sampler
    tree.attrs.update({
        "spec": json.dumps(spec.to_dict()), "priors": json.dumps({k: str(v) for k, v in spec.priors.items()}),
        "seed": int(s.seed if seed is None else seed), "draws": D, "tune": int(tune or s.tune), "chains": C,
        "target_accept": float(target_accept or s.target_accept), "data_hash": evidence.data_hash,
        "data_path": str(evidence.path), "versions": json.dumps(inference.versions()), "sampling_seconds": 0.0,
        "interval": "95% ETI", "notes": json.dumps(list(prep.notes)), "design": json.dumps(prep.design.to_dict()),
        "units": json.dumps(list(prep.units["label"])),
    })
    return Fit(tree, spec, prep)


#: The bytes of every figure file of a run whose figures are not drawn (`undrawn_figures`).
UNDRAWN_PNG = b"\x89PNG\r\n\x1a\n figure not drawn (tests/test_diagnostics.py: undrawn_figures)"


def undrawn_figures(mp) -> None:
    """With `mp` (a MonkeyPatch), a report writes each figure file it would draw, under its own name, as
    UNDRAWN_PNG without drawing it: for tests of run folders, output rules and failures, not of figures
    (those are drawn and checked in test_report.py), where matplotlib took most of a fake-fit report's time."""
    import dataclasses

    from msc_bayes import viz

    every = viz.figures_for
    mp.setattr(viz, "figures_for", lambda fit, **kw: [dataclasses.replace(f, draw=lambda fit, ctx: None)
                                                      for f in every(fit, **kw)])
    mp.setattr(viz, "to_png", lambda fig, **kw: UNDRAWN_PNG)


@pytest.fixture
def edss_fit(fixture_files):
    data, edss_spec, _ = fixture_files
    return fake_fit(load_spec(edss_spec), load_evidence(data))


@pytest.fixture
def ae_fit(fixture_files):
    data, _, ae_spec = fixture_files
    return fake_fit(load_spec(ae_spec), load_evidence(data))


# --------------------------------------------------------------------------------------
# Convergence
# --------------------------------------------------------------------------------------


def test_gate_thresholds_are_the_documented_ones():
    assert (diagnostics.RHAT_MAX, diagnostics.ESS_BULK_MIN, diagnostics.ESS_TAIL_MIN, diagnostics.MAX_DIVERGENCES) == \
        (1.01, 400, 400, 0)


def test_independent_draws_pass_and_every_reported_scalar_is_checked(edss_fit):
    conv = diagnostics.convergence(edss_fit)
    assert conv.passed and conv.reasons == ()
    q = set(conv.table["quantity"])
    assert {"mu", "tau", "msc_effect", "rho", "sigma_mu", "theta_new", "p_new_below[-0.5]", "p_new_below[0]"} <= q
    assert {f"theta[{label}]" for label in edss_fit.prepared.units["label"]} <= q
    assert not any(name.startswith(("study_offset", "sigma_offset")) for name in q)  # plumbing left out
    assert (conv.table["quantity"] == "msc_effect").sum() == 1  # posterior and derived copy listed once
    assert conv.divergences == 0 and conv.draws == 1000 and len(conv.ebfmi) == 4
    for col in ("r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "mcse_eti95_lower", "mcse_eti95_upper"):
        assert conv.table.loc[~conv.table["constant"], col].notna().all(), col


def test_rhat_failure_is_reported(fixture_files):
    data, edss_spec, _ = fixture_files
    conv = diagnostics.convergence(fake_fit(load_spec(edss_spec), load_evidence(data), shift=1.0))
    assert not conv.passed
    assert any(r.startswith("R-hat above 1.01") for r in conv.reasons)


def test_divergences_fail_the_gate(fixture_files):
    data, edss_spec, _ = fixture_files
    conv = diagnostics.convergence(fake_fit(load_spec(edss_spec), load_evidence(data), divergences=3))
    assert conv.divergences == 3
    assert conv.reasons == ("3 divergent transitions (of 1000 draws)",)


def test_low_ess_fails_the_gate(fixture_files):
    data, edss_spec, _ = fixture_files
    conv = diagnostics.convergence(fake_fit(load_spec(edss_spec), load_evidence(data), walk=True))
    assert any(r.startswith("bulk ESS below 400") for r in conv.reasons)
    assert any(r.startswith("tail ESS below 400") for r in conv.reasons)


def test_thresholds_are_read_at_call_time(edss_fit, monkeypatch):
    monkeypatch.setattr(diagnostics, "ESS_BULK_MIN", 10**6)
    conv = diagnostics.convergence(edss_fit)
    assert not conv.passed and conv.reasons[0].startswith("bulk ESS below 1e+06")


def test_low_ebfmi_is_a_warning_not_a_failure(fixture_files):
    data, edss_spec, _ = fixture_files
    conv = diagnostics.convergence(fake_fit(load_spec(edss_spec), load_evidence(data), sticky_energy=True))
    assert conv.passed
    assert any(w.startswith("E-BFMI below 0.3") for w in conv.warnings)


def test_constant_quantities_are_listed_but_not_gated(ae_fit):
    tree = ae_fit.tree.copy()
    derived = tree["derived"].to_dataset()
    derived["predicted_count"] = xr.zeros_like(derived["predicted_count"])
    tree["derived"] = xr.DataTree(derived)
    conv = diagnostics.convergence(Fit(tree, ae_fit.spec, ae_fit.prepared))
    rows = conv.table[conv.table["quantity"].str.startswith("predicted_count")]
    assert len(rows) == len(ae_fit.prepared.units) and rows["constant"].all() and rows["r_hat"].isna().all()
    assert conv.passed


def test_an_indicator_split_evenly_has_a_bulk_rhat_and_no_warning(ae_fit):
    """A probability indicator with exactly half its draws 1 has median 0.5, so its folded
    (tail) R-hat divides 0 by 0; ArviZ then returns the bulk R-hat. Seen in a real report run."""
    tree = ae_fit.tree.copy()
    derived = tree["derived"].to_dataset()
    name = next(v for v in derived.data_vars if v.startswith("p_"))
    C, D = derived[name].shape[:2]
    cells = int(np.prod(derived[name].shape[2:]))
    rng = np.random.default_rng(1)
    half = np.stack([rng.permutation(C * D) < C * D // 2 for _ in range(cells)], axis=-1).astype(float)
    derived[name] = (derived[name].dims, half.reshape(derived[name].shape))
    tree["derived"] = xr.DataTree(derived)
    fit = Fit(tree, ae_fit.spec, ae_fit.prepared)
    conv = diagnostics.convergence(fit)  # warnings are errors in this suite
    rows = conv.table[conv.table["quantity"].str.startswith(name)]
    assert rows["r_hat"].notna().all() and (rows["r_hat"] < 1.05).all()
    assert fit.summary().loc[rows["quantity"], "r_hat"].notna().all()


def test_convergence_to_dict_is_json(edss_fit):
    d = diagnostics.convergence(edss_fit).to_dict()
    assert json.loads(json.dumps(d))["passed"] is True
    assert d["thresholds"]["r_hat_max"] == 1.01


def test_summary_and_gate_are_one_table_computed_once(edss_fit, monkeypatch):
    """Fit.summary (the report's summary CSV) and the gate's table are columns of one
    results.quantity_summary with the same labels and numbers; ArviZ runs once per fit."""
    from msc_bayes import results

    calls = []
    arviz = results._arviz_diagnostics
    monkeypatch.setattr(results, "_arviz_diagnostics", lambda *a: calls.append(a) or arviz(*a))
    conv = diagnostics.convergence(edss_fit)
    summary = edss_fit.summary()
    assert len(calls) == 1
    assert summary.index.name == "quantity"
    assert list(summary.columns) == ["group", "mean", "sd", "eti95_lower", "median", "eti95_upper",
                                     "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    assert list(conv.table.columns) == ["group", "quantity", "constant", "r_hat", "ess_bulk", "ess_tail", "mcse_mean",
                                        "mcse_sd", "mcse_eti95_lower", "mcse_eti95_upper"]
    both = summary.reset_index().merge(conv.table, on=["group", "quantity"], suffixes=("", "_gate"), validate="one_to_one")
    assert len(both) == len(summary) == len(conv.table)
    for col in ("mcse_mean", "ess_bulk", "ess_tail", "r_hat"):
        assert (both[col] == both[f"{col}_gate"]).all(), col
    mu = edss_fit.tree["posterior"]["mu"].values.ravel()
    row = summary.loc["mu"]
    lo, hi = results.quantile_probs()  # (1 - 0.95) / 2 is not the float 0.025
    assert [row["eti95_lower"], row["median"], row["eti95_upper"]] == list(np.quantile(mu, [lo, 0.5, hi]))


# --------------------------------------------------------------------------------------
# Observed and shrunken estimates
# --------------------------------------------------------------------------------------


def test_observed_estimates_follow_each_format(edss_fit):
    obs = diagnostics.observed_estimates(edss_fit).set_index("label")
    z = stats.norm.ppf(0.975)
    alpha = obs.loc["alpha2019:all"]
    assert alpha["observed"] == pytest.approx(-0.3)
    assert alpha["observed_lower"] == pytest.approx(-0.3 - z * 0.6 / np.sqrt(10))
    placebo = obs.loc["beta2020:placebo"]
    assert placebo["observed_upper"] == pytest.approx(0.2 + z * 0.15)
    hostile = obs.loc[f"{HOSTILE}:all"]
    assert hostile["observed"] == pytest.approx(-0.2) and np.isnan(hostile["observed_lower"])
    assert np.isnan(obs.loc["beta2020:msc", "observed"])  # counts give no mean
    assert obs.loc["gamma2021:all", "observed"] == pytest.approx(-0.1)


def test_event_observed_estimates_use_jeffreys_intervals(ae_fit):
    obs = diagnostics.observed_estimates(ae_fit).set_index("label")
    r = obs.loc["beta2020:msc:serious_ae"]
    assert r["observed"] == pytest.approx(2 / 12)
    assert r["observed_lower"] == pytest.approx(stats.beta.ppf(0.025, 2.5, 10.5))
    assert r["observed_upper"] == pytest.approx(stats.beta.ppf(0.975, 2.5, 10.5))


def test_study_estimates_have_shrunken_intervals(edss_fit, ae_fit):
    est = diagnostics.study_estimates(edss_fit)
    assert list(est["label"]) == list(edss_fit.prepared.units["label"])
    assert (est["shrunken_eti95_lower"] < est["shrunken_median"]).all()
    assert (est["shrunken_median"] < est["shrunken_eti95_upper"]).all()
    assert set(est["shrunken_quantity"]) == {"theta"}
    assert set(diagnostics.study_estimates(ae_fit)["shrunken_quantity"]) == {"risk_arm"}


# --------------------------------------------------------------------------------------
# Posterior predictive checks
# --------------------------------------------------------------------------------------


def test_edss_predictive_checks_cover_means_and_counts(edss_fit):
    checks = diagnostics.predictive_checks(edss_fit, seed=1)
    means = checks[checks["check"] == "mean change"].set_index("label")
    assert set(means.index) == {"alpha2019:all", f"{HOSTILE}:all", "beta2020:placebo", "gamma2021:all"}
    counts = checks[checks["check"] == "counts"]
    assert list(counts["observed"]) == [3, 7, 2]
    assert all(counts["statistic"].str.endswith("(threshold 0.5)"))
    assert checks["p_replicate_ge_observed"].between(0, 1).all()
    assert (checks["replicate_eti95_lower"] <= checks["replicate_eti95_upper"]).all()


def test_count_replicates_follow_the_rounding_model(edss_fit):
    """With theta and sigma fixed, replicated counts average n * P(category) under rounding."""
    tree = edss_fit.tree.copy()
    post = tree["posterior"].to_dataset()
    post["theta"] = xr.full_like(post["theta"], -0.4)
    post["sigma_mu"] = xr.full_like(post["sigma_mu"], np.log(0.8))
    post["sigma_tau"] = xr.zeros_like(post["sigma_tau"])
    tree["posterior"] = xr.DataTree(post)
    fit = Fit(tree, edss_fit.spec, edss_fit.prepared)
    units = fit.prepared.units
    checks = diagnostics.predictive_checks(fit, seed=3)
    counts = checks[checks["check"] == "counts"]
    assert len(counts) == 3
    # the replicate median of a Binomial-like count is within 1 of its mean n * p
    t, n = 0.5, int(units.loc[units["label"] == "beta2020:msc", "n"].iloc[0])
    p_improved = stats.norm.cdf(-t + HALF_STEP, -0.4, 0.8)
    p_worse = stats.norm.sf(t - HALF_STEP, -0.4, 0.8)
    expected = [n * p_improved, n * (1 - p_improved - p_worse), n * p_worse]
    assert np.abs(counts["replicate_median"].to_numpy() - expected).max() <= 1.0


def test_event_predictive_checks_use_predicted_counts(ae_fit):
    checks = diagnostics.predictive_checks(ae_fit)
    assert list(checks["label"]) == list(ae_fit.prepared.units["label"])
    assert list(checks["observed"]) == list(ae_fit.prepared.units["patients_with_event"].astype(float))
    assert set(checks["check"]) == {"patients with event"}
