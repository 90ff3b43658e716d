"""Crossover arms that share patients, and carry-over: the EDSS model against patient-level references.

The simulated trial has Petrou 2020's design (registry NCT02166021): 48 patients in three
groups of 16 (IT, IV, sham), each split at the second period into 8 retreated the same way and
8 switched (1B, 2B to sham; 3A to IT, 3B to IV), so each pooled arm holds 32 periods: IT and IV
8 patients twice, IT-sham and IV-sham 16 shared patients, and 16 sham periods after MSC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from msc_bayes import inference, results
from msc_bayes.evidence import load_evidence
from msc_bayes.outcomes import get
from msc_bayes.spec import spec_from_dict

SEED = 20261201
#: (first period, second period) per group of 8 patients (0 = IT, 1 = IV, 2 = sham)
GROUPS = ((0, 0), (0, 2), (1, 1), (1, 2), (2, 0), (2, 1))
ARMS = ("msc_it", "msc_iv", "sham")
TRUE = {"level": 0.1, "it": -0.15, "msc_effect": -0.4, "sigma": 0.4, "r": 0.6}
PRIOR_SD = {"level": 10.0, "it": 1.0, "msc_effect": 1.0}


def periods() -> np.ndarray:
    """(patient, arm) of every treatment period, 8 patients per group."""
    rows, p = [], 0
    for first, second in GROUPS:
        for _ in range(8):
            rows += [(p, first), (p, second)]
            p += 1
    return np.array(rows)


def simulate(rng: np.random.Generator, means: np.ndarray, sigma: float, r: float) -> np.ndarray:
    """Each period's EDSS change: arm mean + patient effect (variance r sigma^2) + noise ((1 - r) sigma^2)."""
    per = periods()
    patient = rng.normal(0, np.sqrt(r) * sigma, per[:, 0].max() + 1)
    return means[per[:, 1]] + patient[per[:, 0]] + rng.normal(0, np.sqrt(1 - r) * sigma, len(per))


def arm_covariance(sd: np.ndarray, r: float) -> np.ndarray:
    """Covariance of the arm means built patient by patient (periods of one patient correlated r)."""
    per = periods()
    n = np.bincount(per[:, 1], minlength=3)
    A = np.zeros((3, len(per)))
    A[per[:, 1], np.arange(len(per))] = 1 / n[per[:, 1]]
    same = per[:, 0][:, None] == per[:, 0][None, :]
    V = np.where(same, r, 0.0) * np.outer(sd[per[:, 1]], sd[per[:, 1]])
    np.fill_diagonal(V, sd[per[:, 1]] ** 2)
    return A @ V @ A.T


def shared_rows() -> list[dict]:
    per = periods()
    counts: dict = {}
    for p in np.unique(per[:, 0]):
        a, b = sorted(per[per[:, 0] == p, 1])
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return [{"study": "x", "arm": ARMS[a], "other_arm": ARMS[b], "patients": k} for (a, b), k in counts.items()]


def write(folder, arms: list[dict], edss: list[dict], shared: list[dict] | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(arms).to_csv(folder / "arms.csv", index=False)
    pd.DataFrame(edss).to_csv(folder / "edss.csv", index=False)
    if shared:
        pd.DataFrame(shared).to_csv(folder / "shared_patients.csv", index=False)
    return load_evidence(folder)


def crossover_tables(y: np.ndarray, sd: np.ndarray, study: str = "x", carry: int | None = None):
    arms = [{"study": study, "arm": a, "group": "control" if a == "sham" else "msc",
             "route": {"msc_it": "IT", "msc_iv": "IV", "sham": ""}[a], "n": 32,
             "periods_after_msc": carry if (a == "sham" and carry) else ""} for a in ARMS]
    edss = [{"study": study, "arm": a, "timepoint_months": 6, "n": 32, "change_mean": y[i], "change_sd": sd[i]}
            for i, a in enumerate(ARMS)]
    return arms, edss


def spec(rho_within: dict, **options):
    return spec_from_dict({
        "outcome": "edss_change", "covariates": ["route"], "covariate_options": {"route": {"reference": "IV"}},
        "priors": {"mu": {"dist": "Normal", "mu": 0, "sigma": PRIOR_SD["level"]},
                   "tau": {"dist": "HalfNormal", "sigma": 0.05},
                   "beta": {"dist": "Normal", "mu": 0, "sigma": PRIOR_SD["it"]},
                   "msc_effect": {"dist": "Normal", "mu": 0, "sigma": PRIOR_SD["msc_effect"]},
                   "rho_within": rho_within},
        "options": {"carry_over": "none", **options}, "sampler": {"seed": SEED}})


def exact_contrast(y: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """Posterior mean and SD of msc_effect given arm means y ~ N(M phi, cov), phi = (level, IT, effect)
    with independent normal priors (the spec's; the study effect's tiny prior SD adds to the level's)."""
    M = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, -1.0]])  # IT, IV, sham
    prior_var = np.array([PRIOR_SD["level"] ** 2, PRIOR_SD["it"] ** 2, PRIOR_SD["msc_effect"] ** 2])
    P = M.T @ np.linalg.solve(cov, M) + np.diag(1 / prior_var)
    mean = np.linalg.solve(P, M.T @ np.linalg.solve(cov, y))
    return float(mean[2]), float(np.sqrt(np.linalg.inv(P)[2, 2]))


def summary_of(fit, name: str) -> pd.Series:
    return fit.summary().loc[name]


@pytest.fixture(scope="module")
def trial():
    rng = np.random.default_rng(SEED)
    means = np.array([TRUE["level"] + TRUE["it"], TRUE["level"], TRUE["level"] - TRUE["msc_effect"]])
    d = simulate(rng, means, TRUE["sigma"], TRUE["r"])
    arm = periods()[:, 1]
    y = np.array([d[arm == a].mean() for a in range(3)])
    sd = np.array([d[arm == a].std(ddof=1) for a in range(3)])
    return d, y, sd


def test_shared_counts_are_the_registry_design():
    counts = {(r["arm"], r["other_arm"]): r["patients"] for r in shared_rows()}
    assert counts == {("msc_it", "msc_it"): 8, ("msc_it", "sham"): 16, ("msc_iv", "msc_iv"): 8,
                      ("msc_iv", "sham"): 16}


def test_arm_means_covariance_matches_patient_level(tmp_path, trial):
    """The model's correlation of the arm means (I + r B, prepare) is the patient-level one, exactly."""
    _, y, sd = trial
    ev = write(tmp_path / "d", *crossover_tables(y, sd), shared=shared_rows())
    prep = get("edss_change").prepare(spec({"dist": "Uniform", "lower": -1, "upper": 1}), ev)
    (group,) = prep.shared
    se = sd / np.sqrt(32)
    order = [list(prep.units["arm"]).index(a) for a in ARMS]
    B = group.B[np.ix_(order, order)]
    for r in (-0.5, 0.3, 0.9):
        model_cov = np.outer(se, se) * (np.eye(3) + r * B)
        np.testing.assert_allclose(model_cov, arm_covariance(sd, r), rtol=1e-12)


def test_contrast_matches_exact_patient_level_posterior(tmp_path, trial):
    """MSC minus control from the arm means equals the exact posterior under the patient-level model
    (rho_within held at the truth), within Monte Carlo error; arms as independent do not."""
    _, y, sd = trial
    ev = write(tmp_path / "d", *crossover_tables(y, sd), shared=shared_rows())
    held = {"dist": "TruncatedNormal", "mu": TRUE["r"], "sigma": 0.002, "lower": -1, "upper": 1}
    fit = inference.fit(spec(held), ev, draws=2000)
    row = summary_of(fit, "msc_effect")
    mean, sd_post = exact_contrast(y, arm_covariance(sd, TRUE["r"]))
    assert abs(row["mean"] - mean) < 4 * row["mcse_mean"]
    assert abs(row["sd"] - sd_post) < 4 * summary_of_sd_mcse(fit, "msc_effect")
    # the structure matters here: treating the arms as independent gives another posterior
    indep_mean, indep_sd = exact_contrast(y, np.diag(sd**2 / 32))
    assert abs(indep_sd - sd_post) > 5 * summary_of_sd_mcse(fit, "msc_effect")  # 8% here
    fit_indep = inference.fit(spec(held, shared_patients=False), ev, draws=2000)
    row = summary_of(fit_indep, "msc_effect")
    assert abs(row["mean"] - indep_mean) < 4 * row["mcse_mean"]
    assert abs(row["sd"] - indep_sd) < 4 * summary_of_sd_mcse(fit_indep, "msc_effect")


def summary_of_sd_mcse(fit, name: str) -> float:
    from msc_bayes.results import quantity_summary

    s = quantity_summary(fit, [name])
    return float(s[s["quantity"] == name]["mcse_sd"].iloc[0])


def test_contrast_close_to_patient_effects_analysis(trial):
    """The full patient-level analysis (patient random effects, GLS with the true variances) uses
    within-patient comparisons the arm means cannot: its posterior is at most as wide as the exact
    arm-means one, and both centre on the same value within a posterior SD."""
    d, y, _ = trial
    per = periods()
    X = np.zeros((len(per), 3))
    X[:, 0] = 1.0
    X[per[:, 1] == 0, 1] = 1.0
    X[per[:, 1] == 2, 2] = -1.0
    same = per[:, 0][:, None] == per[:, 0][None, :]
    V = TRUE["sigma"] ** 2 * np.where(same, TRUE["r"], 0.0)
    np.fill_diagonal(V, TRUE["sigma"] ** 2)
    prior_var = np.array([PRIOR_SD["level"] ** 2, PRIOR_SD["it"] ** 2, PRIOR_SD["msc_effect"] ** 2])
    P = X.T @ np.linalg.solve(V, X) + np.diag(1 / prior_var)
    gls_mean = np.linalg.solve(P, X.T @ np.linalg.solve(V, d))[2]
    gls_sd = np.sqrt(np.linalg.inv(P)[2, 2])
    sd_true = np.full(3, TRUE["sigma"])
    mean, sd_post = exact_contrast(y, arm_covariance(sd_true, TRUE["r"]))
    assert gls_sd <= sd_post * (1 + 1e-9)
    assert abs(gls_mean - mean) < sd_post


def test_carry_over_recovered(tmp_path):
    """Two parallel trials fix the MSC effect; a crossover whose sham arm has half its periods after
    MSC then identifies the share carried over (true 0.6)."""
    rng = np.random.default_rng([SEED, 2])
    effect, share, sigma, n = -0.5, 0.6, 0.4, 400
    arms, edss = [], []
    for s, level in (("p1", 0.2), ("p2", 0.0)):
        for arm, group, mean in (("msc", "msc", level + effect), ("control", "control", level)):
            arms.append({"study": s, "arm": arm, "group": group, "n": n, "periods_after_msc": ""})
            edss.append({"study": s, "arm": arm, "timepoint_months": 6, "n": n,
                         "change_mean": rng.normal(mean, sigma / np.sqrt(n)), "change_sd": sigma})
    # the sham arm: half its periods without MSC (level), half after MSC (level + share * effect)
    sham = 0.1 + 0.5 * share * effect
    for arm, group, mean, carry in (("msc", "msc", 0.1 + effect, ""), ("sham", "control", sham, n // 2)):
        arms.append({"study": "x", "arm": arm, "group": group, "n": n, "periods_after_msc": carry})
        edss.append({"study": "x", "arm": arm, "timepoint_months": 6, "n": n,
                     "change_mean": rng.normal(mean, sigma / np.sqrt(n)), "change_sd": sigma})
    ev = write(tmp_path / "c", arms, edss)
    sp = spec_from_dict({"outcome": "edss_change", "covariates": [], "options": {"carry_over": "estimate"},
                         "sampler": {"seed": SEED}})
    fit = inference.fit(sp, ev)
    row = summary_of(fit, "carry_over")
    assert abs(row["mean"] - share) < 3 * row["sd"] + 4 * row["mcse_mean"]
    assert row["sd"] < 0.5 * np.sqrt(1 / 12)  # learned: under half the flat prior's SD
    # fixed at none, the sham arm's data pull the effect towards zero instead
    none = inference.fit(sp.replace(options={"carry_over": "none"}), ev)
    assert summary_of(none, "msc_effect")["mean"] > summary_of(fit, "msc_effect")["mean"]
    assert results.has(none, "carry_over")  # same compiled model: the parameter stays, unused


def test_shared_counts_that_no_patients_could_give_are_one_clear_error(tmp_path):
    """Without arms.csv the counts are not checked against the arms' n when read; the model refuses
    counts for which the arm means would have no valid covariance, naming shared_patients.csv."""
    from msc_bayes.errors import EvidenceError

    folder = tmp_path / "e"
    folder.mkdir()
    pd.DataFrame([{"study": "x", "arm": a, "timepoint_months": 6, "n": 10, "change_mean": 0.1, "change_sd": 0.4}
                  for a in ("a", "b")]).to_csv(folder / "edss.csv", index=False)
    pd.DataFrame([{"study": "x", "arm": "a", "other_arm": "b", "patients": 20}]).to_csv(
        folder / "shared_patients.csv", index=False)
    with pytest.raises(EvidenceError, match=r"shared_patients\.csv.*study x at 6 months, arms a, b"):
        get("edss_change").prepare(spec_from_dict({"outcome": "edss_change", "covariates": []}), load_evidence(folder))
