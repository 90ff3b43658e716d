"""The sensitivity results a report shows, and the report's policy: which analyses it runs.

:func:`sensitivity_for_report` runs the chosen families (each an :class:`~.base.Analysis` in its
own module, see :data:`FAMILIES`) and lays their headline rows out in one table
(:func:`report_table`) beside the base fit's power-scaling table. The report's own choice
(``SENSITIVITY_*``: scenarios that reuse the report's compiled base model, and a few named ones
that compile) is :func:`report_arguments` (its evidence scenarios: :func:`report_evidence`);
:func:`varied_text` says in one sentence what was varied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import pandas as pd

from msc_bayes import inference
from msc_bayes.sensitivity.base import (
    INTERVAL_LABEL,
    K_THRESHOLD,
    QUANTITY_LABELS,
    Analysis,
    ReportRequest,
    fit_kwargs,
    headline_quantities,
)
from msc_bayes.sensitivity.evidence_scenarios import (
    EVIDENCE_SCENARIOS,
    EvidenceFamily,
    NoRefit,
    plan,
    reuses_base_model,
)
from msc_bayes.sensitivity.leave_one_out import LeaveOneOutFamily
from msc_bayes.sensitivity.power_scaling import power_scaling
from msc_bayes.sensitivity.prior import PriorFamily
from msc_bayes.sensitivity.rho import RhoFamily
from msc_bayes.sensitivity.threshold import ThresholdFamily
from msc_bayes.sweep import LOWER, UPPER, Scenario, run_scenarios, summarise


class ReportSensitivity(NamedTuple):
    """What the report shows: the compact scenario table and the power-scaling table."""

    table: pd.DataFrame
    psense: pd.DataFrame


def report_table(frames: Sequence[pd.DataFrame], *, quantities: Sequence[str], base: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
    """The compact table: one row per (family, scenario, quantity) for the headline quantities.

    Columns: family, scenario, quantity, label, median, eti95_lower, eti95_upper, prob_below_0,
    shift (median minus the base median), method, pareto_k (of a row reweighted from the base fit, or of
    the importance ratio that was too heavy-tailed where the row is the exact refit instead; blank
    otherwise), notes, divergences (of the row's own refit; 0 for rows reweighted from the base fit and
    for exact ones). ``base`` (rows of the base fit)
    defaults to the first frame's rows with scenario "base"; other "base" rows are dropped.
    """
    frames = [f for f in frames if f is not None and len(f)]
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["scenario", "quantity"])
    if base is None:
        base = allrows[allrows["scenario"] == "base"].drop_duplicates("quantity")
    base = base.assign(family="base", scenario="base")
    rest = allrows[allrows["scenario"] != "base"]
    df = pd.concat([base, rest], ignore_index=True)
    df = df[df["quantity"].isin(list(quantities))].copy()
    bmed = base.drop_duplicates("quantity").set_index("quantity")["median"]
    df["shift"] = df["median"] - df["quantity"].map(bmed)
    df["label"] = df["quantity"].map(lambda q: QUANTITY_LABELS.get(q, q))
    cols = ["family", "scenario", "quantity", "label", "median", LOWER, UPPER, "prob_below_0", "shift", "method",
            "pareto_k", "notes", "divergences"]
    df = df.reindex(columns=cols).reset_index(drop=True)
    df["notes"] = df["notes"].fillna("")
    df["divergences"] = df["divergences"].fillna(0).astype(int)
    df.attrs["interval"] = INTERVAL_LABEL
    return df


def _base_extract(fit, sc: Scenario) -> dict[str, pd.DataFrame]:
    return {"summary": summarise(fit, sc), "psense": power_scaling(fit, scenario=sc.name)}


#: The analyses a report's table can hold, by family, in the order :func:`sensitivity_for_report` runs them.
FAMILIES: dict[str, Analysis] = {a.family: a for a in (PriorFamily(), RhoFamily(), ThresholdFamily(),
                                                       EvidenceFamily(), LeaveOneOutFamily())}
#: Families run by :func:`sensitivity_for_report` by default.
REPORT_FAMILIES = tuple(FAMILIES)


def sensitivity_for_report(spec, evidence, *, families: Sequence[str] = REPORT_FAMILIES, prior_method: str = "auto",
                           refit_unreliable: bool | str = True, loo_method: str = "auto",
                           evidence_method: str = "auto", thresholds: Sequence[float] = (0.5, 1.0), rho_values: Sequence[float] = (0.2, 0.5, 0.8),
                           evidence_names: Sequence[str] | None = None, draws: int | None = None,
                           tune: int | None = None, chains: int | None = None, seed: int | None = None,
                           target_accept: float | None = None, scheduler=None, progress: bool = False
                           ) -> ReportSensitivity:
    """The sensitivity results the report shows, for one spec on the evidence.

    ``table`` (:func:`report_table`): per scenario of each family in ``families`` ("prior",
    "rho" (when the model has rho), "threshold" (EDSS only), "evidence", "leave-one-out"), the
    pooled MSC effect (``msc_effect``, or ``mu`` when no control arm is modelled) and the
    IT-vs-IV route contrast (when route is a covariate): median, 95% ETI, P(< 0) and shift
    from the base. ``psense`` (:func:`power_scaling`) of the base fit. Families that change
    the model's structure (other prior families, thresholds, most evidence scenarios)
    compile a model each; the rest reuse the base model. ``prior_method`` and
    ``refit_unreliable`` are passed to :func:`prior_sensitivity` (with ``prior_method="reweight"``
    and ``refit_unreliable="same-family"`` the prior family compiles nothing). ``loo_method`` is
    passed to :func:`leave_one_out` ("reweight": PSIS reweighting of the base fit, exact refits
    only of studies with Pareto k > 0.7), ``evidence_method`` to :func:`evidence_scenarios` ("reweight":
    scenarios that leave whole studies out likewise). An unknown family is an error before anything is sampled.
    """
    unknown = [fam for fam in families if fam not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {unknown[0]!r}; choose from {REPORT_FAMILIES}")
    pooled, contrast = headline_quantities(spec, evidence)
    quantities = [pooled] + ([contrast] if contrast else [])
    kw = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "target_accept": target_accept,
          "scheduler": scheduler, "progress": progress}
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    base_sc = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_base_extract, method="mcmc")
    base = run_scenarios([base_sc], scheduler=scheduler, on_error="raise", progress=progress)[0]
    request = ReportRequest(quantities, prior_method=prior_method, refit_unreliable=refit_unreliable,
                            loo_method=loo_method, evidence_method=evidence_method, thresholds=thresholds, rho_values=rho_values,
                            evidence_names=evidence_names, kw=kw)
    frames = [FAMILIES[fam].run(spec, evidence, request) for fam in families if FAMILIES[fam].applies(spec, evidence)]
    base_rows = base["summary"].assign(method="mcmc")
    table = report_table(frames, quantities=quantities, base=base_rows)
    return ReportSensitivity(table, base["psense"])


# --------------------------------------------------------------------------------------
# The report's policy
# --------------------------------------------------------------------------------------

# Sensitivity section (EDSS models, and the adverse events' safety wording; skipped with
# --no-sensitivity). Only scenarios that reuse the report's compiled base model are run (plus the
# few named in SENSITIVITY_COMPILED), so the section costs sampling, not compiles: a change of prior
# family, of the EDSS threshold or of the data/structure would compile one new model per scenario
# (tens of seconds each on a machine's first run; the on-disk compile cache loads it later). The
# base fit itself is reused (sweep.remember_fit), and every refit uses the sampler settings of the
# report's final fit.
#: Outcomes that get a sensitivity section.
SENSITIVITY_OUTCOMES = ("edss_change", "adverse_events")
#: Families run: hyperpriors, rho held near fixed values, evidence readings, leave-one-study-out
#: ("threshold" is left out: each threshold compiles its own model) ...
SENSITIVITY_FAMILIES = ("prior", "rho", "evidence", "leave-one-out")
#: ... except for these outcomes, which show only the families named here.
SENSITIVITY_OUTCOME_FAMILIES = {"adverse_events": ("evidence",)}
#: Alternative hyperpriors by PSIS importance reweighting of the base fit (no refit at all) ...
SENSITIVITY_PRIOR_METHOD = "reweight"
#: ... and where Pareto k is too high, exact refits only of alternatives keeping the base prior
#: family (sampling only); the others stay reweighted, flagged in their notes.
SENSITIVITY_REFIT_UNRELIABLE = "same-family"
#: Leave-one-study-out by PSIS importance reweighting of the base fit (weights: minus the left-out
#: study's log likelihood), with an exact zero-weight refit of each study whose Pareto k is too high.
SENSITIVITY_LOO_METHOD = "reweight"
#: Evidence scenarios that leave whole studies out likewise: PSIS importance reweighting of the base
#: fit where Pareto k <= K_THRESHOLD, else the exact zero-weight refit.
SENSITIVITY_EVIDENCE_METHOD = "reweight"
#: rho held (almost) fixed at these values: a tight Beta, the family of the spec's rho prior
#: (run only when that prior is Beta, else it would compile).
SENSITIVITY_RHO_VALUES = (0.2, 0.5, 0.8)
#: Evidence scenarios considered, per outcome (default: "*"). Run are those that apply, change
#: something, and either are exact zero-weight refits of the base model (whole studies left out)
#: or refit its compiled model (options that set pm.Data only: shared_patients, carry_over),
#: checked per spec (:func:`report_evidence`); the others are skipped unless in SENSITIVITY_COMPILED.
SENSITIVITY_EVIDENCE = {
    "*": ("progressive MS only", "without MSC-NP and placenta-derived cells",
          "Tehran: Bonab 2012 overlapping the pilots", "Tehran: pilot and 5-year follow-up counted once",
          "Petrou 2020 arms as independent", "carry-over none", "carry-over full", "first period only"),
    "adverse_events": ("explicit safety statements only",),
}
#: Evidence scenarios run even though each compiles a model of its own: the adverse events' one
#: scenario (its section's only refit, ~2-3 s warm). Not the EDSS "without secondary per-patient
#: data": measured on 2 cores it costs a compile on a machine's first run plus ~13 s of sampling,
#: where the seven scenarios above cost ~13 s each of sampling only, and it moved the pooled MSC
#: effect by < 0.001; like "primary sources only" it is left to msc_bayes.sensitivity and the notebook.
SENSITIVITY_COMPILED = ("explicit safety statements only",)

#: How a report's evidence scenario is fitted (:func:`report_evidence`).
EXCLUSION, SAME_MODEL, OWN_MODEL = ("exact zero-weight refit of the base model",
                                    "refit of the base's compiled model under other option values",
                                    "a model of its own (compiled)")


def sensitivity_settings() -> dict:
    """The report's sensitivity policy, as written in run.json."""
    return {"outcomes": list(SENSITIVITY_OUTCOMES), "families": list(SENSITIVITY_FAMILIES),
            "outcome_families": {k: list(v) for k, v in SENSITIVITY_OUTCOME_FAMILIES.items()},
            "prior_method": SENSITIVITY_PRIOR_METHOD, "refit_unreliable": SENSITIVITY_REFIT_UNRELIABLE,
            "loo_method": SENSITIVITY_LOO_METHOD, "evidence_method": SENSITIVITY_EVIDENCE_METHOD,
            "rho_values": list(SENSITIVITY_RHO_VALUES),
            "evidence": {k: list(v) for k, v in SENSITIVITY_EVIDENCE.items()},
            "evidence_compiled": list(SENSITIVITY_COMPILED)}


_PLANS: dict[str, dict[str, str]] = {}


def report_evidence(spec, evidence) -> dict[str, str]:
    """The evidence scenarios the report runs for this spec, each with how it is fitted
    (:data:`EXCLUSION`, :data:`SAME_MODEL` or :data:`OWN_MODEL`), in :data:`SENSITIVITY_EVIDENCE`'s order."""
    key = inference.structure_key(spec, evidence) + json.dumps(spec.to_dict(), sort_keys=True, default=str)
    if key in _PLANS:
        return dict(_PLANS[key])
    chosen = {}
    for name in SENSITIVITY_EVIDENCE.get(spec.outcome, SENSITIVITY_EVIDENCE["*"]):
        try:
            planned = plan(spec, evidence, EVIDENCE_SCENARIOS[name])
        except Exception:  # noqa: BLE001, S112 - e.g. no such arms: nothing to refit
            continue
        if isinstance(planned, NoRefit):
            continue
        spec2, evidence2, _, exclude = planned
        if exclude:
            chosen[name] = EXCLUSION
        elif reuses_base_model(spec, evidence, spec2, evidence2):
            chosen[name] = SAME_MODEL
        elif name in SENSITIVITY_COMPILED:
            chosen[name] = OWN_MODEL
    _PLANS[key] = chosen
    return dict(chosen)


def _families(spec, evidence) -> tuple[tuple[str, ...], list[str]]:
    """The families that reuse this model's compiled form, and the evidence scenarios run."""
    families = list(SENSITIVITY_OUTCOME_FAMILIES.get(spec.outcome, SENSITIVITY_FAMILIES))
    names: list[str] = []
    if "rho" in families and getattr(spec.priors.get("rho"), "dist", None) != "Beta":
        families.remove("rho")  # a tight non-Beta rho prior would compile a new model
    if "evidence" in families:
        names = list(report_evidence(spec, evidence))
        if not names:
            families.remove("evidence")
    return tuple(families), names


def has_section(spec, evidence) -> bool:
    """Does the report show a sensitivity section for this spec? Its outcome is in
    :data:`SENSITIVITY_OUTCOMES` and at least one family applies (adverse events: only when the
    explicit-statements scenario changes something)."""
    return spec.outcome in SENSITIVITY_OUTCOMES and bool(_families(spec, evidence)[0])


def report_arguments(spec, evidence) -> dict:
    """The options of :func:`sensitivity_for_report` for the report's section of one model (the
    sampler settings are the report's final fit's)."""
    families, names = _families(spec, evidence)
    return {"families": families, "prior_method": SENSITIVITY_PRIOR_METHOD,
            "refit_unreliable": SENSITIVITY_REFIT_UNRELIABLE, "loo_method": SENSITIVITY_LOO_METHOD,
            "evidence_method": SENSITIVITY_EVIDENCE_METHOD, "rho_values": SENSITIVITY_RHO_VALUES, "evidence_names": names}


#: How an exclusion answered by importance reweighting is said (:func:`_evidence_text`).
REWEIGHTED = "exact zero-weight fit of the base model by importance reweighting"


def _evidence_text(names: Sequence[str] | Mapping[str, str], reweighted: Sequence[str] = ()) -> str:
    """"the evidence (a, b as exact zero-weight refits ...; c as ...)" from names, or names -> how;
    the exclusions in ``reweighted`` were answered by PSIS reweighting of the base fit."""
    how = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names, EXCLUSION)
    how = {n: REWEIGHTED if h == EXCLUSION and n in set(reweighted) else h for n, h in how.items()}
    groups = {h: [n for n, x in how.items() if x == h] for h in dict.fromkeys(how.values())}
    said = {EXCLUSION: "as exact zero-weight refits of the base model",
            REWEIGHTED: (f"as exact zero-weight fits of the base model by importance reweighting of the base fit "
                         f"(Pareto k <= {K_THRESHOLD:g})"),
            SAME_MODEL: "as refits of the base's compiled model under other option values",
            OWN_MODEL: "with a model of its own (compiled)"}
    return "the evidence (" + "; ".join(f"{', '.join(ns)}, {'each ' * (len(ns) > 1 and h == OWN_MODEL)}"
                                        f"{said.get(h, h)}" for h, ns in groups.items()) + ")"


def _studies_in_turn(n: int) -> str:
    return "the one study left out" if n == 1 else f"each of {n} studies left out in turn"


def varied_text(table: pd.DataFrame, names: Sequence[str] | Mapping[str, str]) -> str:
    """One sentence: what the sensitivity section varied (from the families in the table); ``names``:
    the evidence scenarios run (all exact zero-weight refits), or name -> how (:func:`report_evidence`)."""
    rows = table.drop_duplicates(["family", "scenario"])
    count = rows["family"].value_counts()
    parts = []
    if count.get("prior"):
        alternatives = "1 alternative" if count["prior"] == 1 else f"{count['prior']} alternatives"
        parts.append(f"the hyperpriors ({alternatives}, by importance reweighting of the base fit; "
                     f"where Pareto k > {K_THRESHOLD:g}, alternatives keeping the prior family were refitted)")
    if count.get("rho"):
        parts.append("the pre–post correlation rho held near " + ", ".join(f"{v:g}" for v in SENSITIVITY_RHO_VALUES))
    if count.get("evidence"):
        ev = rows[rows["family"] == "evidence"]
        parts.append(_evidence_text(names, list(ev.loc[ev["method"] == "reweight", "scenario"])))
    if count.get("leave-one-out"):
        loo = rows[rows["family"] == "leave-one-out"]
        n_refit = int((loo["method"] != "reweight").sum())
        if (loo["method"] == "reweight").any():
            parts.append(f"{_studies_in_turn(count['leave-one-out'])} (by importance reweighting of "
                         f"the base fit, with an exact zero-weight refit where Pareto k > {K_THRESHOLD:g}: "
                         f"{n_refit} {'study' if n_refit == 1 else 'studies'})")
        else:
            parts.append(f"{_studies_in_turn(count['leave-one-out'])} (exact zero-weight refits)")
    varied = "; ".join(parts) if parts else "nothing (no scenario applied)"
    compiled = isinstance(names, Mapping) and OWN_MODEL in names.values() and count.get("evidence")
    others = "other evidence readings than those listed" if compiled else "other evidence readings"
    return (f"Varied, each with the base fit's sampler settings: {varied}. Scenarios that would compile a new "
            f"model (other prior families refitted, the EDSS category threshold, {others}) are not "
            "run here; see msc_bayes.sensitivity.")
