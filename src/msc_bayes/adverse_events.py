"""Adverse events and MRI activity: a binomial-logit random-effects meta-regression.

One model serves two outcomes: ``adverse_events`` (table ``adverse_events.csv``) and
``mri_activity`` (table ``mri.csv``). A modelled unit u is one (study, arm, event) row
left after selection (see :func:`prepare`). Its linear predictor, on the logit scale of
the per-patient risk of at least one event over the arm's follow-up, is

    theta[u] = mu + event_effect[event[u]] + X[u] @ beta - msc_effect * control[u]
               + tau * study_offset[study_event[u]]

- ``study_offset`` ~ N(0, 1) is non-centred and has the flat dim ``study_event``: one
  offset per *observed* (study, event) pair, labelled ``"study:event"``. Arms (and
  timepoints) of one study share the offset of each event type; different event types of
  one study get independent offsets.
- ``event_effect = tau_event * event_offset`` (dim ``event``) exists only when more than
  one event type is modelled; ``mu`` is then the logit risk of a typical event type.
- ``beta`` (dim ``covariate``) exists only with covariates, ``msc_effect`` only when a
  control arm is modelled (a control arm's logit is ``msc_effect`` *below* the MSC arms').
  Treatment covariates act on MSC arms only (:mod:`msc_bayes.covariates`).
- In the plain case (one arm per study, one event type, no covariates, no controls) this
  is exactly the binomial-normal random-intercept model ``logit p_i = mu + tau z_i``.

Likelihood, per unit, from what the row reports (exact; reported zeros are data):

- ``patients_with_event`` present: ``y ~ Binomial(n_at_risk, sigmoid(theta))``;
- only an event count ``events``: each patient's events are a Poisson process over the
  follow-up with P(>= 1 event) = sigmoid(theta), i.e. expected events per patient
  ``-log(1 - p) = softplus(theta)``, so ``events ~ Poisson(n_at_risk * softplus(theta))``.
  A row reporting both uses the binomial only (the same patients are not counted twice).

The per-unit log likelihood is the ``loglik`` Deterministic (dim ``arm``); the model gets
``sum(unit_weight * loglik)`` as one ``pm.Potential`` (``unit_weight`` = 1, or 0 for a unit
left out by ``fitting.fit(exclude_studies=...)``). Counts and denominators are ``pm.Data``
containers (``n_at_risk``, ``patients_with_event``, ``event_count``, ``unit_weight``), so a
compiled model can be refitted to new counts of the same shape (nutpie's
``compiled.with_data``) without recompiling.

Parameterisation: the study and event effects are non-centred; ``tau`` and ``tau_event``
with light-tailed priors (half-normal, exponential, gamma, normal truncated at 0) are
sampled on the inverse-softplus scale instead of the log scale (see `_scale_parameter`:
with the bundled, mostly-zero adverse-event data the log scale gave rare divergent
transitions with huge energy errors; the inverse-softplus scale gave none).

Selection (spec ``[options]``), in this order:

1. ``exclude_secondary``: values a row marks as secondary are blanked
   (:meth:`Evidence.without_secondary`); a row left with neither ``patients_with_event``
   nor ``events`` is not reported and is left out with a note.
2. ``events``: the event types to keep ([] = all). A requested event type that the table
   does not contain is an error (most likely a typo), with a "did you mean".
3. ``attribution``: "any" / "related" keep rows with that attribution; "all" keeps every
   row. Should one (study, arm, event, timepoint) have both an "any" and a "related"
   row, the "any" row (the superset) is used, with a note, so patients count once.
4. ``serious_only``: rows with ``serious`` true (MRI rows have no ``serious`` column).
5. ``timepoint`` per (study, arm, event): "last" / "first" of the known
   ``timepoint_months``, or "all" (each its own unit; a sensitivity analysis). A row
   without a timepoint is the single timepoint of its group (if a group mixes rows with
   and without timepoints, the undated rows are left out, with a note).
6. ``exclude_overlapping``: :func:`~msc_bayes.selection.count_once` applied per event
   type, on the arms that have a row of that event type: each patient counts once per
   event type (an outranked cohort still contributes event types that the preferred
   cohort does not report).

Derived quantities (:func:`derive`) are documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from msc_bayes.covariates import Design, design, with_effects
from msc_bayes.errors import EvidenceError, Problem, SpecError, did_you_mean
from msc_bayes.evidence import Evidence
from msc_bayes.likelihood import observe
from msc_bayes.selection import count_once

#: Outcome -> evidence table.
TABLES = {"adverse_events": "adverse_events", "mri_activity": "mri"}
#: Risk thresholds of `p_risk_above` (per-patient risk over follow-up, new study).
RISK_THRESHOLDS = (0.01, 0.05, 0.10)
_LOG_SOFTPLUS_CUT = -30.0  # below this, log(softplus(x)) = x to double precision (error < 1e-13)


@dataclass(frozen=True)
class Prepared:
    """Everything `build` needs, as plain arrays: inspectable and testable without PyMC.

    ``units`` has one row per modelled unit: the table's columns (``n`` = ``n_at_risk``),
    the arm's columns from arms.csv (its ``n`` as ``n_arm``), ``label``
    ("study:arm:event", plus "@<t>mo" when an arm-event keeps several timepoints),
    ``study_event`` ("study:event"), ``likelihood`` ("binomial" | "poisson") and
    ``administrations_total`` (administrations received by the arm's n_at_risk patients:
    ``exposure`` when its unit is administrations, else n_at_risk x arms.csv
    ``administrations``; NaN when unknown).
    """

    units: pd.DataFrame
    design: Design
    notes: tuple[str, ...]
    table: str = "adverse_events"
    events: tuple[str, ...] = field(default=())

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.units["study"]))

    @property
    def study_events(self) -> list[str]:
        return list(dict.fromkeys(self.units["study_event"]))

    @property
    def administrations_reference(self) -> float | None:
        """Administrations per patient of a 'typical' new study: the median over the MSC
        units that report it (None when no MSC unit does)."""
        u = self.units
        per_patient = (u["administrations_total"] / u["n"])[(u["group"].fillna("msc") == "msc").to_numpy()]
        per_patient = per_patient.dropna()
        return float(per_patient.median()) if len(per_patient) else None


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(np.nan, index=df.index, dtype=float)


def _no_rows(file: str, what: str, expected: str) -> EvidenceError:
    return EvidenceError([Problem(file, None, None, what, expected)])


def _table_file(evidence: Evidence, table: str) -> str:
    """The file of `table` as evidence errors name it: its path, or the bare name for tables built in memory."""
    folder = Path(evidence.path)
    return str(folder / f"{table}.csv") if folder.is_dir() else f"{table}.csv"


def prepare(spec, evidence: Evidence) -> Prepared:
    """Select the units of the adverse-event / MRI-activity model (pure; no PyMC)."""
    opts = spec.options
    table = TABLES[spec.outcome]
    file = _table_file(evidence, table)
    notes: list[str] = []
    if opts["exclude_secondary"]:
        evidence = evidence.without_secondary()
    rows = evidence.table(table).reset_index(drop=True)
    if rows.empty:
        raise _no_rows(file, "no rows (a header only, or no file)",
                       f"at least one row of {table}.csv: the {spec.outcome} model has no data without it")

    # 1. rows that report nothing (only possible once secondary values are blanked)
    pwe, cnt = _col(rows, "patients_with_event"), _col(rows, "events")
    silent = pwe.isna().to_numpy() & cnt.isna().to_numpy()
    for r in rows[silent].itertuples(index=False):
        notes.append(f"{r.study}:{r.arm}:{r.event} left out: no count left once secondary values are excluded")
    rows = rows[~silent]

    # 2. event types
    known = list(dict.fromkeys(evidence.table(table)["event"]))
    wanted = list(opts["events"])
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise SpecError([Problem(spec.path or "<spec>", None, "options.events", e,  # the spec asks for it
                                 f"an event type found in {file}: one of {known}" + did_you_mean(e, known))
                         for e in unknown])
    if wanted:
        rows = rows[rows["event"].isin(wanted)]
    filters = ["exclude_secondary=true"] if silent.any() else []
    filters.append(f"events={wanted or 'all'}")

    # 3. attribution
    attribution = opts["attribution"]
    if attribution != "all":
        rows = rows[(_col(rows, "attribution") == attribution).fillna(False).to_numpy(dtype=bool)]
        filters.append(f"attribution={attribution!r}")
    # 4. serious events only
    if opts["serious_only"]:
        rows = rows[_col(rows, "serious").astype("boolean").fillna(False).to_numpy(dtype=bool)]
        filters.append("serious_only=true")
    if rows.empty:
        raise _no_rows(file, "no rows match " + ", ".join(filters),
                       f"at least one row of {table}.csv with a count (patients_with_event or events) matching the "
                       f"spec's options; event types in {table}.csv: {known}")

    # 3b. both "any" and "related" for the same arm, event and time: keep "any"
    t = rows["timepoint_months"]
    key = pd.DataFrame({"study": rows["study"], "arm": rows["arm"], "event": rows["event"],
                        "t": t.fillna(-1.0)}, index=rows.index)
    if "attribution" in rows.columns and attribution == "all":
        dup = key.duplicated(keep=False)
        drop = dup & (rows["attribution"] == "related").fillna(False).to_numpy(dtype=bool)
        for r in rows[drop].itertuples(index=False):
            notes.append(f"{r.study}:{r.arm}:{r.event} 'related' row left out: the 'any' row of the same patients is used")
        rows, key = rows[~drop], key[~drop]

    # 5. timepoints per (study, arm, event)
    if opts["timepoint"] != "all":
        g = rows.groupby([rows["study"], rows["arm"], rows["event"]], sort=False)["timepoint_months"]
        pick = g.transform("max" if opts["timepoint"] == "last" else "min")
        dated = pick.notna()
        undated_in_dated = dated & rows["timepoint_months"].isna()
        for r in rows[undated_in_dated].itertuples(index=False):
            notes.append(f"{r.study}:{r.arm}:{r.event} row without a timepoint left out: the arm has dated rows")
        keep = (~dated) | (rows["timepoint_months"] == pick)
        rows = rows[keep.to_numpy(dtype=bool)]

    # 6. overlapping cohorts, per event type
    arms = evidence.arms
    arm_keys = list(zip(arms["study"], arms["arm"]))
    keep = np.zeros(len(rows), dtype=bool)
    row_keys = list(zip(rows["study"], rows["arm"]))
    for event in dict.fromkeys(rows["event"]):
        of_event = (rows["event"] == event).to_numpy()
        with_rows = {k for k, e in zip(row_keys, of_event) if e}
        has = pd.Series([k in with_rows for k in arm_keys], index=arms.index)
        if opts["exclude_overlapping"]:
            used, event_notes = count_once(arms, has)
            notes += [f"{n} (event {event})" for n in event_notes]
        else:
            used = arms[has.to_numpy()]
        used_keys = set(zip(used["study"], used["arm"]))
        keep |= of_event & np.array([k in used_keys for k in row_keys], dtype=bool)
    rows = rows[keep]

    # arm characteristics
    arm_cols = [c for c in arms.columns if c in ("study", "arm") or (c not in rows.columns and c != "label")]
    units = rows.merge(arms[arm_cols].rename(columns={"n": "n_arm"}), on=["study", "arm"], how="left")
    units["n"] = units["n_at_risk"].astype(float)
    if "events" not in units.columns:  # mri.csv has no event counts
        units["events"] = pd.Series(np.nan, index=units.index, dtype=float)
    order = {k: i for i, k in enumerate(arm_keys)}
    event_order = {e: i for i, e in enumerate(dict.fromkeys(units["event"]))}
    units = units.assign(_o=[order[k] for k in zip(units["study"], units["arm"])],
                         _e=[event_order[e] for e in units["event"]])
    units = units.sort_values(["_o", "_e", "timepoint_months"], kind="stable").drop(columns=["_o", "_e"])
    units = units.reset_index(drop=True)
    many = units.duplicated(["study", "arm", "event"], keep=False)
    units["label"] = [f"{s}:{a}:{e}" + (f"@{t:.3g}mo" if m else "") for s, a, e, t, m in
                      zip(units["study"], units["arm"], units["event"], units["timepoint_months"], many)]
    units["study_event"] = [f"{s}:{e}" for s, e in zip(units["study"], units["event"])]
    units["likelihood"] = np.where(units["patients_with_event"].notna(), "binomial", "poisson")
    exposure = pd.to_numeric(_col(units, "exposure"), errors="coerce").astype(float)
    by_admin = (_col(units, "exposure_unit") == "administrations").fillna(False).to_numpy(dtype=bool)
    per_arm = units["n"] * pd.to_numeric(units["administrations"], errors="coerce").astype(float)
    units["administrations_total"] = np.where(by_admin, exposure, per_arm)

    d = design(units, spec, units["label"])
    units = units[d.kept].reset_index(drop=True)
    if units.empty:
        raise _no_rows(file, "no usable rows",
                       "at least one row whose arm has every covariate of the spec: " + (", ".join(spec.covariates)))
    for r in units[units["patients_with_event"].notna() & _col(units, "events").notna()].itertuples(index=False):
        notes.append(f"{r.label}: patients_with_event used; its event count ({r.events}) is not counted again")
    msc = (units["group"].fillna("msc") == "msc").to_numpy()
    unknown_admin = list(units["label"][msc & units["administrations_total"].isna().to_numpy()])
    if not (msc & units["administrations_total"].notna().to_numpy()).any():
        notes.append("rate_per_administration omitted: no MSC arm modelled reports its administrations")
    elif unknown_admin:
        notes.append("rate_per_administration not available for " + ", ".join(unknown_admin)
                     + " (administrations not reported)")
    events = tuple(dict.fromkeys(units["event"]))
    return Prepared(units, d, tuple(notes) + d.notes, table, events)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _log_softplus(x):
    """log(softplus(x)), finite for every x (softplus(x) = exp(x) to double precision far left)."""
    import pytensor.tensor as pt

    safe = pt.maximum(x, _LOG_SOFTPLUS_CUT)
    return pt.switch(x < _LOG_SOFTPLUS_CUT, x, pt.log(pt.softplus(safe)))


def binomial_logit_logp(y, n, eta):
    """log Binomial(y | n, sigmoid(eta)), written with softplus so it is stable for any eta."""
    import pytensor.tensor as pt

    coef = pt.gammaln(n + 1) - pt.gammaln(y + 1) - pt.gammaln(n - y + 1)
    return coef - y * pt.softplus(-eta) - (n - y) * pt.softplus(eta)


def poisson_softplus_logp(k, n, eta):
    """log Poisson(k | n * softplus(eta)): n patients with P(>= 1 event) = sigmoid(eta) each."""
    import pytensor.tensor as pt

    log_rate = pt.log(n) + _log_softplus(eta)
    return k * log_rate - pt.exp(log_rate) - pt.gammaln(k + 1)


def build(spec, evidence: Evidence):
    """The PyMC model for `spec` on `evidence`; never samples. Returns (model, prepared)."""
    import pymc as pm
    import pytensor.tensor as pt

    prep = prepare(spec, evidence)
    units, d = prep.units, prep.design
    se_labels = prep.study_events
    se_idx = np.array([se_labels.index(s) for s in units["study_event"]])
    events = list(prep.events)
    ev_idx = np.array([events.index(e) for e in units["event"]])
    control = (units["group"].fillna("msc") == "control").to_numpy(dtype=float)
    coords = {"study_event": se_labels, "arm": list(units["label"])}
    if len(events) > 1:
        coords["event"] = events
    if d.columns:
        coords["covariate"] = list(d.columns)
    binom = (units["likelihood"] == "binomial").to_numpy()

    with pm.Model(coords=coords) as model:
        n = pm.Data("n_at_risk", units["n"].to_numpy(dtype=float), dims="arm")
        y = pm.Data("patients_with_event", units["patients_with_event"].fillna(0).to_numpy(dtype=float), dims="arm")
        k = pm.Data("event_count", _col(units, "events").fillna(0).to_numpy(dtype=float), dims="arm")
        mu = spec.priors["mu"].create("mu")
        tau = _scale_parameter(spec, "tau")
        offset = pm.Normal("study_offset", 0.0, 1.0, dims="study_event")
        eta = mu + tau * offset[se_idx]
        if len(events) > 1:
            tau_event = _scale_parameter(spec, "tau_event")
            event_offset = pm.Normal("event_offset", 0.0, 1.0, dims="event")
            event_effect = pm.Deterministic("event_effect", tau_event * event_offset, dims="event")
            eta = eta + event_effect[ev_idx]
        theta = pm.Deterministic("theta", with_effects(eta, spec, d, control), dims="arm")

        if binom.all():
            ll = binomial_logit_logp(y, n, theta)
        elif not binom.any():
            ll = poisson_softplus_logp(k, n, theta)
        else:
            ll = pt.switch(binom, binomial_logit_logp(y, n, theta), poisson_softplus_logp(k, n, theta))
        observe(ll)
    return model, prep


#: Scale priors whose density falls at least like a normal's: sampled through the
#: inverse-softplus transform rather than the log (see `_scale_parameter`).
_LIGHT_TAILED = frozenset({"HalfNormal", "Exponential", "Gamma", "TruncatedNormal"})


def _scale_parameter(spec, name: str):
    """Create the scale parameter `name` (tau, tau_event) with the spec's prior.

    A light-tailed prior on [0, inf) is sampled on u = log(exp(s) - 1) instead of log(s).
    On the log scale a half-normal prior's log density is -exp(2 log s)/2, an ever stiffer
    wall that leapfrog steps sized for the bulk overshoot when a trajectory runs up it
    (mostly-zero event data leave the downward direction of the effects flat, so
    trajectories do): rare divergences with huge energy errors. Under softplus the scale is
    ~exp(u) near 0 (like the log, right for the funnel) but ~u above 1, so the prior's upper
    wall is Gaussian in u. The posterior is unchanged; only the sampler's coordinates move.
    Heavy-tailed priors (half-Cauchy, half-t, log-normal, inverse-gamma) and bounded ones
    keep PyMC's default transform.
    """
    from pymc.distributions.transforms import log_exp_m1

    prior = spec.priors[name]
    light = prior.dist in _LIGHT_TAILED and prior.support == (0.0, np.inf)
    return prior.create(name, transform=log_exp_m1 if light else None)


# --------------------------------------------------------------------------------------
# Derived quantities
# --------------------------------------------------------------------------------------


def _sigmoid(x):
    return special.expit(x)


def _softplus(x):
    return np.logaddexp(0.0, x)


def derive(posterior: xr.Dataset, prepared: Prepared, spec) -> xr.Dataset:
    """Quantities computed from the draws (dims chain, draw, ...).

    A *new study* is an MSC arm of a study not in the data, at reference covariates (the
    design's zero: the reference level of a categorical covariate, the centre of a centred
    numeric one), with a study effect ``tau * z_new``; ``z_new`` ~ N(0, 1) is drawn per draw
    from ``numpy.random.default_rng(spec.sampler.seed)`` (then ``predicted_count`` from
    the same generator), so results are reproducible. With several event types the new
    study's event type is a typical one (event effect 0) unless a variable has dim event.

    - ``risk_pooled``: sigmoid(mu), the pooled per-patient risk (reference covariates);
    - ``risk_new``: sigmoid(mu + tau z_new), the risk in a new study;
    - ``risk_new_event`` (dim event; several event types): the same, per event type;
    - ``risk_new_control`` (with control arms): a new study's control arm;
    - ``risk_by_route`` (dim route; when route is a covariate): a new study's MSC arm
      given each route level; ``route_contrast`` (dim contrast, e.g. "IT vs IV"): each
      non-reference level minus the reference on the log-odds scale (= its beta);
    - ``rate_per_administration_new``: expected events per administration in a new study,
      softplus(eta_new) / A, A = median administrations per patient over the MSC units
      that report it (attribute ``administrations_per_patient``); omitted if none does;
    - ``rate_per_administration`` (dim arm_admin): per unit, n softplus(theta) / the
      administrations its patients received (units where that is known);
    - ``p_risk_above`` (dim threshold): indicator risk_new > threshold per draw, so its
      posterior mean is P(risk_new > threshold);
    - ``risk_arm`` (dim arm): sigmoid(theta), the shrunken per-unit risks;
    - ``predicted_count`` (dim arm): posterior predictive replicate of each unit's reported
      count: Binomial(n_at_risk, sigmoid(theta)) patients with an event (binomial units) or
      Poisson(n_at_risk softplus(theta)) events (units reporting only an event count).
    """
    rng = np.random.default_rng(spec.sampler.seed)
    mu = posterior["mu"]
    tau = posterior["tau"]
    sample = mu.dims
    shape = mu.shape
    z_new = xr.DataArray(rng.standard_normal(shape), dims=sample, coords=mu.coords)
    eta_new = mu + tau * z_new
    units, d = prepared.units, prepared.design
    out = {
        "risk_pooled": _sigmoid(mu),
        "risk_new": _sigmoid(eta_new),
    }
    if "event_effect" in posterior:
        out["risk_new_event"] = _sigmoid(eta_new + posterior["event_effect"])
    if "msc_effect" in posterior:
        out["risk_new_control"] = _sigmoid(eta_new - posterior["msc_effect"])
    route = next((t for t in d.terms if t.name == "route"), None)
    if route is not None and route.levels:
        beta = posterior["beta"]
        cols = list(route.columns)
        eff = [xr.zeros_like(mu)] + [beta.sel(covariate=c, drop=True) for c in cols]
        by_route = xr.concat([_sigmoid(eta_new + e) for e in eff], dim="route")
        out["risk_by_route"] = by_route.assign_coords(route=list(route.levels)).transpose(*sample, "route")
        if cols:
            contrast = xr.concat([beta.sel(covariate=c, drop=True) for c in cols], dim="contrast")
            labels = [f"{lv} vs {route.levels[0]}" for lv in route.levels[1:]]
            out["route_contrast"] = contrast.assign_coords(contrast=labels).transpose(*sample, "contrast")
    a_ref = prepared.administrations_reference
    theta = posterior["theta"]
    if a_ref is not None:
        out["rate_per_administration_new"] = _softplus(eta_new) / a_ref
        known = units["administrations_total"].notna().to_numpy()
        if known.any():
            labels = list(units["label"][known])
            total = xr.DataArray(units["administrations_total"].to_numpy(dtype=float)[known], dims="arm_admin",
                                 coords={"arm_admin": labels})
            n_known = xr.DataArray(units["n"].to_numpy(dtype=float)[known], dims="arm_admin",
                                   coords={"arm_admin": labels})
            th = theta.sel(arm=labels).rename(arm="arm_admin")
            out["rate_per_administration"] = (n_known * _softplus(th) / total).transpose(*sample, "arm_admin")
    thresholds = xr.DataArray(list(RISK_THRESHOLDS), dims="threshold", coords={"threshold": list(RISK_THRESHOLDS)})
    out["p_risk_above"] = (out["risk_new"] > thresholds).astype(float).transpose(*sample, "threshold")
    risk_arm = _sigmoid(theta)
    out["risk_arm"] = risk_arm
    n = units["n"].to_numpy(dtype=int)
    binom = (units["likelihood"] == "binomial").to_numpy()
    p = risk_arm.transpose(*sample, "arm").values
    counts = np.empty(p.shape, dtype=np.int64)
    counts[..., binom] = rng.binomial(n[binom], p[..., binom])
    if (~binom).any():
        lam = n[~binom] * _softplus(theta.transpose(*sample, "arm").values[..., ~binom])
        counts[..., ~binom] = rng.poisson(lam)
    out["predicted_count"] = xr.DataArray(counts, dims=(*sample, "arm"), coords=risk_arm.coords)
    ds = xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims and c not in sample], errors="ignore")
                     if isinstance(v, xr.DataArray) else v for k, v in out.items()})
    ds["p_risk_above"].attrs["meaning"] = "per-draw indicator risk_new > threshold; its mean is the probability"
    ds["predicted_count"].attrs["meaning"] = "replicate of each unit's reported count (see unit likelihood)"
    if a_ref is not None:
        ds["rate_per_administration_new"].attrs["administrations_per_patient"] = a_ref
    ds.attrs["new_study"] = "MSC arm at reference covariates; z_new ~ N(0,1) seeded by spec.sampler.seed"
    return ds
