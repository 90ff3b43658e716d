"""Tests of msc_bayes.sensitivity: numbers checked against exact values or known directions.

Reference values come from the exact normal-normal posterior (msc_bayes.oracle), from
closed-form predictive densities built on it, or from the construction of the synthetic
data (an outlier study, a deliberately conflicting prior). MCMC comparisons use a multiple
of the Monte Carlo standard error (MCSE_MULTIPLIER, as in test_edss.py).

Cost: sampling tests are marked slow. They share one compiled plain model (same structure,
same evidence), plus one meta-regression model (model comparison) and two small
mixed-format models (threshold 0.5 and 1.0; rho reuses the first).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

from msc_bayes import sensitivity as S
from msc_bayes import viz
from msc_bayes.evidence import load_evidence
from msc_bayes.oracle import normal_normal
from msc_bayes.sensitivity.base import prepare, weighted_summary
from msc_bayes.sensitivity.report_policy import report_arguments
from msc_bayes.spec import Prior, load_spec, spec_from_dict
from msc_bayes.sweep import LOWER, UPPER

REPO = Path(__file__).resolve().parents[1]
SEED = 20261121
MCSE_MULTIPLIER = 4.0
#: Nine studies: eight near -0.3 and one outlier (s9, +1.2) by construction.
Y = [-0.35, -0.25, -0.4, -0.2, -0.3, -0.45, -0.3, -0.15, 1.2]
SE = [0.1, 0.12, 0.15, 0.1, 0.12, 0.15, 0.1, 0.12, 0.12]
X = [0.0, 0.2, 0.1, 0.3, 0.5, 0.4, 0.1, 0.2, 1.0]
STUDIES = [f"s{i + 1}" for i in range(len(Y))]
#: Eight imprecise, similar studies: none moves the posterior much (low Pareto k when left out).
WEAK_Y = [-0.35, -0.1, -0.5, -0.2, -0.4, 0.0, -0.3, -0.25]
WEAK_SE = [0.4, 0.45, 0.5, 0.4, 0.45, 0.5, 0.4, 0.45]
WEAK = [f"w{i + 1}" for i in range(len(WEAK_Y))]
FAST = {"draws": 1000, "tune": 500, "chains": 2}


def write(folder: Path, **tables) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain effect-size table (one change row per study) with a numeric arm covariate x."""
    folder = write(tmp_path_factory.mktemp("plain"),
                   edss={"study": STUDIES, "arm": "a", "timepoint_months": 6.0, "n": 30, "change_mean": Y,
                         "change_se": SE},
                   arms={"study": STUDIES, "arm": "a", "group": "msc", "n": 30, "x": X})
    return load_evidence(folder)


def plain_spec(**priors):
    d = {"outcome": "edss_change", "covariates": [], "sampler": {"seed": SEED}}
    if priors:
        d["priors"] = {k: v.to_dict() if isinstance(v, Prior) else v for k, v in priors.items()}
    return spec_from_dict(d)


def exact(spec, ev, exclude=(), studies=STUDIES):
    keep = [i for i, s in enumerate(studies) if s not in exclude]
    y, se = ev.edss["change_mean"].to_numpy()[keep], ev.edss["change_se"].to_numpy()[keep]
    mu = spec.priors["mu"].params
    return normal_normal(y, se, prior_mean=mu["mu"], prior_sd=mu["sigma"], tau_logpdf=spec.priors["tau"].logpdf)


def row(df, scenario, quantity):
    sel = df[(df["scenario"] == scenario) & (df["quantity"] == quantity)]
    assert len(sel) == 1, (scenario, quantity, df[["scenario", "quantity"]])
    return sel.iloc[0]


# =========================================================================== no sampling
def test_default_prior_grid_keeps_the_median_and_halves_and_doubles_scales(data_dir):
    spec = load_spec(REPO / "models" / "edss_change.toml")
    grid = S.default_prior_grid(spec, load_evidence(data_dir))
    assert set(grid) == {"tau", "mu", "beta", "msc_effect"}  # bundled data: covariates and a control arm
    base_median = stats.halfnorm(scale=0.5).median()
    median = {"HalfCauchy": lambda p: stats.halfcauchy(scale=p.params["beta"]).median(),
              "HalfStudentT": lambda p: stats.t(p.params["nu"]).ppf(0.75) * p.params["sigma"],
              "LogNormal": lambda p: math.exp(p.params["mu"])}
    others = [p for p in grid["tau"] if p.dist != "HalfNormal"]
    assert {p.dist for p in others} == set(median)
    for p in others:  # other shapes share the base median (to 3 significant digits)
        assert median[p.dist](p) == pytest.approx(base_median, rel=2e-3), p
    assert {str(p) for p in grid["tau"] if p.dist == "HalfNormal"} == {"HalfNormal(sigma=0.25)", "HalfNormal(sigma=1)"}
    assert [p.params["sigma"] for p in grid["mu"]] == [0.5, 2.0]
    assert [p.params["sigma"] for p in grid["beta"]] == [0.25, 1.0]


def test_prior_sensitivity_uses_the_exact_oracle_on_a_plain_table(plain):
    spec = plain_spec()
    df = S.prior_sensitivity(spec, plain, grid={"tau": [Prior("HalfCauchy", {"beta": 0.3})]})
    assert set(df["method"]) == {"oracle"}
    assert list(dict.fromkeys(df["scenario"])) == ["base", "tau ~ HalfCauchy(beta=0.3)"]
    assert df.attrs["interval"] == "95% ETI" and {LOWER, UPPER} <= set(df.columns)
    for scenario, s in (("base", spec), ("tau ~ HalfCauchy(beta=0.3)", plain_spec(tau=Prior("HalfCauchy", {"beta": 0.3})))):
        post = exact(s, plain)
        r = row(df, scenario, "mu")
        assert r["mean"] == pytest.approx(post.mu_mean, rel=1e-9)
        assert [r[LOWER], r["median"], r[UPPER]] == pytest.approx(list(post.mu_quantile([0.025, 0.5, 0.975])), rel=1e-9)
        assert row(df, scenario, "tau")["mean"] == pytest.approx(post.tau_mean, rel=1e-9)


def test_leave_one_out_of_the_outlier_moves_the_pooled_mean_down_exactly(plain):
    spec = plain_spec()
    df = S.leave_one_out(spec, plain, quantities=("mu", "tau"))
    assert set(df["method"]) == {"oracle"}
    assert list(df.loc[df["quantity"] == "mu", "left_out"]) == [""] + STUDIES
    shift = df[df["quantity"] == "mu"].set_index("left_out")["shift"]
    # the outlier pulls mu up: without it mu falls, and by more than half a base SD;
    # without any other study mu rises (a little)
    assert shift["s9"] < -0.5 * row(df, "base", "mu")["sd"]
    assert (shift[STUDIES[:-1]] > 0).all()
    assert shift["s9"] == shift.min()
    assert row(df, "without s9", "tau")["mean"] < 0.6 * row(df, "base", "tau")["mean"]
    assert row(df, "without s9", "mu")["mean"] == pytest.approx(exact(spec, plain, ["s9"]).mu_mean, rel=1e-9)


def test_whole_study_subgroups_become_zero_weight_refits_of_the_base_model(data_dir):
    ev = load_evidence(data_dir)
    spec = load_spec(REPO / "models" / "edss_change.toml")
    units = prepare(spec, ev).units
    for name in ("without NMO/NMOSD", "progressive MS only"):  # whole studies out: exact; part of one: None
        s2, e2, _ = S.EVIDENCE_SCENARIOS[name](spec, ev)
        left = set(units["study"]) - set(prepare(s2, e2).units["study"])
        partly = set(units["study"]) & {s for s, a in zip(units["study"], units["arm"])
                                         if (s, a) not in set(zip(e2.arms["study"], e2.arms["arm"]))} - left
        assert S.as_exclusion(spec, ev, s2, e2) == (None if partly else tuple(sorted(left)))
    s2, e2, _ = S.EVIDENCE_SCENARIOS["without MSC-NP and placenta-derived cells"](spec, ev)
    assert S.as_exclusion(spec, ev, s2, e2) == ("harris2018",)
    s2, e2, _ = S.EVIDENCE_SCENARIOS["primary sources only"](spec, ev)
    assert S.as_exclusion(spec, ev, s2, e2) is None  # the spec changes: a model of its own


def test_next_ranked_cohort_replaces_the_cohort_in_use(data_dir):
    ev = load_evidence(data_dir)
    spec = load_spec(REPO / "models" / "edss_change.toml")
    # the old Tehran ranking (Bonab 2012 first), where the next-ranked cohorts have EDSS data
    _, ev, _ = S.EVIDENCE_SCENARIOS["Tehran: Bonab 2012 overlapping the pilots"](spec, ev)
    before = set(prepare(spec, ev).units["label"])
    _, e2, text = S.EVIDENCE_SCENARIOS["next-ranked overlapping cohort"](spec, ev)
    after = set(prepare(spec, e2).units["label"])
    assert "bonab2012:all" in before and "bonab2012:all" not in after
    new = after - before
    assert new and all(lab.split(":")[0] in {"bonab2007", "bonab2005", "sahraian2014"} for lab in new)
    assert "tehran_it" in text


def test_report_table_shift_and_plots():
    rows = []
    for fam, scen, med in [("prior", "base", 0.0), ("prior", "tau wide", -0.2), ("evidence", "no NMO", 0.3)]:
        for q, off in (("msc_effect", 0.0), ("route_contrast[IT vs IV]", 1.0)):
            rows.append({"scenario": scen, "family": fam, "quantity": q, "mean": med + off, "sd": 0.1,
                         "median": med + off, LOWER: med + off - 0.2, UPPER: med + off + 0.2, "prob_below_0": 0.5,
                         "method": "mcmc", "notes": ""})
    df = pd.DataFrame(rows)
    table = S.report_table([df], quantities=["msc_effect", "route_contrast[IT vs IV]"])
    assert list(table["family"]) == ["base", "base", "prior", "prior", "evidence", "evidence"]
    assert table.set_index(["scenario", "quantity"])["shift"].to_dict() == pytest.approx(
        {("base", "msc_effect"): 0.0, ("base", "route_contrast[IT vs IV]"): 0.0, ("tau wide", "msc_effect"): -0.2,
         ("tau wide", "route_contrast[IT vs IV]"): -0.2, ("no NMO", "msc_effect"): 0.3,
         ("no NMO", "route_contrast[IT vs IV]"): 0.3})
    for fig in (viz.plot_sensitivity_grid(table), viz.plot_scenarios(df), viz.plot_prior_sensitivity(df)):
        assert isinstance(fig, Figure) and len(fig.axes) == 2
    ps = pd.DataFrame({"scenario": "base", "quantity": ["mu", "tau"], "prior_sensitivity": [0.1, 0.01],
                       "likelihood_sensitivity": [0.02, 0.2], "diagnosis": ["x", "✓"], "threshold": 0.05})
    assert isinstance(viz.plot_power_scaling(ps), Figure)


def test_public_names_of_the_notebook_and_the_report_families():
    notebook = (REPO / "notebooks" / "sensitivity.ipynb").read_text(encoding="utf-8")
    for module, prefix in ((S, "S"), (viz, "viz")):
        used = set(re.findall(rf"\b{prefix}\.(\w+)", notebook))
        assert used and not [n for n in used if not hasattr(module, n)]
        assert not [n for n in module.__all__ if not hasattr(module, n)]
    assert S.REPORT_FAMILIES == ("prior", "rho", "threshold", "evidence", "leave-one-out")
    assert all(S.FAMILIES[f].family == f for f in S.REPORT_FAMILIES)
    with pytest.raises(ValueError, match="unknown family 'priors'"):  # before anything is sampled
        S.sensitivity_for_report(plain_spec(), None, families=("prior", "priors"))


def test_report_policy_runs_only_scenarios_that_reuse_the_base_model(data_dir):
    ev = load_evidence(data_dir)
    spec = load_spec(REPO / "models" / "edss_change.toml")
    args = report_arguments(spec, ev)
    assert args["families"] == ("prior", "rho", "evidence", "leave-one-out")
    assert args["evidence_names"] == list(S.report_policy.report_evidence(spec, ev))  # see tests/test_scenarios.py
    assert (args["prior_method"], args["refit_unreliable"], args["loo_method"]) == ("reweight", "same-family",
                                                                                   "reweight")
    other_rho = spec.replace(priors={"rho": Prior("TruncatedNormal", {"mu": 0.5, "sigma": 0.2, "lower": -1,
                                                                      "upper": 1})})
    assert "rho" not in report_arguments(other_rho, ev)["families"]  # a tight non-Beta rho would compile


def test_weighted_summary_with_equal_weights_is_the_plain_summary():
    x = np.random.default_rng(1).normal(size=4000)
    w = np.full(x.size, 1 / x.size)
    s = weighted_summary(x, w)
    assert s["mean"] == pytest.approx(x.mean()) and s["median"] == pytest.approx(np.median(x), abs=2e-3)
    assert s[LOWER] == pytest.approx(np.quantile(x, 0.025), abs=5e-3)
    assert s["ess_bulk"] == pytest.approx(x.size)


# =========================================================================== MCMC
@pytest.mark.slow
def test_oracle_fast_path_matches_mcmc_within_mcse(plain):
    grid = {"tau": [Prior("HalfNormal", {"sigma": 1.0})]}
    fast = S.prior_sensitivity(plain_spec(), plain, grid=grid, include_base=False)
    mcmc = S.prior_sensitivity(plain_spec(), plain, grid=grid, include_base=False, method="mcmc", **FAST)
    assert set(fast["method"]) == {"oracle"} and set(mcmc["method"]) == {"mcmc"}
    for q in ("mu", "tau", "theta_new"):
        f, m = fast.set_index("quantity").loc[q], mcmc.set_index("quantity").loc[q]
        assert abs(m["mean"] - f["mean"]) < MCSE_MULTIPLIER * m["mcse_mean"], (q, m["mean"], f["mean"], m["mcse_mean"])
        assert abs(m["sd"] - f["sd"]) < 0.1 * f["sd"], q  # SD within 10% (MC error of an SD with ESS > 400)


@pytest.mark.slow
def test_leave_one_out_refits_move_the_pooled_mean_down_without_the_outlier(plain):
    df = S.leave_one_out(plain_spec(), plain, studies=["s1", "s9"], quantities=("mu",), method="mcmc", **FAST)
    assert set(df["method"]) == {"mcmc"}
    base, s1, s9 = (row(df, n, "mu") for n in ("base", "without s1", "without s9"))
    assert s9["shift"] < -(MCSE_MULTIPLIER * (s9["mcse_mean"] + base["mcse_mean"])) and s9["shift"] < -0.15
    assert s1["shift"] > -MCSE_MULTIPLIER * (s1["mcse_mean"] + base["mcse_mean"])
    truth = exact(plain_spec(), plain, ["s9"]).mu_mean
    assert abs(s9["mean"] - truth) < MCSE_MULTIPLIER * s9["mcse_mean"]


@pytest.mark.slow
def test_reweighting_agrees_with_a_refit(plain):
    grid = {"mu": [Prior("Normal", {"mu": 0.0, "sigma": 0.3})]}
    rw = S.prior_sensitivity(plain_spec(), plain, grid=grid, method="reweight", refit_unreliable=False, **FAST)
    alt = row(rw, "mu ~ Normal(mu=0, sigma=0.3)", "mu")
    assert alt["method"] == "reweight" and alt["pareto_k"] < S.K_THRESHOLD
    truth = exact(plain_spec(mu=Prior("Normal", {"mu": 0.0, "sigma": 0.3})), plain).mu_mean
    assert abs(alt["mean"] - truth) < MCSE_MULTIPLIER * alt["mcse_mean"] + 0.02


@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    """A plain effect-size table of imprecise, similar studies (WEAK): leaving one out is a small
    change that importance reweighting handles."""
    folder = write(tmp_path_factory.mktemp("weak"),
                   edss={"study": WEAK, "arm": "a", "timepoint_months": 6.0, "n": 30, "change_mean": WEAK_Y,
                         "change_se": WEAK_SE},
                   arms={"study": WEAK, "arm": "a", "group": "msc", "n": 30})
    return load_evidence(folder)


@pytest.mark.slow
def test_reweighted_leave_one_out_matches_exact_refits_where_pareto_k_is_low(weak):
    spec, studies, q = plain_spec(), WEAK, ("mu", "tau")
    rw = S.leave_one_out(spec, weak, studies=studies, quantities=q, method="reweight", **FAST)
    mc = S.leave_one_out(spec, weak, studies=studies, quantities=q, method="mcmc", **FAST)
    assert list(dict.fromkeys(rw["scenario"])) == ["base", *(f"without {s}" for s in studies)]
    assert row(rw, "base", "mu")["mean"] == row(mc, "base", "mu")["mean"]  # the same (cached) base fit
    reweighted = set()
    for s in studies:
        truth = exact(spec, weak, [s], studies=WEAK)
        for quantity, true_mean in (("mu", truth.mu_mean), ("tau", truth.tau_mean)):
            r, m = row(rw, f"without {s}", quantity), row(mc, f"without {s}", quantity)
            assert m["method"] == "mcmc"
            # Pareto k is itself estimated from the draws (+-0.2 here): a study the draws give
            # k >= 0.7 is refitted, and its row is then the exact refit
            if r["pareto_k"] >= S.K_THRESHOLD:
                assert r["method"] == "mcmc" and r["mean"] == m["mean"]
                continue
            assert r["method"] == "reweight"
            reweighted.add(s)
            # the reweighted and the refitted posterior mean agree within their Monte Carlo error, and
            # both with the exact posterior mean without the study
            tol = MCSE_MULTIPLIER * math.hypot(r["mcse_mean"], m["mcse_mean"])
            assert abs(r["mean"] - m["mean"]) < tol, (s, quantity, r["mean"], m["mean"], tol)
            assert abs(r["mean"] - true_mean) < MCSE_MULTIPLIER * r["mcse_mean"], (s, quantity, r["mean"], true_mean)
            assert abs(r["shift"] - m["shift"]) < tol
    assert len(reweighted) >= len(studies) // 2  # small changes: reweighting mostly applies
    # a threshold below every k refits every study: the rows are then the exact refits themselves
    forced = S.leave_one_out(spec, weak, studies=studies, quantities=q, method="reweight", k_threshold=-math.inf,
                             **FAST)
    assert list(forced["method"]) == ["mcmc"] * (2 + 2 * len(studies))
    assert list(forced["left_out"]) == ["", ""] + [s for s in studies for _ in q]
    assert np.array_equal(forced["mean"], mc["mean"]) and forced["pareto_k"].iloc[2:].notna().all()
    assert forced["notes"].iloc[2:].str.contains("refitted: Pareto k").all()


@pytest.mark.slow
def test_reweighted_leave_one_out_refits_a_study_with_high_pareto_k(plain):
    # the outlier moves the posterior too far for importance sampling: its k is high, so it is refitted
    spec = plain_spec()
    rw = S.leave_one_out(spec, plain, studies=["s9"], quantities=("mu",), method="reweight", **FAST)
    mc = S.leave_one_out(spec, plain, studies=["s9"], quantities=("mu",), method="mcmc", **FAST)
    s9 = row(rw, "without s9", "mu")
    assert s9["method"] == "mcmc" and s9["pareto_k"] > S.K_THRESHOLD and "refitted: Pareto k" in s9["notes"]
    assert s9["mean"] == row(mc, "without s9", "mu")["mean"]  # the exact refit itself
    assert s9["shift"] == pytest.approx(row(mc, "without s9", "mu")["shift"])
    assert abs(s9["mean"] - exact(spec, plain, ["s9"]).mu_mean) < MCSE_MULTIPLIER * s9["mcse_mean"]


def _studies_out(*studies):
    """An evidence scenario leaving ``studies`` out (whole studies: an exact zero-weight fit of the base model)."""
    def scenario(spec, ev):
        return spec, ev.subset(arms_where=lambda a: ~a["study"].isin(studies)), "left out: " + ", ".join(studies)
    return scenario


@pytest.mark.slow
def test_evidence_exclusions_are_reweighted_where_pareto_k_is_low_and_refitted_where_it_is_high(weak, plain):
    spec, q = plain_spec(), ("mu", "tau")
    scenarios = {"without w2 and w6": _studies_out("w2", "w6"), "without w3": _studies_out("w3")}
    rw = S.evidence_scenarios(spec, weak, scenarios=scenarios, quantities=q, method="reweight", **FAST)
    mc = S.evidence_scenarios(spec, weak, scenarios=scenarios, quantities=q, method="mcmc", **FAST)
    assert list(dict.fromkeys(rw["scenario"])) == ["base", *scenarios]
    assert row(rw, "base", "mu")["mean"] == row(mc, "base", "mu")["mean"]  # the one (cached) base fit
    reweighted = 0
    for name, out in (("without w2 and w6", ["w2", "w6"]), ("without w3", ["w3"])):
        truth = exact(spec, weak, out, studies=WEAK)
        for quantity, true_mean in (("mu", truth.mu_mean), ("tau", truth.tau_mean)):
            r, m = row(rw, name, quantity), row(mc, name, quantity)
            if r["pareto_k"] > S.K_THRESHOLD:  # k is estimated from the draws: such a row is the exact refit
                assert r["method"] == "mcmc" and r["mean"] == m["mean"] and "refitted: Pareto k" in r["notes"]
                continue
            reweighted += 1
            assert r["method"] == "reweight" and "PSIS reweighting, Pareto k" in r["description"]
            # the importance-sampled and the refitted posterior agree within their Monte Carlo error,
            # and both with the exact posterior without the studies
            tol = MCSE_MULTIPLIER * math.hypot(r["mcse_mean"], m["mcse_mean"])
            assert abs(r["mean"] - m["mean"]) < tol, (name, quantity, r["mean"], m["mean"], tol)
            assert abs(r["mean"] - true_mean) < MCSE_MULTIPLIER * r["mcse_mean"], (name, quantity, r["mean"], true_mean)
    assert reweighted >= 2  # small changes: importance sampling applies to at least one scenario
    # the outlier moves the posterior too far: its k is high, so its row is the exact zero-weight refit
    out = S.evidence_scenarios(spec, plain, scenarios={"without s9": _studies_out("s9")}, quantities=("mu",),
                               method="reweight", **FAST)
    s9 = row(out, "without s9", "mu")
    assert s9["method"] == "mcmc" and s9["pareto_k"] > S.K_THRESHOLD and "refitted: Pareto k" in s9["notes"]
    assert abs(s9["mean"] - exact(spec, plain, ["s9"]).mu_mean) < MCSE_MULTIPLIER * s9["mcse_mean"]


@pytest.mark.slow
def test_power_scaling_flags_a_conflicting_prior_and_not_a_vague_one(plain):
    from msc_bayes.inference import fit

    conflict = fit(plain_spec(mu=Prior("Normal", {"mu": 3.0, "sigma": 0.1})), plain, **FAST)
    vague = fit(plain_spec(mu=Prior("Normal", {"mu": 0.0, "sigma": 10.0})), plain, **FAST)
    pc = S.power_scaling(conflict).set_index("quantity")
    pv = S.power_scaling(vague).set_index("quantity")
    assert set(pc.index) == {"mu", "tau"} and pc["power_scaled"].iloc[0] == "mu, tau"
    assert pc.loc["mu", "prior_sensitivity"] >= 0.05 and pc.loc["mu", "diagnosis"] != "✓"
    assert pv.loc["mu", "prior_sensitivity"] < 0.05 and pv.loc["mu", "diagnosis"] == "✓"
    assert pc.loc["mu", "prior_sensitivity"] > 3 * pv.loc["mu", "prior_sensitivity"]


@pytest.mark.slow
def test_model_comparison_exact_refits_match_the_exact_predictive_density(plain):
    spec = plain_spec()
    df = S.compare_models(spec, plain, {"plain": [], "x": ["x"]}, k_threshold=-math.inf, **FAST)
    assert set(df["scenario"]) == {"plain", "x"} and df["weight"].sum() == pytest.approx(1.0)
    pw = df.attrs["pointwise"]
    assert (pw["method"] == "exact refit").all() and len(pw) == 2 * len(STUDIES)
    # exact log p(y_s | y_-s) of the plain model: a normal mixture over the oracle's tau nodes
    y, se = plain.edss["change_mean"].to_numpy(), plain.edss["change_se"].to_numpy()
    for i, s in enumerate(STUDIES):
        post = exact(spec, plain, [s])
        m = post.gamma_mean_nodes[:, 0]
        v = post.gamma_cov_nodes[:, 0, 0] + post.tau_nodes**2 + se[i] ** 2
        truth = float(np.log(np.dot(post.tau_weights, stats.norm.pdf(y[i], m, np.sqrt(v)))))
        r = pw[(pw["model"] == "plain") & (pw["study"] == s)].iloc[0]
        if s == "s9":
            # The outlier's held-out density lives in the far tail of tau | y_-s, which 2000 draws
            # barely reach: the Monte Carlo mean is biased low (Jensen) and its MCSE optimistic.
            # Only the direction is checked: far worse than every other study, and not above the truth.
            assert r["elpd"] < pw.loc[(pw["model"] == "plain") & (pw["study"] != "s9"), "elpd"].min() - 5
            assert r["elpd"] < truth + MCSE_MULTIPLIER * r["elpd_exact_mcse"]
            continue
        assert abs(r["elpd"] - truth) < MCSE_MULTIPLIER * r["elpd_exact_mcse"] + 0.01, (s, r["elpd"], truth)
    plain_row = df.set_index("scenario").loc["plain"]
    assert plain_row["elpd"] == pytest.approx(pw[pw["model"] == "plain"]["elpd"].sum())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Three single-arm studies: counts without a stated threshold, baseline/follow-up, and a change."""
    return load_evidence(write(
        tmp_path_factory.mktemp("mixed"),
        edss=[{"study": "c", "arm": "a", "timepoint_months": 12, "n": 20, "improved": 8, "stable": 10, "worsened": 2},
              {"study": "b", "arm": "a", "timepoint_months": 12, "n": 25, "baseline_mean": 5.0, "baseline_sd": 1.2,
               "followup_mean": 4.6, "followup_sd": 1.3},
              {"study": "d", "arm": "a", "timepoint_months": 12, "n": 30, "change_mean": -0.2, "change_sd": 0.8}],
        arms=[{"study": s, "arm": "a", "group": "msc", "n": n} for s, n in (("c", 20), ("b", 25), ("d", 30))]))


@pytest.mark.slow
def test_threshold_and_rho_sensitivity_return_their_scenarios(mixed):
    spec = spec_from_dict({"outcome": "edss_change", "covariates": [], "sampler": {"seed": SEED}})
    q = ("mu", "theta[c:a]", "theta[b:a]")
    th = S.threshold_sensitivity(spec, mixed, thresholds=(1.0,), quantities=q, **FAST)
    assert list(dict.fromkeys(th["scenario"])) == ["base", "threshold 1"]
    assert list(dict.fromkeys(th["threshold"])) == [0.5, 1.0]
    assert th["notes"].str.contains("default threshold applies to: c:a").all()
    # 8 of 20 improved by >= 1 point says more than 8 of 20 improved by >= 0.5 points
    assert row(th, "threshold 1", "theta[c:a]")["median"] < row(th, "base", "theta[c:a]")["median"] - 0.1
    rho = S.rho_sensitivity(spec, mixed, values=(0.2, 0.8), quantities=q, **FAST)
    assert list(dict.fromkeys(rho["scenario"])) == ["rho ~ Beta(alpha=4, beta=2) (prior)", "rho = 0.2", "rho = 0.8"]
    for v in (0.2, 0.8):
        assert row(rho, f"rho = {v:g}", "rho")["median"] == pytest.approx(v, abs=0.03)
    # a lower pre-post correlation means a noisier change: a wider interval for the baseline/follow-up arm
    width = {n: row(rho, n, "theta[b:a]")[UPPER] - row(rho, n, "theta[b:a]")[LOWER] for n in ("rho = 0.2", "rho = 0.8")}
    assert width["rho = 0.2"] > 1.3 * width["rho = 0.8"]


@pytest.mark.slow
def test_sensitivity_for_report_table_and_psense(plain):
    res = S.sensitivity_for_report(plain_spec(), plain, families=("prior", "evidence", "leave-one-out"),
                                   evidence_names=["next-ranked overlapping cohort"], **FAST)
    table, ps = res
    assert set(table["quantity"]) == {"mu"}  # no control arm: the pooled effect is mu; no route covariate
    # the one evidence scenario is the base analysis here (no overlap groups): nothing fitted, no evidence row
    assert list(dict.fromkeys(table["family"])) == ["base", "prior", "leave-one-out"]
    assert (table["family"] == "base").sum() == 1 and table.attrs["interval"] == "95% ETI"
    base = table[table["family"] == "base"].iloc[0]
    assert np.allclose(table["shift"], table["median"] - base["median"])
    assert table.set_index("scenario").loc["without s9", "shift"] < -0.1  # the outlier pulls mu up
    # no overlap groups in this table: the scenario is the base analysis, so nothing is fitted and it has no row
    assert "next-ranked overlapping cohort" not in set(table["scenario"])
    assert set(ps["quantity"]) == {"mu", "tau"} and {"prior_sensitivity", "diagnosis"} <= set(ps.columns)
    assert isinstance(viz.plot_sensitivity_grid(table), Figure)
