"""Arms that share patients (crossover periods pooled into arms) and carry-over into control periods.

A crossover trial that reports its arms pooled over both periods (Petrou 2020: each arm 32
treatment periods of 48 patients) has arm means that are not independent samples:
``data/shared_patients.csv`` says how many patients contribute a period to two arms, or two
periods to one arm. With a patient's period changes correlated by ``rho_within`` (the
within-patient correlation of EDSS change across periods, a parameter with a prior), the
mean changes of one study's arms at one timepoint are jointly normal:

    Var(ybar_i) = se_i^2 * (1 + rho_within * 2 m_ii n_i / N_i^2)
    Cov(ybar_i, ybar_j) = se_i se_j * rho_within * m_ij sqrt(n_i n_j) / (N_i N_j)

with se_i the arm's SE (reported SD / sqrt(n_i), or the modelled sigma / sqrt(n_i)), m_ij the
patients shared by arms i and j, m_ii the patients with two periods in arm i, n_i the
periods analysed at that timepoint (the row's ``n``) and N_i the arm's periods (arms.csv ``n``).
With every period analysed (n = N) these are the exact covariances of the arm means of
patients whose two period changes have correlation rho_within; when fewer are analysed (Petrou
2020: 29-31 of 32), each shared patient's periods are taken as analysed independently with
probability n/N (missing completely at random), so a shared count enters as its expected
number of analysed pairs. The correlation matrix is ``I + rho_within * B`` with ``B`` fixed by
the data; the log likelihood of a study's arms is written as the chain of conditionals
log p(y_1) + log p(y_2 | y_1) + ..., each term the log likelihood of its arm (``loglik``), so
leaving out a whole study (weight 0) is exact; a single arm's term is conditional on the arms
before it.

Counts (improved / stable / worsened) of an arm with repeated patients are not normal: their
multinomial log likelihood is multiplied by 1 / (1 + 2 m_ii n_i / N_i^2), Kish's design effect
for pairs of periods of one patient at the largest correlation (1): a fixed, conservative
weight (a weight depending on rho_within would not be a likelihood). The correlation between
the counts of different arms is left out (conservative for a between-arm contrast when
rho_within > 0). Patient-level rows are taken as distinct patients.

Carry-over: a control arm with ``periods_after_msc`` = c of its N periods following an MSC
period has mean control + carry_over * (c / N) * msc_effect, i.e. its control indicator is
1 - carry_over * c / N; ``carry_over`` (the share of the MSC effect still present in those
periods) is a parameter with a prior. Only arm means that pool periods identify it together
with the MSC effect, so its posterior is mostly its prior's.

Both are switched by pm.Data (``shared_use``, ``carry_over_estimated``, ``carry_over_fixed``)
set from the spec's options ``shared_patients`` and ``carry_over``, so the scenarios "arms
as independent", "carry-over none" and "carry-over full" refit the same compiled model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msc_bayes.errors import EvidenceError, Problem

#: options.carry_over -> (carry_over_estimated, carry_over_fixed): share = estimated * carry_over + fixed
CARRY_OVER_MODES = {"estimate": (1.0, 0.0), "none": (0.0, 0.0), "full": (0.0, 1.0)}


@dataclass(frozen=True)
class SharedGroup:
    """The units of one study at one timepoint whose arms share patients."""

    study: str
    units: tuple[int, ...]  # unit indices, in unit order
    B: np.ndarray  # correlation matrix I + rho_within * B of the arm means (diagonal: 2 m_ii n_i / N_i^2)


def _pairs(table: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """(study, arm, other_arm) -> patients, both orders."""
    out = {}
    for r in table.itertuples(index=False):
        out[(r.study, r.arm, r.other_arm)] = float(r.patients)
        out[(r.study, r.other_arm, r.arm)] = float(r.patients)
    return out


def _arm_n(evidence) -> dict[tuple[str, str], float]:
    """(study, arm) -> the arm's n in arms.csv (its periods, for an arm that pools crossover periods)."""
    arms = evidence.arms
    if "n" not in arms:
        return {}
    n = pd.to_numeric(arms["n"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return dict(zip(zip(arms["study"], arms["arm"]), n))


def shared_groups(units: pd.DataFrame, evidence) -> tuple[SharedGroup, ...]:
    """The groups of units whose arms share patients (per study and timepoint), from ``evidence.shared_patients``."""
    table = evidence.shared_patients
    if table.empty:
        return ()
    pairs = _pairs(table)
    arm_n = _arm_n(evidence)
    studies = set(table["study"])
    groups = []
    keys = units.loc[units["study"].isin(studies), ["study", "timepoint_months"]].drop_duplicates()
    for study, t in keys.itertuples(index=False):
        idx = np.flatnonzero(((units["study"] == study) & (units["timepoint_months"] == t)).to_numpy())
        arms = list(units["arm"].iloc[idx])
        n = units["n"].iloc[idx].to_numpy(dtype=float)
        N = np.array([arm_n.get((study, a), np.nan) for a in arms], dtype=float)
        N = np.where(np.isnan(N), n, N)
        m = np.array([[pairs.get((study, a, b), 0.0) for b in arms] for a in arms])
        if not m.any():
            continue
        B = m * np.sqrt(np.outer(n, n)) / np.outer(N, N)
        np.fill_diagonal(B, 2 * np.diag(m) * n / N**2)
        _check_definite(_file(evidence), study, t, arms, B)
        groups.append(SharedGroup(study, tuple(int(i) for i in idx), B))
    return tuple(groups)


def _file(evidence) -> str:
    """shared_patients.csv as an evidence error names it: its path, or the bare name for tables built in memory."""
    folder = Path(evidence.path)
    return str(folder / "shared_patients.csv") if folder.is_dir() else "shared_patients.csv"


def _check_definite(file: str, study: str, t: float, arms: list[str], B: np.ndarray) -> None:
    """I + r B must be a correlation matrix for every r in [-1, 1]: every eigenvalue of B within [-1, 1]."""
    lam = np.linalg.eigvalsh(B)
    if lam.min() < -1 - 1e-9 or lam.max() > 1 + 1e-9:
        raise EvidenceError([Problem(
            file, None, "patients", f"study {study} at {t:g} months, arms {', '.join(arms)}",
            "shared counts that fit the arms' n: with these counts the arm means would have no valid covariance "
            f"for some within-patient correlation in [-1, 1] (eigenvalues {lam.min():.3g} to {lam.max():.3g})")])


def sharing_text(units: pd.DataFrame, groups: tuple[SharedGroup, ...]) -> list[str]:
    """Per unit, with which units of its group it shares patients ("" when none)."""
    out = [""] * len(units)
    labels = list(units["label"])
    for g in groups:
        for a, u in enumerate(g.units):
            other = [labels[v] for b, v in enumerate(g.units) if b != a and g.B[a, b] > 0]
            twice = ["itself (patients with two periods)"] if g.B[a, a] > 0 else []
            out[u] = ", ".join(other + twice)
    return out


def units_text(units: pd.DataFrame, spec) -> str:
    """The report's methods sentences on shared patients and carry-over ("" when no arm has either)."""
    text = []
    shares = units["shares_patients"]
    if (shares != "").any():
        arms = ", ".join(units.loc[shares != "", "label"])
        if spec.options["shared_patients"]:
            text.append(f"Arms that pool crossover periods and share patients ({arms}; data/shared_patients.csv) "
                        "have jointly normal mean changes, correlated through the within-patient correlation of "
                        f"EDSS change across periods rho_within (prior {spec.priors['rho_within']}); an arm that "
                        "repeats patients has its mean's variance inflated accordingly.")
        else:
            text.append(f"Arms that share patients ({arms}) are treated as independent samples "
                        "(options.shared_patients = false).")
    frac = units["carry_fraction"].to_numpy(dtype=float)
    if frac.any():
        arms = ", ".join(f"{lab} ({f:.0%} of its periods)" for lab, f in zip(units["label"], frac) if f > 0)
        mode = spec.options["carry_over"]
        how = {"estimate": f"a share carry_over of the MSC effect, prior {spec.priors['carry_over']} (pooled arm "
                           "means cannot separate it from the MSC effect: its posterior is mostly the prior's)",
               "none": "none of the MSC effect (options.carry_over = 'none')",
               "full": "the whole MSC effect (options.carry_over = 'full')"}[mode]
        text.append(f"Control periods that follow an MSC period ({arms}) keep {how}.")
    return " ".join(text)


def carry_fraction(units: pd.DataFrame, evidence) -> np.ndarray:
    """Per unit, the share of its periods that follow an MSC period (control arms; 0 elsewhere)."""
    if "periods_after_msc" not in units:
        return np.zeros(len(units))
    c = pd.to_numeric(units["periods_after_msc"], errors="coerce").to_numpy(dtype=float)
    arm_n = _arm_n(evidence)
    N = np.array([arm_n.get((s, a), n) for s, a, n in zip(units["study"], units["arm"], units["n"])], dtype=float)
    control = (units["group"].fillna("msc") == "control").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(control & (c > 0), c / N, 0.0)
    return np.nan_to_num(frac)


def counts_weight(groups: tuple[SharedGroup, ...], n_units: int) -> np.ndarray:
    """Per unit, the weight of its counts log likelihood: 1 / (1 + 2 m_ii n / N^2) (module docstring)."""
    w = np.ones(n_units)
    for g in groups:
        w[list(g.units)] = 1 / (1 + np.diag(g.B))
    return w


def option_data(spec) -> dict[str, float]:
    """The pm.Data values the options ``shared_patients`` and ``carry_over`` set (no recompile)."""
    estimated, fixed = CARRY_OVER_MODES[spec.options["carry_over"]]
    return {"shared_use": float(bool(spec.options["shared_patients"])), "carry_over_estimated": estimated,
            "carry_over_fixed": fixed}


def carry_over_term(spec, control_fraction: np.ndarray):
    """+ carry_over share * (c / N) * msc_effect for the control units with periods after MSC (None: no such unit)."""
    import pymc as pm

    share = carry_over_share(spec, control_fraction)
    return None if share is None else pm.modelcontext(None)["msc_effect"] * share * control_fraction


def carry_over_share(spec, control_fraction: np.ndarray):
    """The share of the MSC effect carried into control periods after MSC (None: no such unit), creating
    ``carry_over`` and its switches (``carry_over_estimated``, ``carry_over_fixed``)."""
    import pymc as pm

    if not control_fraction.any():
        return None
    values = option_data(spec)
    estimated = pm.Data("carry_over_estimated", values["carry_over_estimated"])
    fixed = pm.Data("carry_over_fixed", values["carry_over_fixed"])
    return estimated * spec.priors["carry_over"].create("carry_over") + fixed


def correlated_terms(spec, groups: tuple[SharedGroup, ...], normal_at: dict, theta) -> list:
    """Terms (units, log likelihood) of the grouped units' normal means, as a chain of conditionals.

    ``normal_at``: unit -> (y, se) of its normal term (se a number or a scalar tensor).
    """
    import pymc as pm
    import pytensor.tensor as pt

    groups = [(g, [u for u in g.units if u in normal_at]) for g in groups]
    groups = [(g, sub) for g, sub in groups if sub]
    if not groups:
        return []
    use = pm.Data("shared_use", option_data(spec)["shared_use"])
    r = use * spec.priors["rho_within"].create("rho_within")
    terms = []
    for g, sub in groups:
        pos = [g.units.index(u) for u in sub]
        B = g.B[np.ix_(pos, pos)]
        k = len(sub)
        z = [(normal_at[u][0] - theta[u]) / normal_at[u][1] for u in sub]
        L = [[None] * k for _ in range(k)]  # Cholesky factor of I + r B, scalar by scalar (k is small)
        w = []
        for i in range(k):
            for j in range(i + 1):
                s = (1.0 if i == j else 0.0) + r * B[i, j]
                s = s - sum((L[i][q] * L[j][q] for q in range(j)), pt.constant(0.0))
                L[i][j] = pt.sqrt(s) if i == j else s / L[j][j]
            w.append((z[i] - sum((L[i][q] * w[q] for q in range(i)), pt.constant(0.0))) / L[i][i])
        ll = [-0.5 * w[i] ** 2 - pt.log(L[i][i]) - pt.log(normal_at[u][1]) - 0.5 * np.log(2 * np.pi)
              for i, u in enumerate(sub)]
        terms.append((np.array(sub), pt.stack(ll)))
    return terms
