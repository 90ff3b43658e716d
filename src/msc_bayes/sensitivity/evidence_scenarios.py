"""The analysis under other readings of the evidence: secondary sources, overlapping cohorts,
timepoints, subgroups, cell products, crossover periods, model options and safety wording
(:data:`EVIDENCE_SCENARIOS`, :func:`evidence_scenarios`); when such a reading has nothing to fit
(:class:`NoRefit`: not applicable to the outcome, or the same as the base), when it is an exact
zero-weight refit of the base model (:func:`as_exclusion`) and when it refits the base's compiled
model (:func:`reuses_base_model`); :func:`plan` says which."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from msc_bayes import inference, outcomes
from msc_bayes.diagnostics import divergences
from msc_bayes.evidence.schema import TABLES
from msc_bayes.outcomes.base import has_control
from msc_bayes.sensitivity.base import (
    K_THRESHOLD,
    ReportRequest,
    add_note,
    finish,
    fit_kwargs,
    prepare,
    r_eff,
    supports_exclusion,
    without_studies_rows,
)
from msc_bayes.sweep import (
    Scenario,
    concat,
    quantity_draws,
    run_scenarios,
    sampler_notes,
    summarise,
    tag,
)

#: Disease codes of progressive MS, and of NMO spectrum disorders (data/README.md).
PROGRESSIVE = ("SPMS", "PPMS", "progressive")
NMO = ("NMO", "NMOSD")
#: Cell products other than MSC proper (data/README.md): MSC-derived neural progenitors, placenta-derived cells.
CELL_PRODUCTS = ("msc_np", "placenta")
#: The overlap group of the Tehran intrathecal series (data/README.md).
TEHRAN = "tehran_it"


@dataclass(frozen=True)
class NoRefit:
    """What a scenario returns instead of ``(spec, evidence, description)`` when there is nothing to fit.

    ``kind`` "not applicable": the reading does not exist for this outcome (e.g. the events option
    ``statements`` for EDSS); "same as base": the data hold nothing the scenario changes. The runner
    records one row (``method`` = ``kind``, ``notes`` the reason) and fits nothing.
    """

    kind: Literal["not applicable", "same as base"]
    reason: str

    @property
    def note(self) -> str:
        return f"{self.kind} to this outcome: {self.reason}" if self.kind == "not applicable" else \
            f"{self.kind}: {self.reason}"


def not_applicable(reason: str) -> NoRefit:
    return NoRefit("not applicable", reason)


def same_as_base(reason: str) -> NoRefit:
    return NoRefit("same as base", reason)


def _primary_only(spec, evidence):
    if spec.options.get("exclude_secondary"):
        return same_as_base("the spec already leaves secondary values out (options.exclude_secondary)")
    return spec.replace(options={"exclude_secondary": True}), evidence, \
        "values from secondary sources blanked (options.exclude_secondary)"


def _next_ranked(spec, evidence):
    """Demote, in each overlap group, the cohort(s) the base analysis uses, so the next-ranked one with data is used."""
    arms = evidence.arms
    used = set(zip(*[_prepared(spec, evidence).units[c] for c in ("study", "arm")]))
    grouped = arms["overlap_group"].notna()
    new_rank = arms["overlap_rank"].copy()
    changed = []
    for g, idx in arms[grouped].groupby("overlap_group").groups.items():
        members = arms.loc[idx]
        in_use = [i for i in idx if (arms.at[i, "study"], arms.at[i, "arm"]) in used]
        if in_use and len(members) > len(in_use):
            top = int(members["overlap_rank"].max())
            for i in in_use:
                new_rank[i] = top + 1
            changed.append(g)
    if not changed:
        return same_as_base("no overlapping cohort with a next-ranked alternative is used by this outcome")
    return spec, evidence.with_tables(arms=arms.assign(overlap_rank=new_rank)), \
        "next-ranked cohort preferred in " + ", ".join(changed)


def _all_timepoints(spec, evidence):
    if spec.options.get("timepoint") == "all":
        return same_as_base("the spec already uses every timepoint")
    return spec.replace(options={"timepoint": "all"}), evidence, \
        "every reported timepoint of an arm is a unit (options.timepoint = 'all'; not independent evidence)"


def _progressive(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: a["disease"].isin(PROGRESSIVE)), \
        "arms with disease " + "/".join(PROGRESSIVE)


def _without_nmo(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: ~a["disease"].isin(NMO)), \
        "arms with disease " + "/".join(NMO) + " left out"


# --------------------------------------------------------------------------------------
# Arms left out: cell products, crossover periods
# --------------------------------------------------------------------------------------


def _arm_keys(df: pd.DataFrame, arm: str = "arm") -> pd.Series:
    return pd.Series(list(zip(df["study"], df[arm])), index=df.index, dtype=object)


def _without_arms(evidence, drop: set) -> tuple[object, list[str], list[str]]:
    """Evidence without the arms ``drop`` ((study, arm) pairs) and without the control arms of a study
    left with no MSC arm (a control alone says nothing of MSC); (evidence, studies left out whole, arms)."""
    arms = evidence.arms
    keys = _arm_keys(arms)
    gone = keys.isin(drop)
    control = arms["group"].fillna("msc").eq("control") if "group" in arms else pd.Series(False, index=arms.index)
    with_msc = set(arms.loc[~gone & ~control, "study"])
    gone |= control & ~arms["study"].isin(with_msc)
    whole = sorted(set(arms.loc[gone, "study"]) - set(arms.loc[~gone, "study"]))
    listed = [f"{s}:{a}" for s, a in keys[gone]]
    return evidence.subset(arms_where=lambda a: ~_arm_keys(a).isin(set(keys[gone])).to_numpy()), whole, listed


def _studies_text(whole: list[str], listed: list[str]) -> str:
    partly = [x for x in listed if x.split(":")[0] not in whole]
    return "; ".join(p for p in ((", ".join(whole) + " left out") if whole else "",
                                 ("arms " + ", ".join(partly) + " left out") if partly else "") if p)


def _without_cell_products(spec, evidence):
    arms = evidence.arms
    if "cell_source" not in arms:
        return same_as_base("the arms table has no cell_source column")
    drop = set(_arm_keys(arms[arms["cell_source"].isin(CELL_PRODUCTS)]))
    if not drop:
        return same_as_base("no arm has cell_source " + " or ".join(CELL_PRODUCTS))
    ev2, whole, listed = _without_arms(evidence, drop)
    return spec, ev2, (f"arms with cell_source {' / '.join(CELL_PRODUCTS)} (MSC-derived neural progenitors, "
                       f"placenta-derived cells) and the controls of their studies: {_studies_text(whole, listed)}")


def _pooling_arms(evidence) -> set:
    """(study, arm) of arms that pool crossover periods: in shared_patients, or with periods_after_msc > 0."""
    shared = evidence.shared_patients
    pooled = set(_arm_keys(shared)) | set(_arm_keys(shared, "other_arm"))
    arms = evidence.arms
    if "periods_after_msc" in arms:
        after = pd.to_numeric(arms["periods_after_msc"], errors="coerce").fillna(0) > 0
        pooled |= set(_arm_keys(arms[after]))
    return pooled


def _first_period_only(spec, evidence):
    pooled = _pooling_arms(evidence)
    if not pooled:
        return same_as_base("no arm pools crossover periods (shared_patients.csv, periods_after_msc)")
    ev2, whole, listed = _without_arms(evidence, pooled)
    text = (f"arms that pool both crossover periods (shared patients or periods after MSC) left out: "
            f"{_studies_text(whole, listed)}")
    if whole:
        text += (f". The evidence has no first-period-only data for {', '.join(whole)}, so this leaves "
                 f"{'the study' if len(whole) == 1 else 'those studies'} out; a crossover reporting its first "
                 "period separately (arms without shared patients) would be kept")
    return spec, ev2, text


# --------------------------------------------------------------------------------------
# Per-patient data and overlapping cohorts
# --------------------------------------------------------------------------------------


def _without_secondary_patients(spec, evidence):
    patients = evidence.patients
    secondary = patients.get("grade", pd.Series("", index=patients.index)).eq("secondary")
    if not secondary.any():
        return same_as_base("no per-patient row is graded secondary")
    counts = patients[secondary].groupby(["study", "arm"]).size()
    listed = ", ".join(f"{s}:{a} ({k} rows)" for (s, a), k in counts.items())
    return spec, evidence.with_tables(patients=patients[~secondary]), \
        (f"per-patient rows graded secondary left out ({listed}); every other value as is (unlike "
         "'primary sources only', which blanks every secondary value)")


def _ranks(arms: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(arms["overlap_rank"], errors="coerce")


def _bonab2012_overlapping(spec, evidence, group: str = TEHRAN, study: str = "bonab2012"):
    """``study`` put (back) into overlap group ``group`` at rank 1, above the group's other cohorts."""
    arms = evidence.arms
    members = arms["overlap_group"].eq(group)
    target = arms["study"].eq(study)
    others = members & ~target
    if not others.any() or not target.any():
        return same_as_base(f"the data have no overlap group {group} with {study} and other cohorts")
    rank = _ranks(arms)
    if members[target].all() and rank[target].max() < rank[others].min():
        return same_as_base(f"{study} already ranks first in {group}")
    new_rank = rank.where(~others, rank - rank[others].min() + 2).where(~target, 1)
    new_group = arms["overlap_group"].where(~target, group)
    names = ", ".join(dict.fromkeys(arms.loc[others, "study"]))
    return spec, evidence.with_tables(arms=arms.assign(overlap_group=new_group, overlap_rank=new_rank)), \
        (f"{study} put into overlap group {group} at rank 1, above {names} (the old ranking: where {study} "
         "has data, the cohorts it may share patients with are left out)")


def _pilot_counted_once(spec, evidence, group: str = TEHRAN, later: str = "sahraian2014", earlier: str = "bonab2005"):
    """In ``group``, ``earlier`` (a pilot) ranked just below ``later`` (its long-term follow-up)."""
    arms = evidence.arms
    members = arms["overlap_group"].eq(group)
    late, early = members & arms["study"].eq(later), members & arms["study"].eq(earlier)
    if not late.any() or not early.any():
        return same_as_base(f"the data have no overlap group {group} holding both {earlier} and {later}")
    rank = _ranks(arms)
    r = rank[late].max()
    if rank[early].min() > r:
        return same_as_base(f"{earlier} already ranks below {later} in {group}")
    shift = members & ~late & ~early & (rank > r)
    new_rank = rank.where(~shift, rank + 1).where(~early, r + 1)
    return spec, evidence.with_tables(arms=arms.assign(overlap_rank=new_rank)), \
        (f"{earlier} and {later} (its long-term follow-up), which may share patients, counted once: {earlier} "
         f"ranked just below {later} in {group}, so where {later} has data only its rows are kept")


# --------------------------------------------------------------------------------------
# Model options
# --------------------------------------------------------------------------------------


def _option(key: str, value, description: str, *, relevant: Callable | None = None) -> Callable:
    """A scenario setting ``options.<key> = value``: not applicable to an outcome without that option,
    the same as base when the spec has it already or ``relevant(spec, evidence)`` says the data hold
    nothing it acts on (a reason, or None)."""

    def scenario(spec, evidence):
        if key not in outcomes.get(spec.outcome).options:
            return not_applicable(f"options.{key} is not an option of {spec.outcome}")
        if spec.options.get(key) == value:
            return same_as_base(f"the spec already has options.{key} = {value!r}")
        reason = relevant(spec, evidence) if relevant is not None else None
        if reason:
            return same_as_base(reason)
        return spec.replace(options={key: value}), evidence, f"{description} (options.{key} = {value!r})"

    scenario.__name__ = f"option_{key}_{value}"
    return scenario


def _used_studies(spec, evidence) -> set:
    return set(_prepared(spec, evidence).units["study"])


def _no_shared(spec, evidence) -> str | None:
    shared = evidence.shared_patients
    if not shared["study"].isin(_used_studies(spec, evidence)).any():
        return "no modelled study has arms that share patients (shared_patients.csv)"
    return None


def _no_carry_over(spec, evidence) -> str | None:
    arms = evidence.arms
    if "periods_after_msc" not in arms:
        return "no arm has periods after MSC (periods_after_msc)"
    after = pd.to_numeric(arms["periods_after_msc"], errors="coerce").fillna(0) > 0
    if not (after & arms["study"].isin(_used_studies(spec, evidence))).any():
        return "no modelled arm has periods after MSC (periods_after_msc)"
    return None


#: The default evidence scenarios: name -> f(spec, evidence) -> (spec, evidence, description) or a :class:`NoRefit`.
EVIDENCE_SCENARIOS: dict[str, Callable] = {
    "primary sources only": _primary_only,
    "without secondary per-patient data": _without_secondary_patients,
    "next-ranked overlapping cohort": _next_ranked,
    "Tehran: Bonab 2012 overlapping the pilots": _bonab2012_overlapping,
    "Tehran: pilot and 5-year follow-up counted once": _pilot_counted_once,
    "all timepoints": _all_timepoints,
    "progressive MS only": _progressive,
    "without NMO/NMOSD": _without_nmo,
    "without MSC-NP and placenta-derived cells": _without_cell_products,
    "Petrou 2020 arms as independent": _option(
        "shared_patients", False, "arms of a crossover that share patients treated as independent samples "
        "(the model before shared_patients.csv)", relevant=_no_shared),
    "carry-over none": _option("carry_over", "none", "no MSC effect carried into control periods after MSC",
                               relevant=_no_carry_over),
    "carry-over full": _option("carry_over", "full", "the whole MSC effect carried into control periods after MSC",
                               relevant=_no_carry_over),
    "first period only": _first_period_only,
    "explicit safety statements only": _option(
        "statements", "explicit", "only explicit safety statements (counts, and 'none' of a named event "
        "class); vague wordings left out"),
}


#: Options that act only on the selection of units (``prepare``): a change of them that leaves the
#: units, the design and the tables the same leaves the fit the same.
SELECTION_OPTIONS = ("timepoint", "exclude_secondary", "statements")
_OVERLAP = ["overlap_group", "overlap_rank"]
_PREPARED: dict[str, object] = {}


def _prepared(spec, evidence):
    """:func:`~.base.prepare`, remembered for the last few (spec, data) pairs (it is pure)."""
    key = json.dumps(spec.to_dict(), sort_keys=True, default=str) + "|" + evidence.data_hash
    if key not in _PREPARED:
        _PREPARED[key] = prepare(spec, evidence)
        while len(_PREPARED) > 32:
            _PREPARED.pop(next(iter(_PREPARED)))
    return _PREPARED[key]


def unchanged(spec, evidence, spec2, evidence2) -> bool:
    """Is the (spec2, evidence2) fit the base fit? The spec is the same (or differs in
    :data:`SELECTION_OPTIONS` only) and so is everything the model reads: its units and design,
    and the rows of the modelled studies in the outcome's tables and shared_patients (overlap
    ranks aside: they act through the units)."""
    if spec2 != spec:
        keys = [k for k in SELECTION_OPTIONS if k in spec.options]
        if spec2.replace(options={k: spec.options[k] for k in keys}) != spec:
            return False
    elif evidence2 is evidence or evidence2.data_hash == evidence.data_hash:
        return True
    try:
        p0, p1 = _prepared(spec, evidence), _prepared(spec2, evidence2)
    except Exception:  # noqa: BLE001 - the scenario's own fit reports it
        return False
    u0, u1 = (p.units.drop(columns=_OVERLAP, errors="ignore") for p in (p0, p1))
    if not u0.equals(u1) or tuple(p0.design.columns) != tuple(p1.design.columns) or \
            not np.array_equal(p0.design.X, p1.design.X, equal_nan=True) or p0.design.latent != p1.design.latent:
        return False
    return _same_rows(spec, evidence, evidence2, set(p0.units["study"]))


def _same_rows(spec, evidence, evidence2, studies: set) -> bool:
    """Do both evidences hold the same rows of ``studies`` in the tables the outcome's model reads
    (its own, arms and shared_patients; overlap ranks aside)?"""
    for name in dict.fromkeys([*outcomes.get(spec.outcome).tables, "arms", "shared_patients"]):
        if name not in TABLES:
            continue
        a, b = (t[t["study"].isin(studies)].drop(columns=_OVERLAP, errors="ignore").reset_index(drop=True)
                for t in (evidence.table(name), evidence2.table(name)))
        if not a.equals(b):
            return False
    return True


def reuses_base_model(spec, evidence, spec2, evidence2) -> bool:
    """Does the (spec2, evidence2) fit refit the base fit's compiled model (other pm.Data values only,
    e.g. the outcome's ``data_options``)?"""
    return inference.structure_key(spec, evidence) == inference.structure_key(spec2, evidence2)


def plan(spec, evidence, make: Callable) -> NoRefit | tuple:
    """A scenario's fit: a :class:`NoRefit`, or (spec2, evidence2, description, exclude) where ``exclude``
    is the studies of an exact zero-weight refit of the base model (:func:`as_exclusion`) or None."""
    made = make(spec, evidence)
    if isinstance(made, NoRefit):
        return made
    spec2, ev2, description = made
    if unchanged(spec, evidence, spec2, ev2):
        return same_as_base(f"{description}: this changes nothing the model of {spec.outcome} uses")
    return spec2, ev2, description, as_exclusion(spec, evidence, spec2, ev2)


def as_exclusion(spec, evidence, spec2, evidence2) -> tuple[str, ...] | None:
    """The studies whose zero weight in the base model gives exactly the (spec2, evidence2) fit, or None.

    True when the spec is unchanged, the scenario's units are the base units minus whole
    studies (the kept units and the rows of their studies unchanged), and their design rows are
    the same (extra base columns zero on them).
    """
    if spec2 != spec or evidence2 is evidence:
        return None
    try:
        p0, p1 = _prepared(spec, evidence), _prepared(spec2, evidence2)
    except Exception:  # noqa: BLE001 - e.g. no usable rows left: the scenario's own fit reports it
        return None
    u0, u1 = p0.units, p1.units
    lab0, lab1 = list(u0["label"]), list(u1["label"])
    if not set(lab1) <= set(lab0) or not supports_exclusion(spec, evidence):
        return None
    removed = set(u0.loc[~u0["label"].isin(lab1), "study"])
    if set(u1["study"]) & removed:
        return None
    kept0 = u0[u0["label"].isin(lab1)].drop(columns=_OVERLAP, errors="ignore").reset_index(drop=True)
    if not kept0.equals(u1.drop(columns=_OVERLAP, errors="ignore").reset_index(drop=True)) or \
            not _same_rows(spec, evidence, evidence2, set(u1["study"])):
        return None
    X0 = pd.DataFrame(p0.design.X, index=lab0, columns=list(p0.design.columns)).loc[lab1]
    X1 = pd.DataFrame(p1.design.X, index=lab1, columns=list(p1.design.columns))
    if not set(X1.columns) <= set(X0.columns):
        return None
    extra = [c for c in X0.columns if c not in X1.columns]
    same = np.allclose(X0[list(X1.columns)].to_numpy(), X1.to_numpy(), equal_nan=True)
    if not same or (extra and np.nan_to_num(X0[extra].to_numpy()).any()):
        return None

    def latent(p, labels):
        cols = list(p.design.columns)
        return {(labels[lt.row], cols[lt.column], lt.low, lt.high) for lt in p.design.latent}

    if {x for x in latent(p0, lab0) if x[0] in set(lab1)} != latent(p1, lab1):
        return None
    return tuple(sorted(removed))


def evidence_scenarios(spec, evidence, *, scenarios: Sequence[str] | Mapping[str, Callable] | None = None,
                       quantities: Sequence[str] | None = None, include_base: bool = True, method: str = "auto",
                       draws: int | None = None, tune: int | None = None, chains: int | None = None,
                       seed: int | None = None, target_accept: float | None = None, scheduler=None,
                       on_error: str = "record", progress: bool = False, k_threshold: float = K_THRESHOLD
                       ) -> pd.DataFrame:
    """The analysis under other readings of the evidence.

    scenarios: names from :data:`EVIDENCE_SCENARIOS` (default: all of them) —
    "primary sources only" (secondary-source values blanked), "without secondary per-patient
    data" (patients.csv rows graded secondary left out, all else as is), "next-ranked
    overlapping cohort" (in each overlap group the cohort used is demoted so the next-ranked one
    with data is used), the two Tehran readings ("Bonab 2012 overlapping the pilots": bonab2012
    back in ``tehran_it`` at rank 1; "pilot and 5-year follow-up counted once": bonab2005 ranked
    below sahraian2014), "all timepoints" (``options.timepoint = "all"``), "progressive MS only",
    "without NMO/NMOSD", "without MSC-NP and placenta-derived cells", "Petrou 2020 arms as
    independent" (``options.shared_patients = false``), "carry-over none" / "carry-over full"
    (``options.carry_over``), "first period only" (arms pooling crossover periods left out),
    "explicit safety statements only" (event outcomes: ``options.statements = "explicit"``) —
    or a mapping name -> ``f(spec, evidence) -> (spec, evidence, description)`` or a :class:`NoRefit`.

    A scenario that does not apply to the outcome, or that changes nothing its model uses
    (:func:`unchanged`), is one row with ``method`` "not applicable" / "same as base", no
    quantity and no fit. A subgroup that removes whole studies is fitted as an exact
    zero-weight refit of the base model (no compile; noted); a change of the outcome's
    ``data_options`` refits the base's compiled model; other scenarios compile their own model.
    ``method``: "auto" (the exact oracle where it applies, else MCMC), "mcmc", or "reweight": a
    scenario that removes whole studies is answered by PSIS importance reweighting of the base fit
    (log weights minus the left-out studies' summed log likelihood, as :func:`leave_one_out`) when
    its Pareto k <= ``k_threshold``, else by its exact zero-weight refit (noted, with k); the other
    scenarios are refitted. Extra columns: ``description``, and ``pareto_k`` of reweighted or refitted
    exclusions with ``method="reweight"``.
    """
    if method not in ("auto", "mcmc", "oracle", "reweight"):
        raise ValueError("method must be 'auto', 'mcmc', 'oracle' or 'reweight'")
    reweight, method = method == "reweight", "mcmc" if method == "reweight" else method
    chosen = _chosen(scenarios)
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    todo = [Scenario("base", spec, evidence, fkw, quantities=quantities, method=method,
                     meta={"family": "evidence", "description": "all evidence, spec as given"})] if include_base else []
    fixed: dict[int, pd.DataFrame] = {}  # position -> rows without a fit (not applicable, same as base, failed)
    lonely: set[str] = set()  # scenarios that leave no control arm: msc_effect is its prior
    for name, make in chosen.items():
        try:
            planned = plan(spec, evidence, make)
        except Exception as exc:  # recorded like a failed fit
            if on_error == "raise":
                raise
            fixed[len(todo) + len(fixed)] = _row(name, "", "error", f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(planned, NoRefit):
            fixed[len(todo) + len(fixed)] = _row(name, planned.reason, planned.kind, planned.note)
            continue
        spec2, ev2, description, excl = planned
        if _loses_control(spec, evidence, spec2, ev2, excl):
            lonely.add(name)
        if excl is not None:
            description += f" (exact zero-weight refit of the base model without {', '.join(excl) or 'no study'})"
            todo.append(Scenario(name, spec, evidence, {**fkw, "exclude_studies": excl}, quantities=quantities,
                                 method=method, meta={"family": "evidence", "description": description}))
        else:
            todo.append(Scenario(name, spec2, ev2, fkw, quantities=quantities, method=method,
                                 meta={"family": "evidence", "description": description}))
    done: dict[int, pd.DataFrame] = {}  # position in todo -> rows reweighted from the base fit
    refit_k: dict[str, float] = {}  # exclusions refitted because their Pareto k is too high
    if reweight:
        done, refit_k = _reweighted(spec, evidence, todo, fkw, quantities, k_threshold, scheduler=scheduler,
                                    progress=progress)
    ran = iter(run_scenarios([sc for i, sc in enumerate(todo) if i not in done], scheduler=scheduler,
                             on_error=on_error, progress=progress))
    results = [done[i] if i in done else next(ran) for i in range(len(todo))]
    for r in results:
        name = r["scenario"].iloc[0]
        if name in refit_k:
            r["pareto_k"] = refit_k[name]
            r["notes"] = [add_note(n, f"refitted: Pareto k = {refit_k[name]:.2f} > {k_threshold:g}") for n in r["notes"]]
    for i in sorted(fixed):
        results.insert(i, fixed[i])
    df = concat(results)
    m = df["scenario"].isin(lonely) & df["quantity"].eq("msc_effect")
    df.loc[m, "notes"] = [add_note(n if isinstance(n, str) else "", "no control arm left: msc_effect is its prior")
                          for n in df.loc[m, "notes"]]
    return finish(df)


def _reweight_rows_extract(fit, sc: Scenario) -> pd.DataFrame:
    """Base summary (scenario "base") plus each exclusion of ``sc.extract_args["left_out"]`` by PSIS."""
    draws = quantity_draws(fit, sc.quantities)
    base = summarise(fit, sc).assign(scenario="base", method="mcmc")
    rows = without_studies_rows(fit, draws, {q: r_eff(x) for q, x in draws.items()}, sc.extract_args["left_out"])
    notes = sampler_notes(fit)
    base["notes"], rows["notes"] = notes, f"base fit: {notes}" if notes else ""
    base["divergences"], rows["divergences"] = divergences(fit), 0  # reweighted rows are no refit
    return concat([base, rows])


def _reweighted(spec, evidence, todo: list[Scenario], fkw, quantities, k_threshold, *, scheduler, progress
                ) -> tuple[dict[int, pd.DataFrame], dict[str, float]]:
    """The exclusion scenarios of ``todo`` (and its base) answered by PSIS reweighting of the base fit:
    (position -> tagged rows, for those with Pareto k <= ``k_threshold`` and the base; name -> k of
    those left to their exact zero-weight refit)."""
    exclusions = {sc.name: sc.fit_kwargs["exclude_studies"] for sc in todo
                  if sc.name != "base" and sc.fit_kwargs.get("exclude_studies")}
    if not exclusions:
        return {}, {}
    rw = Scenario("base", spec, evidence, fkw, quantities=quantities, extract=_reweight_rows_extract,
                  extract_args={"left_out": exclusions}, method="mcmc")
    rows = run_scenarios([rw], scheduler=scheduler, on_error="raise", progress=progress)[0]
    k = rows.groupby("scenario")["pareto_k"].first()
    done, refit = {}, {}
    for i, sc in enumerate(todo):
        if sc.name == "base":
            done[i] = tag(rows[rows["scenario"] == "base"].drop(columns="pareto_k"), sc, "mcmc", "", np.nan)
        elif sc.name in exclusions and k[sc.name] <= k_threshold:
            description = sc.meta["description"].replace(
                "(exact zero-weight refit", f"(PSIS reweighting, Pareto k = {k[sc.name]:.2f}, of the exact zero-weight fit")
            done[i] = tag(rows[rows["scenario"] == sc.name].assign(description=description), sc, "reweight", "",
                          np.nan)
        elif sc.name in exclusions:
            refit[sc.name] = float(k[sc.name])
    return done, refit


def _loses_control(spec, evidence, spec2, evidence2, exclude) -> bool:
    """Does the scenario leave no control arm where the base model has one?"""
    try:
        u0 = _prepared(spec, evidence).units
        u1 = u0[~u0["study"].isin(list(exclude))] if exclude is not None else _prepared(spec2, evidence2).units
    except Exception:  # noqa: BLE001 - the scenario's own fit reports it
        return False
    return has_control(u0) and not has_control(u1)


def _chosen(scenarios) -> dict[str, Callable]:
    if scenarios is None:
        return dict(EVIDENCE_SCENARIOS)
    if isinstance(scenarios, Mapping):
        return dict(scenarios)
    unknown = [s for s in scenarios if s not in EVIDENCE_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown evidence scenarios {unknown}; known: {list(EVIDENCE_SCENARIOS)}")
    return {s: EVIDENCE_SCENARIOS[s] for s in scenarios}


def _row(name: str, description: str, method: str, notes: str) -> pd.DataFrame:
    """The one row of a scenario that is not fitted."""
    return pd.DataFrame([{"scenario": name, "family": "evidence", "description": description, "quantity": None,
                          "method": method, "notes": notes}])


class EvidenceFamily:
    """The report's "evidence" family: the named evidence scenarios (``request.evidence_names``)."""

    family = "evidence"

    def applies(self, spec, evidence) -> bool:
        return True

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        return evidence_scenarios(spec, evidence, scenarios=request.evidence_names, quantities=request.quantities,
                                  include_base=False, method=request.evidence_method, **request.kw)
