#!/usr/bin/env python
"""EDSS divergences by parameterisation, target acceptance and tuning (a benchmark, not a test).

    python benchmarks/geometry.py [--forms default,locations,guide] [--target-accept 0.9,0.95]
                                  [--seeds 20] [--tune 1000] [--out benchmarks/results/geometry.json]

For each form and target acceptance: models/edss_change.toml on data/, compiled once with stock
nutpie (numba, fastmath off as msc_bayes compiles; not msc_bayes's size-free code, whose gradient
costs more), then 4 chains x 1,000 draws after --tune tuning steps on 2 cores for seeds 1000, 1001, ...
Recorded per seed: divergences, leapfrog steps per draw, gradients in all (tuning included), wall
time, and the convergence gate's numbers (:func:`mixing`).

Forms (each the same posterior, an exact change of variables):
  default    msc_bayes.outcomes.edss.model.build(...): study effects standardised, locations free
  locations  build(..., locations=True): mu, beta and msc_effect standardised too
  guide      locations, plus the counts guide below (measured in #17's third round; not in the package)

The counts guide enters the standardisation of the locations and study effects only, never a
likelihood, so the posterior is unchanged: each counts arm with a modelled SD of change counts as a
normal y ~ N(theta, se) whose y and se scale with that SD. For each cut whose share q of patients
the counts fix (smoothed, q = (k + 1/2) / (n + 1)), theta sits near cut - sigma * Phi^-1(q), with a
binomial's information n phi(Phi^-1(q))^2 / (q (1 - q)) / sigma^2 (shared out between two cuts).
As an arm's SD shrinks, its mean is pinned to a cut: the guide makes the study effect's coordinate
scale with that SD.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def counts_guide(ctx) -> list:
    """(units, y, se) of the counts guide (module docstring) for the counts arms of `ctx`."""
    from scipy import stats

    from msc_bayes.outcomes.edss.formats.base import HALF_STEP
    from msc_bayes.outcomes.edss.formats.counts import count_groups

    out = []
    for i in np.flatnonzero(ctx.units["formats"].map(lambda f: "counts" in f).to_numpy() & ctx.has_sigma):
        r = ctx.units.iloc[i]
        n = int(r.n)
        _, groups = count_groups(n, r)
        t = r.threshold if pd.notna(r.threshold) else ctx.spec.options["default_threshold"]
        splits = []
        if "improved" in groups and ("stable" in groups or "stable_or_worsened" in groups):
            splits.append((-t + HALF_STEP, groups["improved"]))
        if "worsened" in groups and ("stable" in groups or "stable_or_improved" in groups):
            splits.append((t - HALF_STEP, n - groups["worsened"]))
        for cut, k in splits:
            q = (k + 0.5) / (n + 1)
            a = stats.norm.ppf(q)
            info = n * stats.norm.pdf(a) ** 2 / (q * (1 - q)) / len(splits)
            s = ctx.sigma[i]
            out.append((np.array([i]), (cut - s * a)[None], (s / np.sqrt(info))[None]))
    return out


def with_guide():
    """Make `build(..., locations=True)` standardise with the counts guide (wraps three names of the
    model module: its BuildContext records its guide, made once, and both standardisations see it)."""
    from msc_bayes.outcomes.edss import model as em

    seen = []  # the latest build's context

    class Recording(em.BuildContext):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.guide = None
            seen.append(self)

    def guide() -> list:
        ctx = seen[-1]
        if ctx.guide is None:
            ctx.guide = counts_guide(ctx)
        return ctx.guide

    offset, locations = em.standardised_study_offset, em.standardised_locations
    em.BuildContext = Recording
    em.standardised_study_offset = lambda z, tau, fixed, normal, idx: offset(
        z, tau, fixed, [*normal, *guide()], idx)
    em.standardised_locations = lambda spec, columns, control, A, tau, normal, idx: locations(
        spec, columns, control, A, tau, [*normal, *guide()], idx)


def mixing(tree) -> dict:
    """The convergence gate's verdict on a fit (:func:`msc_bayes.diagnostics.convergence`, on the posterior:
    no derived group is made here), its worst R-hat and bulk / tail ESS, and mu's and tau's bulk ESS."""
    from types import SimpleNamespace

    from msc_bayes import diagnostics

    verdict = diagnostics.convergence(SimpleNamespace(tree=tree))
    table = verdict.table[~verdict.table["constant"]].set_index("quantity")
    return {"gate_passed": verdict.passed, "r_hat_max": float(table["r_hat"].max()),
            "ess_bulk_min": float(table["ess_bulk"].min()), "ess_tail_min": float(table["ess_tail"].min()),
            **{f"ess_bulk_{v}": float(table.loc[v, "ess_bulk"]) for v in ("mu", "tau")}}


def measure(form: str, targets: list[float], seeds: int, tune: int = 1000) -> list[dict]:
    import nutpie
    import pytensor

    import msc_bayes as mb
    from msc_bayes.outcomes.edss import model as em

    if form == "guide":
        with_guide()
    evidence, spec = mb.load_evidence(ROOT / "data"), mb.load_spec(ROOT / "models" / "edss_change.toml")
    start = time.perf_counter()
    model, _ = em.build(spec, evidence, locations=form != "default")
    with pytensor.config.change_flags(numba__fastmath=False):
        compiled = nutpie.compile_pymc_model(model)
    compile_s = time.perf_counter() - start
    rows = []
    for target in targets:
        for s in range(seeds):
            start = time.perf_counter()
            tree = nutpie.sample(compiled, draws=1000, tune=tune, chains=4, cores=2, seed=1000 + s,
                                 target_accept=target, progress_bar=False)
            stats, warm = tree["sample_stats"], tree["warmup_sample_stats"]
            rows.append({"form": form, "target_accept": target, "tune": tune, "seed": 1000 + s, "compile_s": compile_s,
                         "divergences": int(stats["diverging"].values.sum()),
                         "steps_per_draw": float(stats["n_steps"].values.mean()),
                         "gradients": int(stats["n_steps"].values.sum() + warm["n_steps"].values.sum()),
                         "seconds": time.perf_counter() - start, **mixing(tree)})
            print(json.dumps(rows[-1]), flush=True)  # one JSON line per fit: the parent reads them
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forms", default="default,locations,guide")
    p.add_argument("--target-accept", default="0.9,0.95")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1,000)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "geometry.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    targets = [float(x) for x in args.target_accept.split(",")]
    if args.worker:  # one form per process: `with_guide` changes the model module
        measure(args.worker, targets, args.seeds, args.tune)
        return 0
    import subprocess

    rows = []
    for form in args.forms.split(","):
        out = subprocess.run([sys.executable, __file__, "--worker", form, "--target-accept", args.target_accept,
                              "--seeds", str(args.seeds), "--tune", str(args.tune)], check=True, stdout=subprocess.PIPE, text=True).stdout
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    print("| form | target_accept | tune | seeds that diverge | seeds that miss the gate | divergences | steps per draw "
          "| gradients per fit | s per fit | worst R-hat | least bulk / tail ESS | bulk ESS of mu / tau per s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for form in args.forms.split(","):
        for target in targets:
            r = [x for x in rows if x["form"] == form and x["target_accept"] == target]
            print(f"| {form} | {target:g} | {args.tune} | {sum(x['divergences'] > 0 for x in r)} / {len(r)} | "
                  f"{sum(not x['gate_passed'] for x in r)} / {len(r)} | "
                  f"{sum(x['divergences'] for x in r)} | {np.mean([x['steps_per_draw'] for x in r]):.1f} | "
                  f"{np.mean([x['gradients'] for x in r]):,.0f} | {np.mean([x['seconds'] for x in r]):.1f} | "
                  f"{max(x['r_hat_max'] for x in r):.3f} | {min(x['ess_bulk_min'] for x in r):.0f} / "
                  f"{min(x['ess_tail_min'] for x in r):.0f} | "
                  f"{np.median([x['ess_bulk_mu'] / x['seconds'] for x in r]):.0f} / "
                  f"{np.median([x['ess_bulk_tau'] / x['seconds'] for x in r]):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
