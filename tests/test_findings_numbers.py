"""The numbers of the summary-of-findings rows (msc_bayes.findings.quantities and its modules) on fake fits.

Every number is checked against a direct numpy computation from the same draws (no MCMC): the estimate,
P(benefit), P(important), tau, I² (Higgins & Thompson's typical variance written out again here), the
prediction interval, the contraction against the spec prior's variance, the Savage–Dickey ratio against
scipy's gaussian_kde; the direction words at the rule's boundaries; rows a fit lacks are skipped; the
EDSS ``mcid`` option changes P(important) but not the model's structure key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import special, stats
from test_diagnostics import fake_fit

from msc_bayes import outcomes, results
from msc_bayes.evidence import load_evidence
from msc_bayes.findings import bayes_factor as bf
from msc_bayes.findings import contraction as ct
from msc_bayes.findings import quantities as q
from msc_bayes.inference.engine import structure_key
from msc_bayes.inference.result import Fit
from msc_bayes.outcomes.edss import EDSS_MCID
from msc_bayes.outcomes.edss.formats.change import change_mean_se
from msc_bayes.spec import Prior, load_spec

REPO = Path(__file__).resolve().parents[1]
Q_LO, Q_HI = results.quantile_probs()


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(REPO / "data")


def covariate_fit(spec, evidence, seed: int = 1) -> Fit:
    """A fake fit of `spec` with its covariates: fake_fit's draws without covariates (the same units), plus
    beta draws for the design's columns and the derived group recomputed from them."""
    module = outcomes.get(spec.outcome)
    base = fake_fit(spec.replace(covariates=[]), evidence, seed=seed)
    prep = module.prepare(spec, evidence)
    tree = base.tree.copy(deep=True)
    posterior = tree["posterior"].to_dataset()
    if prep.design.columns:
        rng = np.random.default_rng(seed + 100)
        C, D = posterior.sizes["chain"], posterior.sizes["draw"]
        beta = rng.normal(-0.1, 0.3, (C, D, len(prep.design.columns)))
        posterior["beta"] = xr.DataArray(beta, dims=("chain", "draw", "covariate"),
                                         coords={"chain": posterior["chain"], "draw": posterior["draw"],
                                                 "covariate": list(prep.design.columns)})
    tree["posterior"] = xr.DataTree(posterior)
    tree["derived"] = xr.DataTree(module.derive(posterior, prep, spec))
    tree.attrs["design"] = json.dumps(prep.design.to_dict())
    return Fit(tree, spec, prep)


@pytest.fixture(scope="module")
def fits(evidence):
    return {key: covariate_fit(load_spec(REPO / "models" / f"{key}.toml"), evidence)
            for key in ("edss_change", "adverse_events", "mri_activity")}


def flat(fit, cell):
    name = cell.split("[", 1)[0]
    return results.cells(fit, name)[cell].ravel()


def check_interval(interval, x):
    lo, med, hi = np.quantile(x, [Q_LO, 0.5, Q_HI])
    assert (interval.median, interval.lower, interval.upper) == pytest.approx((med, lo, hi), rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------------------
# Which rows
# --------------------------------------------------------------------------------------


def test_rows_in_declared_order_resolved_per_fit(fits):
    names = {k: [r.name for r in q.rows_for(f)] for k, f in fits.items()}
    assert names == {
        "edss_change": ["msc_effect", "mu", "route_contrast[IT vs IV]", "beta[courses]"],
        "adverse_events": ["risk_pooled_event[serious_ae]", "risk_pooled", "msc_effect", "route_contrast[IT vs IV]"],
        "mri_activity": ["risk_pooled", "msc_effect"],
    }
    courses = q.rows_for(fits["edss_change"])[3]
    assert courses.label.endswith("per doubling of the number of courses")  # log(courses) in the bundled spec
    assert courses.multiplier == pytest.approx(math.log(2))


def test_rows_the_fit_lacks_are_skipped(evidence):
    plain = covariate_fit(load_spec(REPO / "models" / "edss_change.toml").replace(covariates=[]), evidence)
    assert [r.name for r in q.rows_for(plain)] == ["msc_effect", "mu"]  # no route contrast, no courses
    tree = plain.tree.copy(deep=True)
    tree["posterior"] = xr.DataTree(tree["posterior"].to_dataset().drop_vars("msc_effect"))
    assert [r.name for r in q.rows_for(Fit(tree, plain.spec, plain.prepared))] == ["mu"]  # no control arm


def test_identity_covariate_reads_per_unit(evidence):
    spec = load_spec(REPO / "models" / "edss_change.toml")
    spec = spec.replace(covariate_options={**spec.covariate_options, "courses": {"transform": "identity"}})
    row = next(r for r in q.rows_for(covariate_fit(spec, evidence)) if r.name == "beta[courses]")
    assert row.label.endswith("per additional course") and row.multiplier == 1.0


# --------------------------------------------------------------------------------------
# Each number against numpy
# --------------------------------------------------------------------------------------


def higgins_thompson(v):
    """s² = (k − 1) Σw / ((Σw)² − Σw²) per draw (rows), w = 1/v: Higgins & Thompson 2002, eq. 9."""
    w = 1 / v
    return (v.shape[1] - 1) * w.sum(1) / (w.sum(1) ** 2 - (w**2).sum(1))


def expected_i2(fit):
    units = fit.prepared.units
    tau2 = results.draws(fit, "tau") ** 2
    n = units["n"].to_numpy(dtype=float)
    if results.has(fit, "risk_arm"):
        p = results.draws(fit, "risk_arm")
        v = 1 / (n * p * (1 - p))
    else:
        cols = []
        bf_arms = list(results.variable(fit, "sd_baseline")["arm_bf"].values)
        sd_arms = list(results.variable(fit, "sigma_offset")["arm_sd"].values)
        for i, label in enumerate(units["label"]):
            if "change" in units["formats"][i]:
                cols.append(np.full(tau2.shape, change_mean_se(units.iloc[[i]])[1][0] ** 2))
            elif label in bf_arms:
                j = bf_arms.index(label)
                b, f = results.draws(fit, "sd_baseline")[:, j], results.draws(fit, "sd_followup")[:, j]
                cols.append((b**2 + f**2 - 2 * results.draws(fit, "rho") * b * f) / n[i])
            else:
                j = sd_arms.index(label)
                s = results.draws(fit, "sigma_mu") + results.draws(fit, "sigma_tau") * results.draws(
                    fit, "sigma_offset")[:, j]
                cols.append(np.exp(2 * s) / n[i])
        v = np.column_stack(cols)
    return tau2 / (tau2 + higgins_thompson(v))


def expected_prior_variance(spec, row):
    """The prior variance written out for the bundled priors (Normal slots, HalfNormal tau_event)."""
    sd = spec.priors[row.prior_key].params["sigma"]
    extra = sum(spec.priors[k].params["sigma"] ** 2 for k in row.prior_scale_keys)  # E[s²] of HalfNormal(sigma)
    return (sd**2 + extra) * row.multiplier**2


def all_rows(fits):
    return [(k, i) for k, f in fits.items() for i in range(len(q.rows_for(f)))]


@pytest.mark.parametrize("key", ["edss_change", "adverse_events", "mri_activity"])
def test_numbers_match_numpy(fits, key):
    fit = fits[key]
    rows = q.rows_for(fit)
    assert rows
    i2 = expected_i2(fit)
    for row in rows:
        got = q.numbers(fit, row)
        assert set(got) == {"estimate", "direction", "p_benefit", "benefit_text", "p_important", "important_text",
                            "bayes_factor", "bayes_factor_text", "tau", "i2", "prediction", "contraction",
                            "mostly_prior"}
        raw = flat(fit, row.name)
        x = raw if row.scale == "risk" else row.multiplier * raw
        check_interval(got["estimate"], x)
        check_interval(got["tau"], results.draws(fit, "tau"))
        check_interval(got["i2"], i2)
        m = q.important_magnitude(fit, row)
        if row.direction == "none":  # a risk in MSC arms: P(risk above the threshold), a harm
            assert got["p_benefit"] is None and row.important_side == "harm"
            assert got["p_important"] == pytest.approx(np.mean(x > m))
            assert "probability of harm" in got["important_text"]
        else:
            assert got["p_benefit"] == pytest.approx(np.mean(x < 0))
            expected = np.mean(x > m) if row.important_side == "harm" else np.mean(x <= -m)
            assert got["p_important"] == pytest.approx(expected)
        if row.prediction:
            check_interval(got["prediction"], row.multiplier * flat(fit, row.prediction)
                           if row.scale == "num" else flat(fit, row.prediction))
        else:
            assert got["prediction"] is None
        on_prior_scale = special.logit(raw) if row.scale == "risk" else x
        c = 1 - np.var(on_prior_scale, ddof=1) / expected_prior_variance(fit.spec, row)
        assert got["contraction"] == pytest.approx(c, rel=1e-10)
        assert got["mostly_prior"] == (c < ct.MOSTLY_PRIOR_CONTRACTION)
        if row.point_null:
            prior_sd = fit.spec.priors[row.prior_key].params["sigma"]
            kde = stats.gaussian_kde(raw)(0.0)[0]
            assert got["bayes_factor"] == pytest.approx(stats.norm.pdf(0, 0, prior_sd) / kde, rel=1e-10)
            assert got["bayes_factor_text"].startswith("BF10")
        else:
            assert got["bayes_factor"] is None and got["bayes_factor_text"] == ""


def test_edss_mcid_is_the_default_important_magnitude(fits):
    fit = fits["edss_change"]
    assert fit.spec.options["mcid"] == EDSS_MCID == 0.5
    for row in q.rows_for(fit):
        assert q.important_magnitude(fit, row) == EDSS_MCID
        assert "0.5 EDSS points (the MCID)" in q.numbers(fit, row)["important_text"]


def test_mcid_option_changes_p_important_not_the_model(fits, evidence):
    fit = fits["edss_change"]
    wider = fit.spec.replace(options={"mcid": 0.25})
    assert structure_key(wider, evidence) == structure_key(fit.spec, evidence)  # a report option only
    other = Fit(fit.tree, wider, fit.prepared)
    row = q.rows_for(fit)[0]  # msc_effect, draws N(-0.3, 0.15): P(< -0.5) and P(< -0.25) differ
    x = flat(fit, "msc_effect")
    assert q.numbers(other, row)["p_important"] == pytest.approx(np.mean(x <= -0.25))
    assert q.numbers(fit, row)["p_important"] == pytest.approx(np.mean(x <= -0.5))
    assert np.mean(x <= -0.25) != np.mean(x <= -0.5)
    assert q.numbers(fit, row, mcid=0.25)["p_important"] == pytest.approx(np.mean(x <= -0.25))  # the argument


def test_serious_ae_prior_variance_adds_the_event_term(fits):
    fit = fits["adverse_events"]
    row = q.rows_for(fit)[0]
    assert row.name == "risk_pooled_event[serious_ae]"
    # logit risk = mu + tau_event z: Var = 2² (mu ~ N(-2, 2)) + E[tau_event²] = 1 (HalfNormal(1))
    assert ct.prior_variance(fit, row) == pytest.approx(4 + 1)
    event = list(results.variable(fit, "event_effect")["event"].values).index("serious_ae")
    expected = special.expit(results.draws(fit, "mu") + results.draws(fit, "event_effect")[:, event])
    assert flat(fit, row.name) == pytest.approx(expected)


def test_route_contrast_between_two_non_reference_levels_has_no_bayes_factor(fits):
    fit = fits["edss_change"]
    row = dataclasses.replace(q.rows_for(fit)[2], name="route_contrast[IT+IV vs IT]")
    assert ct.prior_terms(fit, row) == 2  # beta[route[IT+IV]] - beta[route[IT]]
    assert ct.prior_variance(fit, row) == pytest.approx(2 * 0.5**2)
    assert q.numbers(fit, row)["bayes_factor"] is None


# --------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------


def test_direction_words_at_the_rule_boundaries(fits):
    row = q.rows_for(fits["edss_change"])[0]
    assert q.CLEAR_DIRECTION == 0.95
    assert q.direction_text(row, 0.95) == "favours MSC (P = 0.95)"
    assert q.direction_text(row, 0.9499) == "no clear direction (P(MSC better than control) = 0.95)"
    assert q.direction_text(row, 0.05) == "favours control (P = 0.95)"
    assert q.direction_text(row, 0.0501).startswith("no clear direction")
    # probabilities as msc_bayes.numbers.prob writes them: 3 decimals in the tails, a bound beyond 0.999
    assert q.direction_text(row, 0.999) == "favours MSC (P = 0.999)"
    assert q.direction_text(row, 0.9995) == "favours MSC (P > 0.999)"
    risk = q.rows_for(fits["mri_activity"])[0]
    assert q.direction_text(risk, None) == "a risk in MSC arms (no comparison)"


@pytest.mark.parametrize(("value", "words"), [
    (150, "extreme evidence for an effect"), (100, "extreme evidence for an effect"),
    (99.9, "very strong evidence for an effect"), (30, "very strong evidence for an effect"),
    (29, "strong evidence for an effect"), (10, "strong evidence for an effect"),
    (9.9, "moderate evidence for an effect"), (3, "moderate evidence for an effect"),
    (2.9, "anecdotal evidence for an effect"), (1 / 2.9, "anecdotal evidence for no effect"),
    (1 / 3, "moderate evidence for no effect"), (1 / 200, "extreme evidence for no effect"),
    (1.0, "no evidence either way"),
])
def test_bayes_factor_words(value, words):
    assert bf.evidence_words(value) == words


def test_kde_is_scipys_and_its_mcse_that_of_a_mean():
    rng = np.random.default_rng(3)
    x = rng.normal(0.8, 0.5, (4, 500))
    density, mcse, h, near = bf.posterior_density(x)
    assert density == pytest.approx(stats.gaussian_kde(x.ravel())(0.0)[0], rel=1e-12)
    kernel = stats.norm.pdf(x / h) / h
    assert mcse == pytest.approx(kernel.std(ddof=1) / math.sqrt(x.size), rel=0.1)  # independent draws: ESS ~ N
    assert near == np.sum(np.abs(x) < h)


def test_zero_outside_the_draws_gives_a_lower_bound():
    x = np.random.default_rng(4).normal(5.0, 0.2, (4, 500))  # 25 SDs from 0: no draw near it
    r = bf.savage_dickey(x, prior_density=stats.norm.pdf(0))
    assert r.lower_bound and r.near_null == 0 and math.isnan(r.mcse)
    # no draw in [-h, h]: the 95% Poisson limit 3 (= -log 0.05) draws over 2h·ESS bounds the density
    ess = x.size  # independent draws; ArviZ's estimate is close
    assert r.bf10 == pytest.approx(stats.norm.pdf(0) * 2 * r.bandwidth * ess / -math.log(0.05), rel=0.1)
    assert r.text.startswith("BF10 > ") and "lower bound" in r.text


def test_scipy_priors_are_the_spec_priors():
    """The scipy form of every bundled prior (the Bayes factor's density at 0, the contraction's variance) has
    the spec prior's exact log density (PyMC's logp), and the variances are scipy's of the same law."""
    for key in ("edss_change", "adverse_events", "mri_activity"):
        spec = load_spec(REPO / "models" / f"{key}.toml")
        for name, prior in spec.priors.items():
            lo, hi = prior.support
            x = np.linspace(max(lo, -3) + 0.05, min(hi, 3) - 0.05, 7)
            assert ct.scipy_prior(prior).logpdf(x) == pytest.approx(prior.logpdf(x), rel=1e-9), (key, name)
    nu, sigma = 4.0, 0.5  # |T|, T ~ t(nu, 0, sigma): E T² = sigma² nu / (nu - 2), E|T| in closed form
    half_t = Prior("HalfStudentT", {"nu": nu, "sigma": sigma})
    mean = 2 * sigma * math.sqrt(nu / math.pi) * math.gamma((nu + 1) / 2) / (math.gamma(nu / 2) * (nu - 1))
    assert ct.second_moment(half_t) == pytest.approx(sigma**2 * nu / (nu - 2), rel=1e-9)
    assert ct.variance(half_t) == pytest.approx(sigma**2 * nu / (nu - 2) - mean**2, rel=1e-7)
