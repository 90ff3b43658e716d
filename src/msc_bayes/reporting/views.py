"""Tables as the report shows them: {"columns": [...], "rows": [[text, ...], ...]} of formatted cells.

Also the summary of findings as its section lays it out (`summary_view`) and the order of outcomes on the page
(`msc_bayes.outcomes.order`: EDSS first).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from msc_bayes import outcomes
from msc_bayes.diagnostics import Convergence
from msc_bayes.numbers import (
    fmt,
    interval,
    num,
    p_equals,
    plural,
    prob,
    stated,
)
from msc_bayes.reporting.methods import own_prior_note
from msc_bayes.results import cells, group, interval_columns, interval_text, is_plumbing


def _table(df: pd.DataFrame, formats: dict[str, Callable]) -> dict:
    rows = [[formats.get(c, str)(v) for c, v in zip(df.columns, r)] for r in df.itertuples(index=False)]
    return {"columns": list(df.columns), "rows": rows}


def key_variables(fit) -> set[str]:
    """Posterior/derived variables with at most one extra dim, none of them per unit (the outcome's unit dims)."""
    unit_dims = set(outcomes.get(fit.spec.outcome).unit_dims)
    out = set()
    for name_of_group in ("posterior", "derived"):
        ds = group(fit, name_of_group)
        if ds is None:
            continue
        for name, da in ds.data_vars.items():
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            if len(extra) <= 1 and not set(extra) & unit_dims and not is_plumbing(name):
                out.add(name)
    return out


def _split(quantity: str) -> tuple[str, str]:
    """("beta", "route[IT]") of "beta[route[IT]]"; (name, "") of a scalar."""
    if "[" not in quantity:
        return quantity, ""
    name, cell = quantity.split("[", 1)
    return name, cell[:-1]


def _is_indicator(quantity: str) -> bool:
    return quantity.startswith("p_")


def variable_label(outcome, quantity: str) -> str:
    """A table's label of a summary cell from the outcome's ``variable_labels`` ("{cell}" in a label is the
    cell's coordinate, else ": cell" is added); the cell's own name when the outcome labels none."""
    name, cell = _split(quantity)
    label = outcome.variable_labels.get(name)
    if label is None:
        return quantity
    if "{cell}" in label:
        return label.replace("{cell}", cell)
    return f"{label}: {cell}" if cell else label


def indicator_text(outcome, quantity: str, p: float) -> str:
    """A per-draw indicator's mean as the probability it is, in the words of the statement that declares it:
    "P(new-study change < −0.5) = 0.12"."""
    name, cell = _split(quantity)
    statement = next((s for s in outcome.statements if s.probabilities == name and s.probability_text), None)
    if statement is not None and cell:
        try:
            c = float(cell)
        except ValueError:
            c = None
        if c is not None:
            return stated(statement.probability_words(c), p)
    return f"{variable_label(outcome, quantity)}: {p_equals(p)}"


def _distinct(records: list[dict], fit, keep_first: set[str]) -> list[dict]:
    """The records without repeats: cells whose draws are identical (``beta[route[IT]]`` and
    ``route_contrast[IT vs IV]`` are the same draws) are shown once, as the headline quantity when one of
    them is (`keep_first`), else as the later (derived) name. Constant cells are never merged."""
    draws: dict[str, np.ndarray] = {}
    for name in {_split(r["quantity"])[0] for r in records}:
        draws.update(cells(fit, name))
    seen: dict[bytes, list[int]] = {}
    for i, r in enumerate(records):
        x = draws.get(r["quantity"])
        if x is None or _is_indicator(r["quantity"]) or np.ptp(x) == 0:
            continue
        seen.setdefault(np.ascontiguousarray(x, dtype=float).tobytes(), []).append(i)
    drop = set()
    for same in seen.values():
        if len(same) > 1:
            keep = next((i for i in same if records[i]["quantity"] in keep_first), same[-1])
            drop |= set(same) - {keep}
    return [r for i, r in enumerate(records) if i not in drop]


def key_estimates(summary: pd.DataFrame, fit) -> dict:
    """Summary rows of hyperparameters and new-study quantities (not per arm), labelled, each once; the
    per-draw indicators as ``probabilities`` ("P(new-study change < −0.5) = 0.12")."""
    outcome = outcomes.get(fit.spec.outcome)
    lo_name, hi_name = interval_columns()
    keep = key_variables(fit)
    records = [r for r in summary.reset_index().to_dict("records") if _split(r["quantity"])[0] in keep]
    records = _distinct(records, fit, {q.name for q in outcome.headline})
    rows, probabilities = [], []
    for r in records:
        q = r["quantity"]
        if _is_indicator(q):  # a per-draw indicator: its mean is the probability
            probabilities.append(indicator_text(outcome, q, r["mean"]))
            continue
        kind = outcome.variable_formats.get(_split(q)[0], "num")
        rows.append([variable_label(outcome, q) + own_prior_note(fit, q),  # a coefficient's own prior, if any
                     interval(r["median"], r[lo_name], r[hi_name], kind),
                     fmt(r["r_hat"], 2), fmt(r["ess_bulk"], 0), fmt(r["ess_tail"], 0), q])
    columns = ["quantity", f"median ({interval_text()})", "R-hat", "bulk ESS", "tail ESS", "variable"]
    return {"columns": columns, "rows": rows, "probabilities": probabilities}


def estimates_view(est: pd.DataFrame) -> dict:
    lo_name, hi_name = interval_columns()
    rows = []
    for r in est.to_dict("records"):
        observed = ""
        if np.isfinite(r["observed"]):
            observed = num(r["observed"])
            if np.isfinite(r["observed_lower"]):
                observed += f" ({num(r['observed_lower'])} to {num(r['observed_upper'])})"
        rows.append([r["label"], r["group"], f"{r['n']:g}", r["used"], observed, r["observed_from"],
                     (f"{num(r['shrunken_median'])} ({num(r[f'shrunken_{lo_name}'])} to "
                      f"{num(r[f'shrunken_{hi_name}'])})")])
    name = est["shrunken_quantity"].iloc[0] if len(est) else "theta"
    return {"columns": ["arm", "group", "n", "used", "observed (interval)", "observed from",
                        f"{name}: median ({interval_text()})"], "rows": rows}


def diagnostics_view(conv: Convergence) -> list[tuple[str, str]]:
    d = conv.to_dict()
    g = lambda x, digits: "NA" if x is None else fmt(x, digits)
    return [
        ("post-warm-up draws", str(conv.draws)),
        ("divergent transitions", str(conv.divergences)),
        ("maximum tree depth hits", str(conv.treedepth_hits)),
        ("E-BFMI per chain", ", ".join(fmt(e, 2) for e in conv.ebfmi) or "NA"),
        ("largest R-hat", g(d["max_r_hat"], 3)),
        ("smallest bulk ESS", g(d["min_ess_bulk"], 0)),
        ("smallest tail ESS", g(d["min_ess_tail"], 0)),
        ("quantities checked", str(int((~conv.table["constant"]).sum()))
         + (f" (+{int(conv.table['constant'].sum())} constant, not checked)" if conv.table["constant"].any() else "")),
    ]


def evidence_table(desc: pd.DataFrame, runs, *, notes: dict[tuple[str, str], str] | None = None,
                   left_out=None) -> dict:
    """describe()'s table with each arm's note (arms.csv) and what it contributes: the models (ModelRun)
    that use it, and for an outcome that leaves it out the reason (`left_out`: the summary's
    `LeftOut` rows; None without a summary, shown as "—" for an arm no model uses)."""
    notes = notes or {}
    contributes = []
    for r in desc.itertuples(index=False):
        used = [run.key for run in runs if ((run.fit.prepared.units["study"] == r.study)
                                            & (run.fit.prepared.units["arm"] == r.arm)).any()]
        why = [f"not in {lo.outcome}: {lo.reason}" for lo in (left_out or ())
               if lo.study == r.study and lo.arm == r.arm]
        text = "; ".join([("used in " + ", ".join(used)) if used else "", *why])
        contributes.append(text or ("—" if left_out is None else "nothing (no reason given)"))
    view = desc.assign(contributes=contributes, notes=[notes.get((r.study, r.arm), "") for r in
                                                       desc.itertuples(index=False)])
    columns = ["study", "arm", "group", "disease", "n", "route", "courses", "followup_months", "edss",
               "adverse_events", "mri", "effect_sizes", "overlap", "crossover", "grade", "notes", "contributes"]
    shown = lambda c: c in view.columns and (c != "effect_sizes" or (view[c] != "").any())
    view = view[[c for c in columns if shown(c)]]
    fmt_months = lambda v: "NR" if v is None or pd.isna(v) else f"{v:g}"
    fmt_count = lambda v: "NR" if v is None or pd.isna(v) else f"{int(v)}"  # not reported: NR, never nan
    fmt_text = lambda v: "NR" if v is None or pd.isna(v) else str(v)
    return _table(view.rename(columns={"followup_months": "follow-up (months)", "adverse_events": "adverse events",
                                       "mri": "MRI", "effect_sizes": "effect sizes"}),
                  {"follow-up (months)": fmt_months, "n": fmt_count, "group": fmt_text, "disease": fmt_text})


# --------------------------------------------------------------------------------------
# The summary of findings
# --------------------------------------------------------------------------------------

#: The summary table's columns (Markdown; the HTML lays the same cells out with their small print)
SUMMARY_COLUMNS = ("quantity", f"estimate ({interval_text()})", "P(benefit)", "P(clinically important)",
                   "Bayes factor", "heterogeneity", "rests on", "certainty")


def _on_scale(x, scale: str) -> str:
    """An Interval (median, lower, upper) on a Finding's scale: points, a risk in %, a log odds ratio with its OR."""
    if scale == "log_odds_ratio":
        q = np.exp([x.median, x.lower, x.upper])
        return (f"OR {fmt(q[0])} ({fmt(q[1])} to {fmt(q[2])}); log OR "
                f"{interval(x.median, x.lower, x.upper, 'num')}")
    return interval(x.median, x.lower, x.upper, scale if scale in ("risk", "rate") else "num")


def _heterogeneity(f) -> list[str]:
    parts = []
    if f.tau is not None:
        parts.append(f"τ {interval(f.tau.median, f.tau.lower, f.tau.upper)}")
    if f.i2 is not None:
        pct = lambda v: f"{100 * v:.0f}%"
        parts.append(f"I² {pct(f.i2.median)} ({pct(f.i2.lower)} to {pct(f.i2.upper)})")
    if f.prediction is not None:
        parts.append(f"new study {_on_scale(f.prediction, f.scale)}")
    return parts


def _certainty(c) -> tuple[str, list[dict], list[str]]:
    """(grade, downgrades, considered): each downgrade's short form ("imprecision −2") and its reason in words;
    where the grade started and the domains considered without a downgrade."""
    if c is None:
        return "not graded", [], []
    down = [{"short": f"{d.domain} −{d.levels}", "text": f"{d.domain} (−{d.levels}): {d.reason}"}
            for d in c.downgrades if d.levels]
    considered = [f"starts {c.start}: {c.start_reason}"] + [f"{d.domain} (not downgraded): {d.reason}"
                                                            for d in c.downgrades if not d.levels]
    return c.grade, down, considered


def _probability(p: float | None, words: str) -> str:
    return "—" if p is None else f"{prob(p)}" + (f" ({words})" if words else "")


def finding_view(f) -> dict:
    """One Finding as the summary's row: every cell as text, the small print apart, the grade and its reasons."""
    grade, downgrades, considered = _certainty(f.certainty)
    # what it rests on: the counts and the dominance in view, the designs and overlaps as small print
    counts, _, designs = f.rests_on.partition("; ")
    more = [designs] if designs else []
    if f.contraction is not None:
        more.append(f"prior-to-posterior contraction {f.contraction:.2f}")
    rests = [counts] + ([f.dominance] if f.dominance else [])
    row = {
        "label": f.label, "unit": f.unit, "variable": f.quantity, "mostly_prior": f.mostly_prior,
        "estimate": _on_scale(f.estimate, f.scale), "direction": f.direction,
        "p_benefit": _probability(f.p_benefit, f.benefit_text),
        "p_important": _probability(f.p_important, f.important_text),
        "bayes_factor": f.bayes_factor_text or ("—" if f.bayes_factor is None else f"BF10 = {f.bayes_factor:.3g}"),
        "heterogeneity": _heterogeneity(f) or ["—"], "rests_on": rests, "rests_more": more, "grade": grade,
        "downgrades": downgrades, "considered": considered,
    }
    prior = " (mostly prior: not a finding)" if f.mostly_prior else ""
    row["cells"] = [f"{f.label} ({f.unit}){prior}", f"{row['estimate']}: {f.direction}" if f.direction
                    else row["estimate"], row["p_benefit"], row["p_important"], row["bayes_factor"],
                    "; ".join(row["heterogeneity"]), "; ".join(rests + more),
                    "; ".join([grade, *(d["short"] for d in downgrades)])]
    return row


def summary_view(summary, labels: dict[str, str] | None = None) -> dict | None:
    """The summary of findings (a `msc_bayes.findings.base.SummaryOfFindings`, or None) as its section shows it:
    one table per outcome (EDSS first, `msc_bayes.outcomes.order`), the plain-language paragraph, the arms left out with
    their reasons, the notes and the certainty rules."""
    if summary is None:
        return None
    outcomes_seen: list[str] = []
    for f in summary.findings:
        if f.outcome not in outcomes_seen:
            outcomes_seen.append(f.outcome)
    tables = []
    outcome_labels = {f.outcome: f.outcome_label for f in summary.findings}
    for outcome in sorted(outcomes_seen, key=outcomes.order):
        findings = [finding_view(f) for f in summary.findings if f.outcome == outcome]
        label = next(f.outcome_label for f in summary.findings if f.outcome == outcome)
        tables.append({"outcome": outcome, "label": label, "findings": findings,
                       "table": {"columns": list(SUMMARY_COLUMNS), "rows": [r["cells"] for r in findings]}})
    return {
        "tables": tables, "text": summary.text, "rules": summary.rules, "notes": list(summary.notes),
        "left_out": left_out_lines(summary.left_out, labels or {}, outcome_labels),
    }


def left_out_lines(left_out, labels: dict[str, str], outcome_labels: dict[str, str]) -> list[str]:
    """One line per study whose arms contribute nothing to some outcome, largest studies first (by the sum of its
    arms' n): its arms with their n, then per outcome the reason, e.g. "Uccelli 2021 (msc_first n = 69,
    placebo_first n = 75): EDSS change: no EDSS numbers in the sources read; ..."."""
    studies: dict[str, dict] = {}
    for lo in sorted(left_out, key=lambda lo: (outcomes.order(lo.outcome), lo.arm)):
        s = studies.setdefault(lo.study, {"arms": {}, "why": {}})
        s["arms"][lo.arm] = lo.n
        s["why"].setdefault((lo.outcome, lo.reason), []).append(lo.arm)
    lines = []
    for study, s in sorted(studies.items(), key=lambda kv: (-sum(n or 0 for n in kv[1]["arms"].values()), kv[0])):
        arms = ", ".join(f"{arm} n = {n}" if n else arm for arm, n in s["arms"].items())
        head = f"{labels.get(study, study)} ({arms})"  # each arm's own n: arms of one study may share patients
        why = [f"{outcome_labels.get(o, o)}" + ("" if len(arms) == len(s["arms"]) else f" ({', '.join(arms)})")
               + f": {reason}" for (o, reason), arms in s["why"].items()]
        lines.append(f"{head}: " + "; ".join(why))
    return lines


def _sensitivity_notes(r: dict) -> str:
    """A sensitivity row's notes, with its refit's divergent transitions when it had any (not to be trusted)."""
    n = int(r.get("divergences") or 0)
    marked = f"refit had {plural(n, 'divergent transition')}: not reliable" if n else ""
    return "; ".join(t for t in (marked, r["notes"]) if t)


def sensitivity_view(table: pd.DataFrame) -> dict:
    lower, upper = interval_columns()
    def pareto_k(r: dict) -> str:  # of a reweighted row, or of one refitted because k was too high
        k = r.get("pareto_k")
        return "" if k is None or pd.isna(k) else f"{k:.2f}"

    rows = [[r["family"], r["scenario"], r["label"], num(r["median"]), num(r[lower]), num(r[upper]),
             "" if r["scenario"] == "base" else num(r["shift"]), r["method"], pareto_k(r), _sensitivity_notes(r)]
            for r in table.to_dict("records")]
    return {"columns": ["family", "scenario", "quantity", "median", f"{interval_text()} lower",
                        f"{interval_text()} upper", "shift from base (median)", "method", "Pareto k", "notes"],
            "rows": rows}


def psense_view(psense: pd.DataFrame) -> dict:
    rows = [[r["quantity"], num(r["prior_sensitivity"]), num(r["likelihood_sensitivity"]), r["diagnosis"]]
            for r in psense.to_dict("records")]
    return {"columns": ["quantity", "prior sensitivity", "likelihood sensitivity", "diagnosis"], "rows": rows}
