"""Tables as the report shows them: {"columns": [...], "rows": [[text, ...], ...]} of formatted cells."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from msc_bayes import outcomes
from msc_bayes.diagnostics import Convergence
from msc_bayes.report.numbers import fmt, num, prob
from msc_bayes.results import group, interval_columns, interval_text, is_plumbing


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


def _is_indicator(quantity: str) -> bool:
    return quantity.startswith("p_")


def key_estimates(summary: pd.DataFrame, fit) -> dict:
    """Summary rows of hyperparameters and new-study quantities (not per arm)."""
    lo_name, hi_name = interval_columns()
    keep = key_variables(fit)
    rows = []
    for r in summary[[q.split("[", 1)[0] in keep for q in summary["quantity"]]].to_dict("records"):
        diag = [fmt(r["r_hat"], 3), fmt(r["ess_bulk"], 0), fmt(r["ess_tail"], 0)]
        if _is_indicator(r["quantity"]):  # a per-draw indicator: its mean is the probability
            rows.append([r["quantity"], f"P = {prob(r['mean'])}", "", "", *diag])
        else:
            rows.append([r["quantity"], num(r["median"]), num(r[lo_name]), num(r[hi_name]), *diag])
    columns = ["quantity", "median", f"{interval_text()} lower", f"{interval_text()} upper", "R-hat", "bulk ESS",
               "tail ESS"]
    return {"columns": columns, "rows": rows}


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


def evidence_table(desc: pd.DataFrame, runs) -> dict:
    """describe()'s table with the models (ModelRun) that use each arm."""
    used = []
    for r in desc.itertuples(index=False):
        used.append(", ".join(run.key for run in runs
                              if ((run.fit.prepared.units["study"] == r.study)
                                  & (run.fit.prepared.units["arm"] == r.arm)).any()))
    view = desc.assign(used_in=used)
    view = view[["study", "arm", "group", "disease", "n", "route", "courses", "followup_months", "edss",
                 "adverse_events", "mri", "overlap", "grade", "used_in"]]
    fmt_months = lambda v: "NR" if v is None or pd.isna(v) else f"{v:g}"
    return _table(view.rename(columns={"followup_months": "follow-up (months)", "used_in": "used in"}),
                  {"follow-up (months)": fmt_months})


def sensitivity_view(table: pd.DataFrame) -> dict:
    lower, upper = interval_columns()
    rows = [[r["family"], r["scenario"], r["label"], num(r["median"]), num(r[lower]), num(r[upper]),
             "" if r["scenario"] == "base" else num(r["shift"]), r["method"], r["notes"]]
            for r in table.to_dict("records")]
    return {"columns": ["family", "scenario", "quantity", "median", f"{interval_text()} lower",
                        f"{interval_text()} upper", "shift from base (median)", "method", "notes"], "rows": rows}


def psense_view(psense: pd.DataFrame) -> dict:
    rows = [[r["quantity"], num(r["prior_sensitivity"]), num(r["likelihood_sensitivity"]), r["diagnosis"]]
            for r in psense.to_dict("records")]
    return {"columns": ["quantity", "prior sensitivity", "likelihood sensitivity", "diagnosis"], "rows": rows}
