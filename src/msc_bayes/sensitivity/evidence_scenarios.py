"""The analysis under other readings of the evidence: secondary sources, overlapping cohorts,
timepoints, subgroups (:data:`EVIDENCE_SCENARIOS`, :func:`evidence_scenarios`), and when such a
reading is an exact zero-weight refit of the base model (:func:`as_exclusion`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from msc_bayes.sensitivity.base import (
    ReportRequest,
    finish,
    fit_kwargs,
    prepare,
    supports_exclusion,
)
from msc_bayes.sweep import Scenario, concat, run_scenarios

#: Disease codes of progressive MS, and of NMO spectrum disorders (data/README.md).
PROGRESSIVE = ("SPMS", "PPMS", "progressive")
NMO = ("NMO", "NMOSD")


def _primary_only(spec, evidence):
    return spec.replace(options={"exclude_secondary": True}), evidence, \
        "values from secondary sources blanked (options.exclude_secondary)"


def _next_ranked(spec, evidence):
    """Demote, in each overlap group, the cohort(s) the base analysis uses, so the next-ranked one with data is used."""
    arms = evidence.arms
    used = set(zip(*[prepare(spec, evidence).units[c] for c in ("study", "arm")]))
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
        return spec, evidence, "no overlapping cohort is used by this outcome: same as base"
    return spec, evidence.with_tables(arms=arms.assign(overlap_rank=new_rank)), \
        "next-ranked cohort preferred in " + ", ".join(changed)


def _all_timepoints(spec, evidence):
    return spec.replace(options={"timepoint": "all"}), evidence, \
        "every reported timepoint of an arm is a unit (options.timepoint = 'all'; not independent evidence)"


def _progressive(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: a["disease"].isin(PROGRESSIVE)), \
        "arms with disease " + "/".join(PROGRESSIVE)


def _without_nmo(spec, evidence):
    return spec, evidence.subset(arms_where=lambda a: ~a["disease"].isin(NMO)), \
        "arms with disease " + "/".join(NMO) + " left out"


#: The default evidence scenarios: name -> f(spec, evidence) -> (spec, evidence, description).
EVIDENCE_SCENARIOS: dict[str, Callable] = {
    "primary sources only": _primary_only,
    "next-ranked overlapping cohort": _next_ranked,
    "all timepoints": _all_timepoints,
    "progressive MS only": _progressive,
    "without NMO/NMOSD": _without_nmo,
}


def as_exclusion(spec, evidence, spec2, evidence2) -> tuple[str, ...] | None:
    """The studies whose zero weight in the base model gives exactly the (spec2, evidence2) fit, or None.

    True when the spec is unchanged, the scenario's units are the base units minus whole
    studies, and their design rows are the same (extra base columns zero on them).
    """
    if spec2 != spec or evidence2 is evidence:
        return None
    try:
        p0, p1 = prepare(spec, evidence), prepare(spec2, evidence2)
    except Exception:  # noqa: BLE001 - e.g. no usable rows left: the scenario's own fit reports it
        return None
    u0, u1 = p0.units, p1.units
    lab0, lab1 = list(u0["label"]), list(u1["label"])
    if not set(lab1) <= set(lab0) or not supports_exclusion(spec, evidence):
        return None
    removed = set(u0.loc[~u0["label"].isin(lab1), "study"])
    if set(u1["study"]) & removed:
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
                       on_error: str = "record", progress: bool = False) -> pd.DataFrame:
    """The analysis under other readings of the evidence.

    scenarios: names from :data:`EVIDENCE_SCENARIOS` (default: all of them) —
    "primary sources only" (secondary-source values blanked), "next-ranked overlapping
    cohort" (in each overlap group the cohort used is demoted so the next-ranked one with
    data is used), "all timepoints" (``options.timepoint = "all"``), "progressive MS only",
    "without NMO/NMOSD" — or a mapping name -> ``f(spec, evidence) -> (spec, evidence, description)``.

    A subgroup that removes whole studies is fitted as an exact zero-weight refit of the base
    model (no compile; noted); other scenarios compile their own model. ``method`` as in
    :func:`leave_one_out`. Extra column: ``description``.
    """
    if scenarios is None:
        chosen = dict(EVIDENCE_SCENARIOS)
    elif isinstance(scenarios, Mapping):
        chosen = dict(scenarios)
    else:
        unknown = [s for s in scenarios if s not in EVIDENCE_SCENARIOS]
        if unknown:
            raise ValueError(f"unknown evidence scenarios {unknown}; known: {list(EVIDENCE_SCENARIOS)}")
        chosen = {s: EVIDENCE_SCENARIOS[s] for s in scenarios}
    fkw = fit_kwargs(draws, tune, chains, seed, target_accept)
    todo = [Scenario("base", spec, evidence, fkw, quantities=quantities, method=method,
                     meta={"family": "evidence", "description": "all evidence, spec as given"})] if include_base else []
    failed: dict[int, pd.DataFrame] = {}
    for name, make in chosen.items():
        try:
            spec2, ev2, description = make(spec, evidence)
        except Exception as exc:  # recorded like a failed fit
            if on_error == "raise":
                raise
            failed[len(todo) + len(failed)] = pd.DataFrame([{"scenario": name, "family": "evidence", "description": "",
                                                             "quantity": None, "method": "error",
                                                             "notes": f"{type(exc).__name__}: {exc}"}])
            continue
        excl = as_exclusion(spec, evidence, spec2, ev2)
        if excl is not None:
            description += f" (exact zero-weight refit of the base model without {', '.join(excl) or 'no study'})"
            todo.append(Scenario(name, spec, evidence, {**fkw, "exclude_studies": excl}, quantities=quantities,
                                 method=method, meta={"family": "evidence", "description": description}))
        else:
            todo.append(Scenario(name, spec2, ev2, fkw, quantities=quantities, method=method,
                                 meta={"family": "evidence", "description": description}))
    results = list(run_scenarios(todo, scheduler=scheduler, on_error=on_error, progress=progress))
    for i in sorted(failed):
        results.insert(i, failed[i])
    return finish(concat(results))


class EvidenceFamily:
    """The report's "evidence" family: the named evidence scenarios (``request.evidence_names``)."""

    family = "evidence"

    def applies(self, spec, evidence) -> bool:
        return True

    def run(self, spec, evidence, request: ReportRequest) -> pd.DataFrame:
        return evidence_scenarios(spec, evidence, scenarios=request.evidence_names, quantities=request.quantities,
                                  include_base=False, **request.kw)
