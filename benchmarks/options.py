#!/usr/bin/env python
"""Compile / sampler options for the EDSS model, measured side by side (a benchmark, not a test).

    python benchmarks/options.py [--variants numba,persistent,...] [--warm 2]
                                 [--out benchmarks/results/options.json]

For each variant: one cold process (fresh, empty PyTensor/numba/JAX caches) and ``--warm``
warm processes (same caches), each compiling models/edss_change.toml on data/ and sampling
4 chains x 1,000 draws (tune 1,000 unless the variant changes it, target_accept 0.99, the
spec's seed). Recorded per process: import, compile, sampling, bulk-ESS/s of mu and tau,
logp+gradient cost, peak RSS and a digest of the mu draws (same digest = identical draws).

Variants:
  numba         nutpie.compile_pymc_model(model): stock nutpie (MSC_BAYES_COMPILE_CACHE=0)
  numba_opt1    the same with NUMBA_OPT=1 (LLVM -O1 instead of -O3)
  freeze        compile_pymc_model(model, freeze_model=True) (data baked in as constants)
  nutpie_cache  compile_pymc_model(model, cache=True): numba's on-disk cache of nutpie's cfuncs
  persistent    msc_bayes.inference.compile_cache.compile_model(model), what msc_bayes.inference.compiled()
                does: nutpie's cfuncs cached on disk under a fingerprint of the model graph
  jax           compile_pymc_model(model, backend="jax", gradient_backend="jax") with JAX's
                persistent compilation cache (needs jax; --jax-path adds a folder to sys.path)
  pymc_c        pm.sample(nuts_sampler="pymc", chains=4, cores=2) with the C backend (cvm)
  tune300       numba, sampling with tune=300 instead of 1,000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import run as harness  # benchmarks/run.py: child-process helpers

ALL = ["numba", "numba_opt1", "freeze", "nutpie_cache", "persistent", "jax", "pymc_c", "tune300"]


def _work(params: dict, t_start: float) -> dict:
    variant = params["variant"]
    cache = Path(params["cache"])
    if variant == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", str(cache / "jax"))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    import arviz as az
    import numpy as np
    import nutpie
    import pymc as pm
    import pytensor

    from msc_bayes import inference
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import load_spec

    res = {"variant": variant, "import_s": round(time.perf_counter() - t_start, 3)}
    spec = load_spec(ROOT / "models" / "edss_change.toml")
    ev = load_evidence(ROOT / "data")
    s = spec.sampler
    tune = 300 if variant == "tune300" else s.tune
    t = time.perf_counter()
    model, _ = inference.build(spec, ev)
    res["build_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    c = None
    # the package compiles with numba fast-math off (inference.compile_cache): the stock variants too
    with pytensor.config.change_flags(numba__fastmath=False):
        if variant in ("numba", "numba_opt1", "tune300"):
            c = nutpie.compile_pymc_model(model)
        elif variant == "freeze":
            c = nutpie.compile_pymc_model(model, freeze_model=True)
        elif variant == "nutpie_cache":
            c = nutpie.compile_pymc_model(model, cache=True)
            res["cfunc_cache_hits"] = [c.compiled_logp_func.cache_hits, c.compiled_expand_func.cache_hits]
        elif variant == "persistent":
            from msc_bayes.inference import compile_cache

            c = compile_cache.compile_model(model)
            res["persistent"] = dict(compile_cache.STATS)
        elif variant == "jax":
            c = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
        elif variant == "pymc_c":
            from pytensor.compile.mode import Mode

            step = pm.NUTS(model=model, target_accept=s.target_accept,
                           compile_kwargs={"mode": Mode(linker="cvm", optimizer="fast_run")})
    res["compile_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    if variant == "pymc_c":
        with model:
            tree = pm.sample(draws=s.draws, tune=tune, chains=s.chains, cores=2, step=step, random_seed=s.seed,
                             progressbar=False, compute_convergence_checks=False)
    else:
        tree = nutpie.sample(c, draws=s.draws, tune=tune, chains=s.chains, seed=s.seed,
                             target_accept=s.target_accept, progress_bar=False, save_warmup=False)
    res["sampling_s"] = round(time.perf_counter() - t, 3)
    ess = az.ess(tree, var_names=["mu", "tau"], method="bulk")
    for v in ("mu", "tau"):
        res[f"ess_bulk_{v}"] = round(float(ess[v].values), 1)
        res[f"ess_per_s_{v}"] = round(float(ess[v].values) / res["sampling_s"], 1)
    mu = np.ascontiguousarray(tree["posterior"]["mu"].values)
    res["mu_mean"] = round(float(mu.mean()), 4)
    res["mu_digest"] = hashlib.sha256(mu.tobytes()).hexdigest()[:12]
    try:
        res["divergences"] = int(tree["sample_stats"]["diverging"].values.sum())
    except Exception:  # noqa: BLE001
        pass
    if c is not None and hasattr(c, "compiled_logp_func"):
        res["us_per_grad"] = harness._us_per_grad(c)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(ALL))
    ap.add_argument("--warm", type=int, default=2, help="warm processes per variant (default 2)")
    ap.add_argument("--out", default=str(HERE / "results" / "options.json"))
    ap.add_argument("--jax-path", default=os.environ.get("MSC_BENCH_JAX_PATH"),
                    help="a folder holding jax (e.g. pip install --target DIR jax jaxlib ...)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        t_start = time.perf_counter()
        if args.jax_path:
            sys.path.insert(0, args.jax_path)
        res = _work(json.loads(args.params), t_start)
        print(harness.MARK + json.dumps(res), flush=True)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="msc_opts_"))
    out = {"env": harness.environment(), "variants": {}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    try:
        for v in args.variants.split(","):
            cache = tmp / f"cache_{v}"
            runs = []
            for phase in ["cold"] + [f"warm{i}" for i in range(args.warm)]:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", v,
                       "--params", json.dumps({"variant": v, "cache": str(cache)})]
                if args.jax_path:
                    cmd += ["--jax-path", args.jax_path]
                old = os.environ.get("NUMBA_OPT")
                if v == "numba_opt1":
                    os.environ["NUMBA_OPT"] = "1"
                try:
                    r = harness.run_child(cmd, cache=cache)
                finally:
                    if v == "numba_opt1":
                        os.environ.pop("NUMBA_OPT", None) if old is None else os.environ.__setitem__("NUMBA_OPT", old)
                r["phase"] = phase
                runs.append(r)
                rr = r.get("result", {})
                print(f"{v:13s} {phase:6s} rc={r['rc']} wall={r['wall_s']:7.1f} compile={rr.get('compile_s')} "
                      f"sampling={rr.get('sampling_s')} ess/s mu={rr.get('ess_per_s_mu')} "
                      f"us/grad={rr.get('us_per_grad')} digest={rr.get('mu_digest')} load={r['load1_after']}",
                      flush=True)
                if r["rc"] != 0:
                    print(r.get("output_tail", ""))
                    break
            warm = [r.get("result", {}) for r in runs[1:]]
            cold = runs[0].get("result", {})
            out["variants"][v] = {
                "runs": runs,
                "cold_compile_s": cold.get("compile_s"), "cold_wall_s": runs[0]["wall_s"],
                "warm_compile_s": harness.median([w.get("compile_s") for w in warm]),
                "warm_wall_s": harness.median([r["wall_s"] for r in runs[1:]]),
                "sampling_s": harness.median([w.get("sampling_s") for w in [cold, *warm]]),
                "ess_per_s_mu": harness.median([w.get("ess_per_s_mu") for w in [cold, *warm]], 1),
                "ess_per_s_tau": harness.median([w.get("ess_per_s_tau") for w in [cold, *warm]], 1),
                "us_per_grad": harness.median([w.get("us_per_grad") for w in [cold, *warm]], 2),
                "digests": [w.get("mu_digest") for w in [cold, *warm]],
                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            }
            Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    finally:
        out["env"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'variant':13s} {'cold compile':>12s} {'warm compile':>12s} {'warm wall':>9s} {'sampling':>8s} "
          f"{'ESS/s mu':>8s} {'ESS/s tau':>9s} {'us/grad':>7s} {'RSS MiB':>7s}  draw digests (cold, warm...)")
    for v, d in out["variants"].items():
        print(f"{v:13s} {d['cold_compile_s'] or '-':>12} {d['warm_compile_s'] or '-':>12} {d['warm_wall_s'] or '-':>9} "
              f"{d['sampling_s'] or '-':>8} {d['ess_per_s_mu'] or '-':>8} {d['ess_per_s_tau'] or '-':>9} "
              f"{d['us_per_grad'] or '-':>7} {d['peak_rss_mib']:>7}  {' '.join(str(x) for x in d['digests'])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
