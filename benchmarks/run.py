#!/usr/bin/env python
"""Performance harness for msc_bayes: a benchmark, not a test (pytest never collects it).

    python benchmarks/run.py [--quick] [--out benchmarks/results/latest.json]

Measures, on the bundled data (data/, models/) and on synthetic data of growing size
(10, 100, 1,000 arms; a plain effect-size table and an arms+edss(+patients) table with
mixed reporting formats, generated in a temporary folder):

- report:   wall time of ``python -m msc_bayes report`` cold (fresh, empty PyTensor/numba
            compile caches: ``PYTENSOR_FLAGS=base_compiledir=<new dir>``, ``NUMBA_CACHE_DIR``)
            and warm (same caches again); falls back to ``python -m msc_bayes fit`` of every
            spec in models/ when the report command is not available;
- fit_cli:  one ``python -m msc_bayes fit models/edss_change.toml`` (4 chains x 1,000 draws),
            warm, process start included;
- inproc:   in one process: import, first fit (compile and sampling separately), refit from
            the compiled cache, bulk-ESS per second of mu and tau, refits of a sensitivity
            sweep (other prior value, a left-out study), tracemalloc peak of one refit;
- oracle:   the exact normal-normal posterior (msc_bayes.oracle) for k = 10, 100, 1,000;
- scaling:  build / compile / sampling time and peak memory against the number of arms;
- new_data: a fit (4 chains x 1,000 draws after 1,000 tuning, brms's defaults) in a new process
            on data of a size no process has seen: first on empty caches (a new machine), then
            the same data warm, then 13 and 6 studies where 10 were compiled, plain and with
            mixed formats; each with the compile cache's hit/miss counts.

Every measurement runs in a child process (``--worker``) so that its caches, peak memory
(``ru_maxrss`` from ``os.wait4``) and start-up are its own. Timings on a shared 2-core
machine are noisy: warm figures are medians over ``--repeats`` runs, and the 1-minute load
average is recorded around every run. Writes JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MARK = "BENCH_JSON "
EDSS_SPEC = ROOT / "models" / "edss_change.toml"
CLI = [PY, "-m", "msc_bayes"]
#: Extra environment of every child (``--no-compile-cache`` sets MSC_BAYES_COMPILE_CACHE=0).
CHILD_ENV: dict[str, str] = {}


# ======================================================================================
# Child processes
# ======================================================================================

def cache_env(cache: Path | None) -> dict:
    """Environment with PyTensor's and numba's on-disk caches under `cache` (None: as inherited)."""
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        env["PYTENSOR_FLAGS"] = f"base_compiledir={cache}"
        env["NUMBA_CACHE_DIR"] = str(cache / "numba_user")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(CHILD_ENV)
    return env


def run_child(cmd: list[str], *, cache: Path | None, cwd: Path = ROOT, timeout: float = 3600) -> dict:
    """Run `cmd`; wall time, exit code, peak RSS (MiB) of that child, load average, JSON result."""
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=cache_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out_lines = []
    deadline = start + timeout
    assert proc.stdout is not None
    for line in proc.stdout:  # stream (the child's pipe must not fill up)
        out_lines.append(line)
        if time.perf_counter() > deadline:
            proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    result = None
    for line in out_lines:
        if line.startswith(MARK):
            result = json.loads(line[len(MARK):])
    rec = {"cmd": " ".join(str(c) for c in cmd[1:]), "wall_s": round(wall, 3), "rc": proc.returncode,
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
           "load1_before": round(load0, 2), "load1_after": round(os.getloadavg()[0], 2)}
    if result is not None:
        rec["result"] = result
    if proc.returncode != 0:
        rec["output_tail"] = "".join(out_lines[-25:])
    return rec


def worker(kind: str, params: dict, *, cache: Path | None, timeout: float = 3600) -> dict:
    return run_child([PY, str(Path(__file__).resolve()), "--worker", kind, "--params", json.dumps(params)],
                     cache=cache, timeout=timeout)


def median(xs, digits: int = 3):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), digits) if xs else None


# ======================================================================================
# Synthetic data
# ======================================================================================

def make_plain(folder: Path, k: int, seed: int = 1) -> Path:
    """A plain effect-size table: edss.csv only, one arm per study, mean change with its SE."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["study,arm,timepoint_months,n,change_mean,change_se"]
    for i in range(k):
        n = int(rng.integers(8, 60))
        se = float(rng.uniform(0.08, 0.4))
        y = -0.2 + 0.3 * rng.normal() + se * rng.normal()
        lines.append(f"s{i:04d},all,12,{n},{y:.3f},{se:.3f}")
    (folder / "edss.csv").write_text("\n".join(lines) + "\n")
    return folder


def make_mixed(folder: Path, k: int, seed: int = 2) -> Path:
    """arms.csv + edss.csv + patients.csv with k arms: 1-2 arms per study (some controls), formats
    cycling through change (SD / SE / CI), baseline/follow-up, counts, means only and patient-level."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arms = ["study,arm,group,design,disease,route,courses,n"]
    edss = ["study,arm,timepoint_months,n,change_mean,change_sd,change_se,change_ci_lower,change_ci_upper,"
            "change_ci_level,baseline_mean,baseline_sd,followup_mean,followup_sd,improved,stable,worsened,threshold"]
    pats = ["study,arm,patient,timepoint_months,change"]
    i, s = 0, 0
    while i < k:
        study = f"s{s:04d}"
        two = (s % 5 == 4) and i + 1 < k  # every 5th study is controlled
        route = ["IV", "IT", "IT+IV"][int(rng.integers(0, 3))]
        courses = int(rng.integers(1, 4))
        study_eff = 0.3 * rng.normal()
        for a, group in ((("msc", "msc"), ("ctl", "control")) if two else (("all", "msc"),)):
            n = int(rng.integers(8, 40))
            theta = -0.2 + study_eff + (0.25 if group == "control" else 0.0)
            sigma = float(np.exp(np.log(0.7) + 0.2 * rng.normal()))
            design = "randomised" if two else "single-arm"
            arms.append(f"{study},{a},{group},{design},MS,{route},{courses},{n}")
            fmt = i % 5
            d = np.round(rng.normal(theta, sigma, n) * 2) / 2  # patient changes on the 0.5 grid
            row = {"n": n}
            if fmt == 0:  # change with SD / SE / CI
                m, sd = float(d.mean()), float(max(d.std(ddof=1), 0.1))
                row["change_mean"] = f"{m:.3f}"
                if i % 3 == 0:
                    row["change_sd"] = f"{sd:.3f}"
                elif i % 3 == 1:
                    row["change_se"] = f"{sd / np.sqrt(n):.3f}"
                else:
                    h = 1.96 * sd / np.sqrt(n)
                    row.update(change_ci_lower=f"{m - h:.3f}", change_ci_upper=f"{m + h:.3f}", change_ci_level="0.95")
            elif fmt == 1:  # baseline / follow-up
                b = np.clip(np.round(rng.normal(5.0, 1.2, n) * 2) / 2, 0, 9.5)
                f = np.clip(b + d, 0, 10)
                row.update(baseline_mean=f"{b.mean():.3f}", baseline_sd=f"{max(b.std(ddof=1), 0.1):.3f}",
                           followup_mean=f"{f.mean():.3f}", followup_sd=f"{max(f.std(ddof=1), 0.1):.3f}")
            elif fmt == 2:  # counts
                row.update(improved=str(int((d <= -0.5).sum())), stable=str(int((np.abs(d) < 0.5).sum())),
                           worsened=str(int((d >= 0.5).sum())), threshold="0.5")
            elif fmt == 3:  # means only
                row["change_mean"] = f"{d.mean():.3f}"
            else:  # patient level only
                for p, v in enumerate(d[: min(n, 12)]):
                    pats.append(f"{study},{a},p{p},12,{v:g}")
                row = None
            if row is not None:
                cols = edss[0].split(",")
                vals = {"study": study, "arm": a, "timepoint_months": "12", **{c: str(v) for c, v in row.items()}}
                edss.append(",".join(vals.get(c, "") for c in cols))
            i += 1
        s += 1
    (folder / "arms.csv").write_text("\n".join(arms) + "\n")
    (folder / "edss.csv").write_text("\n".join(edss) + "\n")
    (folder / "patients.csv").write_text("\n".join(pats) + "\n")
    return folder


# ======================================================================================
# Workers (run inside the child process)
# ======================================================================================

def _load(params):
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import load_spec

    spec = load_spec(params.get("spec", str(EDSS_SPEC)))
    if params.get("plain"):
        spec = spec.replace(covariates=[])
    return spec, load_evidence(params.get("data", str(ROOT / "data")))


def _us_per_grad(c, n: int = 2000) -> float:
    """Median wall time of one logp+gradient call of nutpie's compiled function (ctypes call)."""
    import ctypes

    import numpy as np

    f = c.compiled_logp_func.ctypes
    x = np.ascontiguousarray(c.initial_point_func(1), dtype=float)
    g, lp = np.zeros_like(x), np.zeros(())
    dp = ctypes.POINTER(ctypes.c_double)
    args = (c.n_dim, x.ctypes.data_as(dp), g.ctypes.data_as(dp), lp.ctypes.data_as(dp),
            ctypes.c_void_p(c.user_data.ctypes.data))
    f(*args)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            f(*args)
        times.append((time.perf_counter() - t) / n * 1e6)
    return round(min(times), 2)


def _ess_per_s(fit, seconds):
    import arviz as az

    ess = az.ess(fit.tree, var_names=["mu", "tau"], method="bulk")
    out = {}
    for v in ("mu", "tau"):
        e = float(ess[v].values) if v in ess else None
        out[f"ess_bulk_{v}"] = round(e, 1) if e is not None else None
        out[f"ess_bulk_per_s_{v}"] = round(e / seconds, 1) if e is not None and seconds else None
    return out


def w_inprocess(params: dict, t_start: float) -> dict:
    import tracemalloc

    t0 = time.perf_counter()
    import nutpie  # noqa: F401
    import pymc  # noqa: F401

    from msc_bayes import inference
    res = {"import_s": round(time.perf_counter() - t_start, 3)}
    spec, ev = _load(params)
    kw = {k: params[k] for k in ("draws", "tune", "chains") if params.get(k)}

    t = time.perf_counter()
    inference.compiled(spec, ev)
    res["first_compile_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    f1 = inference.fit(spec, ev, **kw)
    res["first_fit_after_compile_s"] = round(time.perf_counter() - t, 3)
    res["first_sampling_s"] = round(f1.tree.attrs["sampling_seconds"], 3)
    res["first_fit_total_s"] = round(res["first_compile_s"] + res["first_fit_after_compile_s"], 3)
    res.update(_ess_per_s(f1, f1.tree.attrs["sampling_seconds"]))

    t = time.perf_counter()
    f2 = inference.fit(spec, ev, seed=spec.sampler.seed + 1, **kw)
    res["refit_s"] = round(time.perf_counter() - t, 3)
    res["refit_sampling_s"] = round(f2.tree.attrs["sampling_seconds"], 3)
    res.update({k + "_refit": v for k, v in _ess_per_s(f2, f2.tree.attrs["sampling_seconds"]).items()})

    # sensitivity sweep: other prior values (same families) and left-out studies, same compiled model
    n_compiled = len(inference.ENGINE.compiled_models)
    sweep = []
    tau = spec.priors["tau"]
    scale_key = next(iter(tau.params))
    for factor in params.get("prior_factors", [2.0, 0.5]):
        s2 = spec.replace(priors={"tau": {"dist": tau.dist, **{k: v * (factor if k == scale_key else 1)
                                                               for k, v in tau.params.items()}}})
        t = time.perf_counter()
        f = inference.fit(s2, ev, **kw)
        sweep.append({"change": f"tau {scale_key} x{factor}", "wall_s": round(time.perf_counter() - t, 3),
                      "sampling_s": round(f.tree.attrs["sampling_seconds"], 3)})
    studies = f1.prepared.studies
    for st in studies[: params.get("n_exclude", 2)]:
        t = time.perf_counter()
        f = inference.fit(spec, ev, exclude_studies=[st], **kw)
        sweep.append({"change": f"exclude {st}", "wall_s": round(time.perf_counter() - t, 3),
                      "sampling_s": round(f.tree.attrs["sampling_seconds"], 3)})
    res["sweep"] = sweep
    res["sweep_recompiled"] = len(inference.ENGINE.compiled_models) != n_compiled
    res["sweep_median_refit_s"] = median([s["wall_s"] for s in sweep])

    tracemalloc.start()
    inference.fit(spec, ev, **kw)
    res["tracemalloc_peak_refit_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    res["worker_total_s"] = round(time.perf_counter() - t0, 3)
    return res


def w_scaling(params: dict, t_start: float) -> dict:
    import numpy as np

    from msc_bayes import inference
    res = {"import_s": round(time.perf_counter() - t_start, 3)}
    spec, ev = _load(params)
    t = time.perf_counter()
    model, prepared = inference.build(spec, ev)
    res["build_s"] = round(time.perf_counter() - t, 3)
    res["units"] = len(prepared.units)
    res["studies"] = len(prepared.studies)
    inference.ENGINE.compiled_models.clear()
    t = time.perf_counter()
    c, model, prepared = inference.compiled(spec, ev)
    res["compile_s"] = round(time.perf_counter() - t, 3)  # includes its own build
    res["n_dim"] = int(c.n_dim)
    res["us_per_grad"] = _us_per_grad(c, 200 if c.n_dim > 500 else 2000)
    kw = {k: params[k] for k in ("draws", "tune", "chains") if params.get(k)}
    t = time.perf_counter()
    f = inference.fit(spec, ev, **kw)
    res["fit_after_compile_s"] = round(time.perf_counter() - t, 3)
    res["sampling_s"] = round(f.tree.attrs["sampling_seconds"], 3)
    ss = f.tree["sample_stats"].to_dataset()
    res["grad_evals_draws"] = int(ss["n_steps"].sum())  # post-warmup only (fit keeps no warmup)
    res["divergences"] = int(ss["diverging"].sum())
    res.update(_ess_per_s(f, f.tree.attrs["sampling_seconds"]))
    if params.get("oracle"):
        from msc_bayes import sweep
        times = []
        for _ in range(params.get("oracle_reps", 5)):
            t = time.perf_counter()
            post = sweep.oracle_posterior(spec, ev)
            post.mu_quantile([0.025, 0.5, 0.975]), post.tau_quantile([0.025, 0.5, 0.975])
            times.append(time.perf_counter() - t)
        res["oracle_with_prepare_s"] = median(times, 6)
        res["oracle_mu_mean"] = round(float(post.mu_mean), 4)
        res["mcmc_mu_mean"] = round(float(np.mean(f.posterior["mu"].values)), 4)
    return res


def w_oracle(params: dict, t_start: float) -> dict:
    import numpy as np

    from msc_bayes.oracle import normal_normal
    from msc_bayes.spec import Prior

    tau_prior = Prior("HalfNormal", {"sigma": 0.5})
    tau_prior.logpdf(np.array([0.1]))  # compile the prior's logp once (as a sweep would)
    out = {}
    for k in params["ks"]:
        rng = np.random.default_rng(k)
        se = rng.uniform(0.08, 0.4, k)
        y = -0.2 + 0.3 * rng.normal(size=k) + se * rng.normal(size=k)
        fit_t, full_t = [], []
        for _ in range(params.get("reps", 7)):
            t = time.perf_counter()
            post = normal_normal(y, se, prior_mean=0.0, prior_sd=1.0, tau_logpdf=tau_prior.logpdf)
            t1 = time.perf_counter()
            post.mu_mean, post.mu_sd, post.tau_mean
            post.mu_quantile([0.025, 0.5, 0.975]), post.tau_quantile([0.025, 0.5, 0.975])
            t2 = time.perf_counter()
            fit_t.append(t1 - t)
            full_t.append(t2 - t)
        out.setdefault("per_k", {})[str(k)] = {"posterior_s": median(fit_t, 6),
                                               "posterior_plus_summaries_s": median(full_t, 6),
                       "nodes": len(post.tau_nodes)}
    return out


def w_fit(params: dict, t_start: float) -> dict:
    """One fit in a new process: import, compile (or load), sampling; the compile cache's counts."""
    from msc_bayes import inference
    from msc_bayes.inference import compile_cache
    res = {"import_s": round(time.perf_counter() - t_start, 3)}
    spec, ev = _load(params)
    t = time.perf_counter()
    c, _, _ = inference.compiled(spec, ev)
    res["compile_s"] = round(time.perf_counter() - t, 3)  # includes building the model
    res["n_dim"] = int(c.n_dim)
    kw = {k: params[k] for k in ("draws", "tune", "chains") if params.get(k)}
    t = time.perf_counter()
    f = inference.fit(spec, ev, **kw)
    res["fit_s"] = round(time.perf_counter() - t, 3)
    res["sampling_s"] = round(f.tree.attrs["sampling_seconds"], 3)
    res["divergences"] = int(f.tree["sample_stats"].to_dataset()["diverging"].sum())
    res.update(_ess_per_s(f, f.tree.attrs["sampling_seconds"]))
    res["compiles"] = {k: v for k, v in compile_cache.STATS.items() if v}
    res["total_s"] = round(time.perf_counter() - t_start, 3)
    return res


WORKERS = {"inprocess": w_inprocess, "scaling": w_scaling, "oracle": w_oracle, "fit": w_fit}


# ======================================================================================
# The benchmark
# ======================================================================================

def report_available() -> bool:
    r = subprocess.run([*CLI, "report", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env=cache_env(None))
    return r.returncode == 0


def bench_report(tmp: Path, repeats: int, cold: bool) -> dict:
    cache = tmp / "cache_report"
    specs = sorted((ROOT / "models").glob("*.toml"))
    if report_available():
        mode = "report"

        def once(i):
            return [run_child([*CLI, "report", "--out", str(tmp / f"report_{i}")], cache=cache)]
    else:
        mode = "fit each spec (report command not available)"

        def once(i):
            return [run_child([*CLI, "fit", str(p), "--out", str(tmp / f"fit_{p.stem}_{i}")],
                              cache=cache) for p in specs]
    out = {"mode": mode, "cold": None, "warm": []}
    first = once("cold")  # a fresh cache folder: the first run is the cold one
    if cold:
        out["cold"] = first
    for i in range(repeats):
        out["warm"].append(once(i))
    walls = [sum(r["wall_s"] for r in runs) for runs in out["warm"]]
    out["warm_wall_median_s"] = median(walls)
    if mode == "report":  # the same without the sensitivity section (its refits dominate a warm report)
        out["warm_no_sensitivity"] = [
            run_child([*CLI, "report", "--no-sensitivity", "--out", str(tmp / f"report_ns_{i}")], cache=cache)
            for i in range(repeats)]
        out["warm_no_sensitivity_median_s"] = median([r["wall_s"] for r in out["warm_no_sensitivity"]])
    out["cold_wall_s"] = round(sum(r["wall_s"] for r in first), 3) if cold else None
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for runs in [first, *out["warm"]] for r in runs)
    out["ok"] = all(r["rc"] == 0 for runs in [first, *out["warm"], out.get("warm_no_sensitivity", [])] for r in runs)
    return out, cache


def bench_fit_cli(tmp: Path, cache: Path, repeats: int) -> dict:
    runs = [run_child([*CLI, "fit", str(EDSS_SPEC), "--out", str(tmp / f"fitcli_{i}")], cache=cache)
            for i in range(repeats)]
    return {"runs": runs, "wall_median_s": median([r["wall_s"] for r in runs]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "ok": all(r["rc"] == 0 for r in runs)}


def bench_inprocess(cache: Path, repeats: int, quick: bool) -> dict:
    params = {"n_exclude": 1 if quick else 2, "prior_factors": [2.0] if quick else [2.0, 0.5]}
    runs = [worker("inprocess", params, cache=cache) for _ in range(repeats)]
    res = [r.get("result", {}) for r in runs]
    keys = ["import_s", "first_compile_s", "first_sampling_s", "first_fit_total_s", "refit_s", "refit_sampling_s",
            "ess_bulk_mu", "ess_bulk_tau", "ess_bulk_per_s_mu", "ess_bulk_per_s_tau", "sweep_median_refit_s",
            "tracemalloc_peak_refit_mib"]
    return {"runs": runs, "median": {k: median([r.get(k) for r in res]) for k in keys},
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "ok": all(r["rc"] == 0 for r in runs)}


def bench_oracle(repeats: int) -> dict:
    r = worker("oracle", {"ks": [10, 100, 1000], "reps": max(5, 2 * repeats + 1)}, cache=None)
    return {"run": r, "per_k": (r.get("result") or {}).get("per_k")}


def bench_scaling(tmp: Path, arms: list[int], sampler: dict) -> dict:
    """Per size and table kind: a first process (fresh structure in a shared cache folder) and a
    second one (warm: the same structure is in the on-disk caches)."""
    out = {"sampler": sampler, "rows": []}
    cache = tmp / "cache_scaling"
    for kind in ("plain", "mixed"):
        for k in arms:
            folder = tmp / f"data_{kind}_{k}"
            (make_plain if kind == "plain" else make_mixed)(folder, k)
            params = {"data": str(folder), "plain": kind == "plain", "oracle": kind == "plain", **sampler}
            first = worker("scaling", params, cache=cache)
            second = worker("scaling", params, cache=cache)
            row = {"kind": kind, "arms": k, "first": first, "warm": second}
            for tag, r in (("first", first), ("warm", second)):
                res = r.get("result", {})
                row[f"{tag}_compile_s"] = res.get("compile_s")
                row[f"{tag}_wall_s"] = r["wall_s"]
            res = second.get("result", {})
            for key in ("units", "studies", "n_dim", "build_s", "sampling_s", "grad_evals_draws", "us_per_grad",
                        "ess_bulk_per_s_mu", "ess_bulk_per_s_tau", "divergences", "oracle_with_prepare_s"):
                row[key] = res.get(key)
            row["peak_rss_mib"] = max(first["peak_rss_mib"], second["peak_rss_mib"])
            row["ok"] = first["rc"] == 0 and second["rc"] == 0
            out["rows"].append(row)
            print(f"  scaling {kind:5s} {k:5d} arms: first compile {row['first_compile_s']} s, warm compile "
                  f"{row['warm_compile_s']} s, sampling {row['sampling_s']} s, RSS {row['peak_rss_mib']} MiB",
                  flush=True)
    return out


#: A brms fit of the same kind of model on this kind of machine (issue #17's run: BCG meta-regression,
#: 4 x 1,000 draws after 1,000 warm-up; brms is not run here: R is not part of the project).
BRMS_QUIET_S = 35.0


def bench_new_data(tmp: Path) -> dict:
    """Fits in new processes on one fresh cache folder: the first on empty caches, then the same
    data warm, then data of sizes no process has compiled (the structure compiled once)."""
    cache = tmp / "cache_new_data"
    cases = [("first fit, empty caches", "plain", 10), ("same data again", "plain", 10),
             ("new data: 13 studies", "plain", 13), ("new data: 6 studies", "plain", 6),
             ("mixed formats, first of its structure", "mixed", 10), ("mixed, new data: 13 arms", "mixed", 13)]
    rows = []
    for label, kind, k in cases:
        folder = tmp / f"newdata_{kind}_{k}"
        if not folder.exists():
            (make_plain if kind == "plain" else make_mixed)(folder, k)
        r = worker("fit", {"data": str(folder), "plain": kind == "plain", "draws": 1000, "tune": 1000}, cache=cache)
        res = r.get("result", {})
        row = {"case": label, "kind": kind, "arms": k, "wall_s": r["wall_s"], "rc": r["rc"],
               "load1": [r["load1_before"], r["load1_after"]],
               **{key: res.get(key) for key in ("import_s", "compile_s", "sampling_s", "n_dim", "divergences",
                                                "compiles", "ess_bulk_per_s_mu")}}
        rows.append(row)
        print(f"  new data: {label:40s} {r['wall_s']:7.1f} s (compile/load {row['compile_s']} s, sampling "
              f"{row['sampling_s']} s) {row['compiles']}", flush=True)
    by = {r["case"]: r for r in rows}
    new = [by["new data: 13 studies"]["wall_s"], by["new data: 6 studies"]["wall_s"]]
    return {"rows": rows, "brms_quiet_s": BRMS_QUIET_S, "first_wall_s": by["first fit, empty caches"]["wall_s"],
            "new_data_wall_median_s": median(new), "ok": all(r["rc"] == 0 for r in rows)}


def environment() -> dict:
    from importlib import metadata
    vers = {}
    for p in ("msc_bayes", "pymc", "pytensor", "nutpie", "numba", "llvmlite", "arviz", "numpy", "jax"):
        try:
            vers[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            vers[p] = None
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "versions": vers,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_avg_start": [round(x, 2) for x in os.getloadavg()]}


TARGETS = {  # name -> (figure in the JSON, limit in seconds)
    "fit on new data, warm caches, new process": ("new_data.new_data_wall_median_s", BRMS_QUIET_S / 10),
    "first fit on a new machine": ("new_data.first_wall_s", BRMS_QUIET_S / 2),
    "warm single fit incl. process start": ("fit_cli.wall_median_s", 3.0),
    "warm full report": ("report.warm_wall_median_s", 30.0),
    "warm report, --no-sensitivity": ("report.warm_no_sensitivity_median_s", 30.0),
    "cold full report": ("report.cold_wall_s", 90.0),
    "extra refit in a sweep": ("inprocess.median.sweep_median_refit_s", 1.0),
    "oracle (k=1000, with summaries)": ("oracle.per_k.1000.posterior_plus_summaries_s", 0.05),
}


def _get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def print_table(res: dict) -> None:
    print("\n== msc_bayes benchmark", res["env"]["started"], "| load avg start", res["env"]["load_avg_start"],
          "end", res["env"].get("load_avg_end"))
    rows = []
    rep = res.get("report")
    if rep:
        rows.append((f"full report ({rep['mode']}) cold", rep.get("cold_wall_s"), "s"))
        rows.append((f"full report warm (median of {len(rep['warm'])})", rep.get("warm_wall_median_s"), "s"))
        rows.append(("full report warm, --no-sensitivity", rep.get("warm_no_sensitivity_median_s"), "s"))
        rows.append(("full report peak RSS", rep.get("peak_rss_mib"), "MiB"))
    fc = res.get("fit_cli")
    if fc:
        rows.append((f"fit edss_change CLI warm, incl. process start (median of {len(fc['runs'])})",
                     fc.get("wall_median_s"), "s"))
        rows.append(("fit CLI peak RSS", fc.get("peak_rss_mib"), "MiB"))
    ip = res.get("inprocess")
    if ip:
        m = ip["median"]
        for k, unit in (("import_s", "s"), ("first_compile_s", "s"), ("first_sampling_s", "s"),
                        ("first_fit_total_s", "s"), ("refit_s", "s"), ("refit_sampling_s", "s"),
                        ("ess_bulk_per_s_mu", "1/s"), ("ess_bulk_per_s_tau", "1/s"),
                        ("sweep_median_refit_s", "s"), ("tracemalloc_peak_refit_mib", "MiB")):
            rows.append((f"in-process {k}", m.get(k), unit))
        rows.append(("in-process peak RSS", ip.get("peak_rss_mib"), "MiB"))
    orc = res.get("oracle", {}).get("per_k") or {}
    for k, v in orc.items():
        rows.append((f"oracle k={k} posterior / +summaries", f"{v['posterior_s'] * 1e3:.1f} / "
                                                             f"{v['posterior_plus_summaries_s'] * 1e3:.1f}", "ms"))
    w = max(len(r[0]) for r in rows) if rows else 10
    for name, val, unit in rows:
        print(f"  {name:<{w}}  {val if val is not None else '-':>12} {unit}")
    sc = res.get("scaling")
    if sc:
        print(f"\n  scaling (sampler {sc['sampler']}):")
        print(f"  {'kind':6s} {'arms':>5s} {'units':>5s} {'n_dim':>6s} {'build':>6s} {'compile1':>9s} {'compileW':>9s}"
              f" {'sample':>7s} {'us/grad':>8s} {'ESS/s mu':>9s} {'oracle ms':>9s} {'RSS MiB':>8s}")
        for r in sc["rows"]:
            orc_ms = f"{r['oracle_with_prepare_s'] * 1e3:.1f}" if r.get("oracle_with_prepare_s") else "-"
            print(f"  {r['kind']:6s} {r['arms']:5d} {r['units'] or '-':>5} {r['n_dim'] or '-':>6} "
                  f"{r['build_s'] or '-':>6} {r['first_compile_s'] or '-':>9} {r['warm_compile_s'] or '-':>9} "
                  f"{r['sampling_s'] or '-':>7} {r['us_per_grad'] or '-':>8} {r['ess_bulk_per_s_mu'] or '-':>9} "
                  f"{orc_ms:>9} {r['peak_rss_mib']:>8}")
    nd = res.get("new_data")
    if nd:
        print(f"\n  fits in a new process, 4 x 1,000 draws (brms, for scale: ~{nd['brms_quiet_s']:g} s quiet):")
        for r in nd["rows"]:
            print(f"  {r['case']:40s} {r['wall_s']:7.1f} s  compile/load {r['compile_s'] or '-':>7} s  sampling "
                  f"{r['sampling_s'] or '-':>6} s  n_dim {r['n_dim'] or '-':>4}  {r['compiles']}")
    print("\n  targets:")
    for name, (path, limit) in TARGETS.items():
        v = _get(res, path)
        verdict = "-" if v is None else ("holds" if v <= limit else "MISSED")
        print(f"    {name:<40s} <= {limit:g} s: {v if v is not None else '-'} s  {verdict}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 repeat, no cold report, arms 10 and 100, 100 draws + 100 tune in the scaling runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    ap.add_argument("--repeats", type=int, default=None, help="warm repeats (default 3, --quick 1)")
    ap.add_argument("--arms", default=None, help="comma-separated sizes (default 10,100,1000; --quick 10,100)")
    ap.add_argument("--sections", default="report,fit_cli,inprocess,oracle,scaling,new_data")
    ap.add_argument("--scaling-draws", type=int, default=None, help="draws = tune per chain (4 chains) in the "
                    "scaling runs (default 300; --quick 100); 0: the spec's 1000/1000")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (data, caches, reports)")
    ap.add_argument("--no-compile-cache", action="store_true",
                    help="switch off msc_bayes.compile_cache in every child (MSC_BAYES_COMPILE_CACHE=0): "
                         "the 'before' figures")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.no_compile_cache:
        CHILD_ENV["MSC_BAYES_COMPILE_CACHE"] = "0"

    if args.worker:
        t_start = time.perf_counter()
        sys.path.insert(0, str(ROOT / "src"))
        result = WORKERS[args.worker](json.loads(args.params or "{}"), t_start)
        import resource
        result["_self_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(MARK + json.dumps(result), flush=True)
        return 0

    repeats = args.repeats or (1 if args.quick else 3)
    arms = [int(a) for a in (args.arms or ("10,100" if args.quick else "10,100,1000")).split(",")]
    sd = args.scaling_draws if args.scaling_draws is not None else (100 if args.quick else 300)
    sampler = {"draws": sd, "tune": sd} if sd else {}
    sections = set(args.sections.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="msc_bench_"))
    res = {"env": environment(), "settings": {"quick": args.quick, "repeats": repeats, "arms": arms,
                                              "compile_cache": not args.no_compile_cache,
                                              "sections": sorted(sections), "tmp": str(tmp)}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        res["env"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        out.write_text(json.dumps(res, indent=1, default=str))

    try:
        cache = tmp / "cache_report"
        if "report" in sections:
            print(f"report: 1 cold + {repeats} warm ...", flush=True)
            res["report"], cache = bench_report(tmp, repeats, cold=not args.quick)
            save()
        if "fit_cli" in sections:
            print(f"fit CLI: {repeats} warm ...", flush=True)
            if "report" not in sections:  # warm the caches first
                run_child([*CLI, "fit", str(EDSS_SPEC), "--out", str(tmp / "fit_warmup")], cache=cache)
            res["fit_cli"] = bench_fit_cli(tmp, cache, repeats)
            save()
        if "inprocess" in sections:
            print(f"in-process fits: {repeats} processes ...", flush=True)
            res["inprocess"] = bench_inprocess(cache, repeats, args.quick)
            save()
        if "oracle" in sections:
            print("oracle ...", flush=True)
            res["oracle"] = bench_oracle(repeats)
            save()
        if "new_data" in sections:
            print("fits on data never seen, in new processes ...", flush=True)
            res["new_data"] = bench_new_data(tmp)
            save()
        if "scaling" in sections:
            print(f"scaling over {arms} arms ...", flush=True)
            res["scaling"] = bench_scaling(tmp, arms, sampler)
            save()
    finally:
        save()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(res)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
