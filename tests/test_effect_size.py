"""The effect-size outcome (outcomes.effect_size): a user's estimates y with se, a CI, or sd and n.

Reference values are exact: the normal-normal posterior of msc_bayes.oracle (itself checked against the numbers
the bayesmeta vignette prints, tests/test_oracle.py; the eight schools' tau median is asserted here again), the
normal quantile of a CI, and the Student-t marginal of an arm reported with an SD (integrated numerically).
Monte Carlo comparisons use 4 MCSE of the fit's own summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from msc_bayes import inference, sweep
from msc_bayes.errors import EvidenceError, SpecError
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import effect_size
from msc_bayes.spec import load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "effect_size"
SEED = 20261201
#: The eight schools (bayesmeta's Rubin1981 data, the example's effect_sizes.csv) under the priors of the
#: bayesmeta vignette's schools.example.1, which prints tau's posterior median 4.758539 and mu's 7.962961
#: (C. Röver, "An introduction to meta-analysis using the bayesmeta package", CRAN bayesmeta inst/doc)
BAYESMETA_TAU_MEDIAN = 4.758539
BAYESMETA_MU_MEDIAN, BAYESMETA_MU_SD = 7.962961, 4.995762
PRIORS = {"mu": {"dist": "Normal", "mu": 0, "sigma": 50}, "tau": {"dist": "HalfCauchy", "beta": 25}}


def spec(**options):
    return spec_from_dict({"name": "es", "outcome": "effect_size", "covariates": [], "priors": PRIORS,
                           "options": options})


def write(folder: Path, rows: list[dict], arms: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "effect_sizes.csv", index=False)
    if arms is not None:
        pd.DataFrame(arms).to_csv(folder / "arms.csv", index=False)
    return folder


def test_a_spec_round_trips_with_its_defaults():
    s = spec()  # important not given (None), unit and label their defaults
    assert s.options["important"] is None and s.options["thresholds"] == (0.0,)
    assert spec_from_dict(s.to_dict()) == s
    assert s.replace(sampler={"seed": 5}).sampler.seed == 5  # as fit re-seeds a spec


def test_the_spec_must_state_mu_and_tau():
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "es", "outcome": "effect_size", "covariates": [],
                        "priors": {"mu": PRIORS["mu"]}})
    text = str(err.value)
    assert "priors.tau" in text and "no default for 'tau'" in text and "priors.mu" not in text


@pytest.mark.parametrize(("options", "match"), [
    ({"thresholds": ["a"]}, "distinct finite numbers"),
    ({"thresholds": [0, 0]}, "distinct finite numbers"),
    ({"label": " "}, "non-empty string"),
    ({"direction": "lower"}, "lower_better"),
    ({"important": -1}, "> 0"),
])
def test_options_are_checked_when_the_spec_is_loaded(options, match):
    with pytest.raises(SpecError, match=match):
        spec(**options)


def test_formats_and_known_se(tmp_path):
    rows = [
        {"study": "a", "arm": "x", "y": 0.3, "se": 0.1, "ci_lower": -5, "ci_upper": 5, "sd": 1, "n": 10},  # se first
        {"study": "b", "arm": "x", "y": 0.2, "ci_lower": -0.1, "ci_upper": 0.6, "ci_level": 0.9},
        {"study": "c", "arm": "x", "y": 0.1, "ci_lower": -0.2, "ci_upper": 0.5},  # level not given: 0.95
        {"study": "d", "arm": "x", "y": 0.4, "sd": 1.2, "n": 12},
        {"study": "e", "arm": "x", "y": 0.4, "sd": 1.2, "n": 1},  # an SD of one patient gives no SE
    ]
    prep = effect_size.prepare(spec(), load_evidence(write(tmp_path, rows)))
    u = prep.units.set_index("study")
    assert list(u["likelihood"]) == ["se", "ci", "ci", "sd"]
    assert u.loc["a", "se_known"] == 0.1
    assert u.loc["b", "se_known"] == pytest.approx(0.7 / (2 * stats.norm.ppf(0.95)), rel=1e-12)
    assert u.loc["c", "se_known"] == pytest.approx(0.7 / (2 * stats.norm.ppf(0.975)), rel=1e-12)
    assert np.isnan(u.loc["d", "se_known"])
    assert any(n.startswith("e:x left out") and "n = 1" in n for n in prep.notes)


def test_timepoint_and_empty_table(tmp_path):
    rows = [{"study": "a", "arm": "x", "y": 1.0, "se": 0.5, "timepoint_months": t} for t in (3, 12)]
    ev = load_evidence(write(tmp_path / "t", rows))
    assert list(effect_size.prepare(spec(), ev).units["timepoint_months"]) == [12]
    assert list(effect_size.prepare(spec(timepoint="first"), ev).units["timepoint_months"]) == [3]
    assert len(effect_size.prepare(spec(timepoint="all"), ev).units) == 2
    only_keys = write(tmp_path / "k", rows, arms=[{"study": "a", "arm": "x"}])  # arms.csv of study and arm only
    units = effect_size.prepare(spec(), load_evidence(only_keys)).units
    assert list(units["group"]) == ["msc"] and list(units["se_known"]) == [0.5]
    write(tmp_path / "e", [{"study": "a", "arm": "x", "y": 1.0, "se": 0.5}])
    ev = load_evidence(tmp_path / "e").with_tables(effect_sizes=pd.DataFrame(columns=["study", "arm", "y"]))
    with pytest.raises(EvidenceError, match="effect_sizes.csv"):
        effect_size.prepare(spec(), ev)


def test_an_arm_with_sd_and_n_has_a_student_t_likelihood(tmp_path):
    """Integrated over its SD sigma (Jeffreys prior: flat in log sigma), the model's log likelihood of a row
    with sd and n is Student t(n - 1) with scale sd / sqrt(n), up to a constant: the SD is data with
    uncertainty, so the tails are heavier than a plug-in SD's normal."""
    y, sd, n = 0.4, 1.2, 6
    ev = load_evidence(write(tmp_path, [{"study": "a", "arm": "x", "y": y, "sd": sd, "n": n}]))
    model, _ = effect_size.OUTCOME.build(spec(), ev)
    assert "log_sigma" in model.named_vars and type(model["log_sigma"].owner.op).__name__ == "FlatRV"
    (loglik_of_values,) = model.replace_rvs_by_values([model["loglik"][0]])
    # Python ops (FAST_COMPILE): a numba compile of this graph costs seconds on empty caches, its calls here are few
    f = model.compile_fn(loglik_of_values, inputs=model.value_vars, point_fn=False, mode="FAST_COMPILE")
    names = [v.name for v in model.value_vars]

    def loglik(theta, log_sigma):  # tau ~ 0: theta = mu
        point = {"mu": theta, "tau_log__": np.log(1e-12), "study_offset": np.zeros(1),
                 "log_sigma": np.array([log_sigma])}
        return float(f(*[point[k] for k in names]))

    thetas = np.array([-1.0, 0.0, 0.4, 1.5, 3.0])
    marginal = np.array([np.log(integrate.quad(lambda s, t=t: np.exp(loglik(t, s)), -8, 6, limit=200)[0])
                         for t in thetas])
    t_logpdf = stats.t.logpdf(y, n - 1, loc=thetas, scale=sd / np.sqrt(n))
    diff = marginal - t_logpdf
    np.testing.assert_allclose(diff, diff[0], atol=1e-7)
    normal_logpdf = stats.norm.logpdf(y, thetas, sd / np.sqrt(n))
    assert np.ptp(marginal - normal_logpdf) > 0.1  # not the plug-in normal


def test_control_arms_and_an_arms_table_of_study_and_arm(tmp_path):
    rows = [{"study": s, "arm": a, "y": y, "se": 0.3} for s, a, y in
            (("s1", "msc", -0.5), ("s1", "placebo", 0.1), ("s2", "msc", -0.2), ("s3", "msc", -0.4))]
    arms = [{"study": r["study"], "arm": r["arm"], "group": "control" if r["arm"] == "placebo" else "msc"}
            for r in rows]
    ev = load_evidence(write(tmp_path, rows, arms))
    s = spec(direction="lower_better")
    model, prep = effect_size.OUTCOME.build(s, ev)
    assert "msc_effect" in model.named_vars and list(prep.units["group"]) == ["msc", "control", "msc", "msc"]
    assert np.isfinite(model.compile_logp(mode="FAST_COMPILE")(model.initial_point()))
    assert sweep.oracle_posterior(s, ev) is None  # a control arm: not the plain model
    rows_of = {r.name: r for r in effect_size.summary_rows(s)}
    assert rows_of["mu"].direction == "lower_better" and rows_of["mu"].important is None
    assert "negative = better" in rows_of["mu"].unit


def test_the_sweep_answers_the_plain_model_with_the_exact_posterior():
    ev, s = load_evidence(EXAMPLE / "data"), load_spec(EXAMPLE / "eight_schools.toml")
    post = sweep.oracle_posterior(s, ev)
    assert post.tau_quantile(0.5) == pytest.approx(BAYESMETA_TAU_MEDIAN, rel=2e-6)
    assert post.mu_quantile(0.5) == pytest.approx(BAYESMETA_MU_MEDIAN, abs=0.005 * BAYESMETA_MU_SD)
    out = sweep.run_scenario(sweep.Scenario("schools", s, ev))
    assert set(out["method"]) == {"oracle"}
    mu = out.set_index("quantity").loc["mu"]
    assert mu["median"] == pytest.approx(post.mu_quantile(0.5), rel=1e-12)


@pytest.mark.slow
def test_mcmc_agrees_with_the_exact_normal_normal_posterior():
    ev, s = load_evidence(EXAMPLE / "data"), load_spec(EXAMPLE / "eight_schools.toml")
    post = sweep.oracle_posterior(s, ev)
    fit = inference.fit(s, ev, draws=1000, tune=1000, chains=2, seed=SEED)
    table = fit.summary()
    exact = {"mu": (post.mu_mean, *post.mu_quantile([0.025, 0.975])),
             "tau": (post.tau_mean, *post.tau_quantile([0.025, 0.975]))}
    for name, (mean, lo, hi) in exact.items():
        row = table.loc[name]
        assert abs(row["mean"] - mean) <= 4 * row["mcse_mean"], (name, row["mean"], mean, row["mcse_mean"])
        full = sweep.quantity_summary(fit, [name]).set_index("quantity").loc[name]
        assert abs(full["eti95_lower"] - lo) <= 4 * full["mcse_eti95_lower"], (name, "lower")
        assert abs(full["eti95_upper"] - hi) <= 4 * full["mcse_eti95_upper"], (name, "upper")
    derived = fit.tree["derived"]
    assert list(derived["p_new_below"]["threshold"].values) == [0.0, 10.0]


@pytest.mark.slow
def test_a_report_renders_with_the_specs_words_and_thresholds(tmp_path):
    from msc_bayes.reporting.run import run_report

    spec_file = tmp_path / "schools.toml"
    text = (EXAMPLE / "eight_schools.toml").read_text()
    spec_file.write_text(text.replace("draws = 1000", "draws = 400").replace("tune = 1000", "tune = 400")
                         .replace("chains = 4", "chains = 2"))
    result = run_report(data=EXAMPLE / "data", models=[str(spec_file)], out=tmp_path / "report",
                        sensitivity=False, log=lambda line: None)
    out = result.out
    sof = pd.read_csv(out / "summary_of_findings.csv")
    mu = sof[sof.iloc[:, :3].astype(str).apply(lambda c: c.str.contains("Pooled SAT-V coaching effect")).any(axis=1)]
    assert len(mu) == 1, sof.to_string()
    row = " ".join(map(str, mu.iloc[0].to_numpy()))
    assert "SAT-V coaching effect above 0 by at least 10" in row, row
    md = (out / "report.md").read_text()
    assert "effect size" in md and "an estimate with its reported SE" in md
    assert "P(new-study effect \\< 0)" in md and "P(new-study effect \\< 10)" in md  # report.md escapes <
    assert (out / "figures" / "schools_forest.png").stat().st_size > 0
    for edss_words in ("EDSS change (grey", "mean EDSS change", "EDSS points"):  # the figures' captions
        assert edss_words not in md, [line for line in md.splitlines() if edss_words in line]
    assert "in SAT-V points" in md
    assert "schools_forest" in (out / "index.html").read_text() or "data:image/png" in (out / "index.html").read_text()


def test_figures_speak_in_the_specs_unit_not_edss():
    """The figures of an effect-size fit name the spec's unit (tau's axis and caption, the forest caption),
    never EDSS; a rate fit's tau is in log rate, a risk fit's in log odds (Outcome.scale_units)."""
    from types import SimpleNamespace

    from msc_bayes.viz.common import scale_units
    from msc_bayes.viz.figures import FIGURES

    spec = load_spec(EXAMPLE / "eight_schools.toml")
    fit = SimpleNamespace(spec=spec)
    assert scale_units(fit) == "SAT-V points"
    captions = {f.key: f.caption for f in FIGURES}
    assert "(SAT-V points)" in captions["tau"](fit)
    for name, units in (("event_rates", "log rate"), ("adverse_events", "log odds"), ("edss_change", "EDSS points")):
        other = spec_from_dict({"name": "x", "outcome": name, "covariates": []})
        assert scale_units(SimpleNamespace(spec=other)) == units
