"""The on-disk compiled-model cache: right key, identical machine code across processes, safe fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from msc_bayes import inference
from msc_bayes.evidence import load_evidence
from msc_bayes.inference import compile_cache
from msc_bayes.spec import Prior, load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
PLAIN = spec_from_dict({"outcome": "edss_change", "covariates": []})


def _evidence(tmp_path, values=(-0.3, 0.1, -0.5, -0.1)):
    folder = tmp_path / "data"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"s{i},a,12,{20 + 5 * i},{v!r},0.15\n" for i, v in enumerate(values))
    (folder / "edss.csv").write_text("study,arm,timepoint_months,n,change_mean,change_se\n" + rows)
    return load_evidence(folder)


def _key(spec, evidence) -> str:
    return compile_cache.fingerprint(inference.build(spec, evidence)[0])


def test_fingerprint_is_stable_and_ignores_values_that_are_runtime_data(tmp_path):
    ev = _evidence(tmp_path)
    key = _key(PLAIN, ev)
    assert _key(PLAIN, ev) == key  # a rebuilt model
    # prior values and study weights are pm.Data: the compiled code is the same
    assert _key(PLAIN.replace(priors={"tau": Prior("HalfNormal", {"sigma": 2.0})}), ev) == key


def test_fingerprint_does_not_depend_on_what_the_process_built_before():
    # pickles of ops are not reproducible (inner graphs' auto-numbered variables, pickle's
    # memo of shared strings): identities must come from types and props
    bundled = load_evidence(ROOT / "data")
    ae, edss = (load_spec(ROOT / "models" / f"{m}.toml") for m in ("adverse_events", "edss_change"))
    first = _key(ae, bundled)
    assert _key(edss, bundled) == _key(edss, bundled)
    assert _key(ae, bundled) == first


def test_fingerprint_changes_with_anything_compiled_into_the_model(tmp_path):
    ev = _evidence(tmp_path)
    key = _key(PLAIN, ev)
    assert _key(PLAIN.replace(priors={"tau": Prior("HalfCauchy", {"beta": 0.5})}), ev) != key  # another family
    # a format no arm had before is another structure too
    other = tmp_path / "counts"
    other.mkdir()
    (other / "edss.csv").write_text("study,arm,timepoint_months,n,change_mean,change_se,improved,stable,worsened,threshold\n"
                                    "s0,a,12,20,-0.3,0.15,,,,\ns1,a,12,25,0.1,0.15,,,,\ns2,a,12,10,,,3,5,2,0.5\n")
    assert _key(PLAIN, load_evidence(other)) != key


def test_fingerprint_ignores_the_datasets_values_and_sizes(tmp_path):
    # data values, numbers of arms and studies are run-time inputs of the compiled code
    key = _key(PLAIN, _evidence(tmp_path))
    assert _key(PLAIN, _evidence(tmp_path / "x", values=(-0.3, 0.1, -0.5, -0.2))) == key  # another value
    assert _key(PLAIN, _evidence(tmp_path / "y", values=(-0.3, 0.1, -0.5))) == key  # fewer arms
    assert _key(PLAIN, _evidence(tmp_path / "z", values=tuple(float(v) for v in np.linspace(-1, 1, 13)))) == key  # more


def _fresh_cache(monkeypatch, tmp_path):
    """This test's own cache folder (inherited by the helper process), nothing loaded in this process: a miss."""
    monkeypatch.setenv(compile_cache.DIR_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setattr(compile_cache, "_LOADED", {})
    monkeypatch.setattr(inference.ENGINE, "compiled_models", OrderedDict())
    monkeypatch.setattr(inference.ENGINE, "built", {})


def _sentinel(monkeypatch):
    calls = []
    monkeypatch.setattr("nutpie.compile_pymc_model", lambda model: calls.append(model) or "stock")
    return calls


def test_switched_off_or_unfingerprintable_models_compile_the_stock_way(tmp_path, monkeypatch):
    model = inference.build(PLAIN, _evidence(tmp_path))[0]
    calls = _sentinel(monkeypatch)
    monkeypatch.setenv(compile_cache.ENV_SWITCH, "0")
    assert compile_cache.compile_model(model) == "stock"
    monkeypatch.delenv(compile_cache.ENV_SWITCH)

    def unpicklable(model):
        raise compile_cache.Uncacheable("an op without pickle")

    monkeypatch.setattr(compile_cache, "fingerprint", unpicklable)
    assert compile_cache.compile_model(model) == "stock"
    assert len(calls) == 2


def test_a_compile_runs_without_fast_math_and_leaves_the_callers_setting(tmp_path, monkeypatch):
    import pytensor

    model = inference.build(PLAIN, _evidence(tmp_path))[0]
    during = []
    monkeypatch.setattr("nutpie.compile_pymc_model", lambda model: during.append(pytensor.config.numba__fastmath))
    monkeypatch.setenv(compile_cache.ENV_SWITCH, "0")  # the stock compile (the cached one shares the code path)
    for callers in (True, False):
        with pytensor.config.change_flags(numba__fastmath=callers):
            compile_cache.compile_model(model)
            assert pytensor.config.numba__fastmath is callers
    assert during == [compile_cache.NUMBA_FASTMATH] * 2


def test_importing_msc_bayes_leaves_pytensor_fast_math_at_its_default():
    show = "import pytensor; print(pytensor.config.numba__fastmath)"
    imports = "import msc_bayes, msc_bayes.inference, msc_bayes.reporting, msc_bayes.sweep, msc_bayes.cli; "

    def child(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert child(imports + show) == child(show)


def test_a_damaged_entry_is_compiled_afresh(tmp_path, monkeypatch):
    model = inference.build(PLAIN, _evidence(tmp_path))[0]
    monkeypatch.setattr(compile_cache, "cache_dir", lambda: tmp_path)
    compiled = []
    monkeypatch.setattr(compile_cache, "_compile_and_store", lambda m, k, f, e=None: compiled.append(k) or "fresh")
    (tmp_path / "deadbeef.pkl").write_bytes(b"not a pickle")
    assert compile_cache._cached(model, "deadbeef") == "fresh"
    assert compiled == ["deadbeef"]


def test_a_structure_another_process_is_compiling_is_waited_for_and_loaded_not_compiled_again(tmp_path, monkeypatch):
    """Two processes needing one fingerprint on empty caches compiled it side by side (the suite's cold run:
    79 and 86 s). Here the other process is this test, holding the structure's lock; the lock is a file lock,
    so a second open of the file, in a thread, waits as another process would."""
    import threading
    import time

    model = inference.build(PLAIN, _evidence(tmp_path))[0]
    monkeypatch.setattr(compile_cache, "cache_dir", lambda: tmp_path)
    compiled, stored = [], []
    monkeypatch.setattr(compile_cache, "_compile_and_store", lambda m, k, f, e=None: compiled.append(k) or "compiled")
    monkeypatch.setattr(compile_cache, "_stored", lambda m, k, f: ("meta", "wrappers", "keys") if k in stored else None)
    monkeypatch.setattr(compile_cache, "_assemble", lambda m, *found: found)
    result = []
    with compile_cache._compiling(tmp_path / "k1.lock"):  # the other process, compiling k1
        waiting = threading.Thread(target=lambda: result.append(compile_cache._cached(model, "k1")))
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not compiled  # it waits for the lock, and has not compiled
        stored.append("k1")  # the other process stores its entry, then releases the lock
    waiting.join(timeout=60)
    assert result == [("meta", "wrappers", "keys")] and not compiled  # loaded what the other stored
    assert compile_cache._cached(model, "k2") == "compiled" and compiled == ["k2"]  # no one else on k2: compiles


_CHILD = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    import nutpie
    from msc_bayes import inference
    from msc_bayes.inference import compile_cache
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import spec_from_dict

    spec = spec_from_dict({"outcome": "edss_change", "covariates": []})
    compiled, model, _ = inference.compiled(spec, load_evidence(sys.argv[1]))
    P = ctypes.POINTER(ctypes.c_double)
    points = []
    for x in np.random.default_rng(1).normal(0, 0.5, size=(3, compiled.n_dim)):
        grad, logp = np.zeros(compiled.n_dim), np.zeros(())
        rc = compiled.compiled_logp_func.ctypes(compiled.n_dim, x.ctypes.data_as(P), grad.ctypes.data_as(P),
                                                logp.ctypes.data_as(P), ctypes.c_void_p(compiled.user_data.ctypes.data))
        points.append([int(rc), float(logp), grad.tolist()])
    fit = inference.fit(spec, load_evidence(sys.argv[1]), draws=int(sys.argv[2]), tune=300, chains=4, seed=3)
    print(json.dumps({"stats": compile_cache.STATS, "points": points, "n_dim": int(compiled.n_dim),
                      "mu": fit.posterior["mu"].values.tolist()}))
""")


@pytest.mark.slow
def test_a_second_process_loads_the_same_machine_code_and_a_dataset_of_another_size_compiles_nothing(tmp_path):
    """The acceptance test of compiling once per model structure: counts compiles, not seconds."""
    from msc_bayes.sweep import oracle_posterior

    four, seven = (-0.3, 0.1, -0.5, -0.1), (0.2, -0.4, -0.6, 0.0, -0.2, -0.9, 0.3)
    folder, other = _evidence(tmp_path / "four", four).path, _evidence(tmp_path / "seven", seven).path
    cache = tmp_path / "cache"

    def child(data, draws=50, **env) -> dict:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(draws)], capture_output=True, text=True,
                             check=False, env={**os.environ, compile_cache.DIR_VARIABLE: str(cache), **env})
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, stock, second = child(folder), child(folder, **{compile_cache.ENV_SWITCH: "0"}), child(folder)
    assert first["stats"]["miss"] == 1 and first["stats"]["hit"] == 0
    assert stock["stats"]["stock"] == 1
    assert second["stats"]["hit"] == 1 and second["stats"]["miss"] == 0
    assert all(p[0] == 0 for p in first["points"])
    # logp and gradient at three points, then the draws: bit for bit in a later process
    assert first["points"] == second["points"] and first["mu"] == second["mu"]
    # and the function nutpie compiles for this one dataset, to rounding (nutpie folds the data
    # constants into the graph at compile time; here they are run-time inputs)
    for ours, theirs in zip(first["points"], stock["points"]):
        assert ours[1] == pytest.approx(theirs[1], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-10, atol=1e-12)

    # seven arms, a dataset no process has compiled: loaded, not compiled, and right
    new = child(other, draws=1000)
    assert new["stats"] == {**new["stats"], "miss": 0, "stock": 0, "hit": 1}
    assert new["n_dim"] == first["n_dim"] + 3  # three more study effects, in the same machine code
    mu = np.asarray(new["mu"])
    exact = oracle_posterior(PLAIN, load_evidence(other))  # the exact normal-normal posterior
    mcse = az_mcse(mu)
    assert abs(mu.mean() - exact.mu_mean) < 4 * mcse, (mu.mean(), exact.mu_mean, mcse)


def az_mcse(draws: np.ndarray) -> float:
    """The Monte Carlo standard error of the mean of (chain, draw) draws (ArviZ)."""
    from arviz_stats import mcse

    return float(mcse(draws, method="mean"))


def test_a_dataset_of_another_size_reuses_the_compiled_model_in_process(tmp_path, monkeypatch):
    _fresh_cache(monkeypatch, tmp_path)
    before = dict(compile_cache.STATS)
    small, large = _evidence(tmp_path / "a", (-0.3, 0.1, -0.5)), _evidence(tmp_path / "b", tuple(float(v) for v in np.linspace(-1, 1, 9)))
    first = inference.compiled(PLAIN, small)[0]
    second = inference.compiled(PLAIN, large)[0]
    assert compile_cache.STATS["miss"] - before["miss"] == 1  # one compile for both
    assert compile_cache.STATS["reused"] - before["reused"] == 1
    assert second.compiled_logp_func is first.compiled_logp_func
    assert (first.n_dim, second.n_dim) == (5, 11)


_STATE_CHILD = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    from msc_bayes import inference
    from msc_bayes.inference import compile_cache, engine
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import spec_from_dict

    engine.core_idle = lambda: sys.argv[2] == "helper"  # "helper": its expand wrapper compiled by a helper
    spec, evidence = spec_from_dict({"outcome": "edss_change", "covariates": []}), load_evidence(sys.argv[1])
    compiled, model, _ = inference.compiled(spec, evidence)
    P = ctypes.POINTER(ctypes.c_double)
    points = []
    for x in np.random.default_rng(1).normal(0, 0.5, size=(3, compiled.n_dim)):
        grad, logp = np.zeros(compiled.n_dim), np.zeros(())
        compiled.compiled_logp_func.ctypes(compiled.n_dim, x.ctypes.data_as(P), grad.ctypes.data_as(P),
                                           logp.ctypes.data_as(P), ctypes.c_void_p(compiled.user_data.ctypes.data))
        points.append([float(logp), grad.tolist()])
    fit = inference.fit(spec, evidence, draws=50, tune=50, chains=2, seed=3)
    print(json.dumps({"stats": compile_cache.STATS, "points": points, "mu": fit.posterior["mu"].values.tolist()}))
""")


@pytest.mark.slow
def test_compiled_code_does_not_depend_on_the_cache_state(tmp_path):
    """On empty caches a process compiles every op fresh (and LLVM may inline them into the model);
    later processes load them from the caches. With PyTensor's default fast-math flags the two
    computed bitwise-different gradients for count and patient-level data, so the same seed gave
    other draws on a machine's first run; msc_bayes compiles without them. An expand wrapper a helper
    compiled (while this process compiled logp: ``compile_model``'s `expand_elsewhere`) is the same code."""
    assert compile_cache.NUMBA_FASTMATH is False  # what every compile of msc_bayes sets
    data = tmp_path / "data"
    data.mkdir()
    (data / "edss.csv").write_text("study,arm,timepoint_months,n,improved,stable,worsened,threshold\n"
                                   "s1,a,12,10,3,5,2,0.5\ns2,a,12,12,4,,,0.5\n")
    (data / "patients.csv").write_text("study,arm,patient,timepoint_months,change\n"
                                       "s3,a,p1,12,-0.5\ns3,a,p2,12,0\ns3,a,p3,12,0.5\ns3,a,p4,12,0\n")

    def child(cache: Path, expand: str = "here") -> dict:
        flags = ",".join(f for f in [os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={cache}"] if f)
        env = {**os.environ, "PYTENSOR_FLAGS": flags, "NUMBA_CACHE_DIR": str(cache / "numba_user"),
               compile_cache.DIR_VARIABLE: str(cache / "msc_bayes")}
        out = subprocess.run([sys.executable, "-c", _STATE_CHILD, str(data), expand], capture_output=True,
                             text=True, check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = child(tmp_path / "empty_cache"), child(tmp_path / "empty_cache")
    split = child(tmp_path / "another_empty_cache", "helper")
    assert cold["stats"]["miss"] == 1 and warm["stats"]["hit"] == 1
    assert cold["stats"]["expand_elsewhere"] == 0
    assert split["stats"]["miss"] == 1 and split["stats"]["expand_elsewhere"] == 1  # loaded as the helper stored it
    assert cold["points"] == warm["points"] == split["points"]  # logp and gradient, bit for bit
    assert cold["mu"] == warm["mu"] == split["mu"]  # the draws: what the expand wrapper writes


@pytest.mark.slow
def test_a_disk_that_refuses_the_entry_costs_only_the_cache(tmp_path, monkeypatch):
    import nutpie
    from numba.core.caching import FunctionCache

    save = FunctionCache._save_overload

    def refuse(self, sig, data):  # our entries only (PyTensor's own numba cache is not ours to handle)
        if type(self).__module__ == compile_cache.__name__:
            raise OSError(28, "No space left on device")
        return save(self, sig, data)

    monkeypatch.setattr(FunctionCache, "_save_overload", refuse)
    _fresh_cache(monkeypatch, tmp_path)  # a miss, and a key numba has no files for: a real compile
    environment = compile_cache._environment
    monkeypatch.setattr(compile_cache, "_environment", lambda: [*environment(), str(tmp_path)])
    before = dict(compile_cache.STATS)
    # as if a helper compiled the expand wrapper meanwhile and the disk refused it there too: nothing
    # stored, so this process compiles it after the wait
    waited = []
    model = inference.build(PLAIN, _evidence(tmp_path))[0]
    compiled = compile_cache.compile_model(model, expand_elsewhere=lambda: waited.append(True))
    assert waited == [True] and compile_cache.STATS["expand_elsewhere"] == before["expand_elsewhere"]
    assert compile_cache.STATS["miss"] == before["miss"] + 1
    assert compile_cache.STATS["unsaved"] == before["unsaved"] + 2  # both wrappers
    fit = nutpie.sample(compiled, draws=50, tune=50, chains=2, seed=3, progress_bar=False)
    assert np.isfinite(fit.posterior["mu"].values).all()


# --------------------------------------------------------------------------------------
# Compiling ahead in a helper process (inference.precompile)
# --------------------------------------------------------------------------------------


def _three_structures(tmp_path):
    """Three specs of different compiled form (all missing from a fresh cache)."""
    ev = _evidence(tmp_path)
    specs = [PLAIN, PLAIN.replace(priors={"tau": Prior("HalfCauchy", {"beta": 0.5})}),
             PLAIN.replace(priors={"mu": Prior("StudentT", {"nu": 4, "mu": 0, "sigma": 1})})]
    return specs, ev


@pytest.mark.slow
def test_precompile_hands_all_but_the_first_missing_model_to_a_helper(tmp_path, monkeypatch):
    _fresh_cache(monkeypatch, tmp_path)
    specs, ev = _three_structures(tmp_path)
    before = dict(compile_cache.STATS)
    handed = inference.precompile([(s, ev) for s in specs])
    assert handed == [specs[1].name, specs[2].name]
    assert inference.precompile([(s, ev) for s in specs]) == []  # already built / handed over: nothing twice
    # the third is still queued behind the second: taken back and compiled here
    inference.compiled(specs[2], ev)
    # the second is the helper's: wait for it, then load its machine code from the disk cache
    inference.compiled(specs[1], ev)
    inference.compiled(specs[0], ev)  # the first was never handed over
    assert compile_cache.STATS["miss"] - before["miss"] == 2
    assert compile_cache.STATS["hit"] - before["hit"] == 1
    # the helper's model samples like any other
    fit = inference.fit(specs[1], ev, draws=50, tune=50, chains=2, seed=3)
    assert np.isfinite(fit.posterior["tau"].values).all()


def test_a_model_compiled_here_hands_its_expand_wrapper_to_a_helper_only_beside_an_idle_core(tmp_path, monkeypatch):
    from msc_bayes.inference import engine, helper

    _fresh_cache(monkeypatch, tmp_path)
    eng = engine.Engine()
    monkeypatch.setattr(eng.helper, "start", eng.helper.jobs.update)  # handed over, no process started
    ev = _evidence(tmp_path)
    key = engine.structure_key(PLAIN, ev)
    cache_key = eng._built(PLAIN, ev, key)[2]
    idle = [False]
    monkeypatch.setattr(engine, "core_idle", lambda: idle[0])
    assert eng._expand_elsewhere(PLAIN, ev, key, cache_key) is None and not eng.helper.jobs
    idle[0] = True
    assert eng._expand_elsewhere(PLAIN, ev, key, None) is None  # no disk cache: nothing to hand over
    with monkeypatch.context() as m:
        m.setattr(compile_cache, "is_stored", lambda k: True)
        assert eng._expand_elsewhere(PLAIN, ev, key, cache_key) is None  # stored: nothing to compile
    eng.helper.jobs["other"] = helper.HelperJob(PLAIN, ev)  # the helper is busy with another model
    assert eng._expand_elsewhere(PLAIN, ev, key, cache_key) is None
    del eng.helper.jobs["other"]
    wait = eng._expand_elsewhere(PLAIN, ev, key, cache_key)
    (job,) = eng.helper.jobs.values()
    assert job.part == helper.EXPAND and job.spec is PLAIN and job.state == "queued"
    wait()  # not started yet: taken back, so this process compiles it itself
    assert job.state == "taken" and not eng.helper.jobs
    # precompile: the first missing model compiles here, its expand wrapper first in the helper
    specs, ev = _three_structures(tmp_path)
    assert eng.precompile([(s, ev) for s in specs]) == [specs[1].name, specs[2].name]
    assert [(j.spec, j.part) for j in eng.helper.jobs.values()] == [
        (specs[0], helper.EXPAND), (specs[1], helper.MODEL), (specs[2], helper.MODEL)]
    assert eng._expand_elsewhere(specs[0], ev, engine.structure_key(specs[0], ev), "k") is not None


def test_precompile_hands_nothing_over_without_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(compile_cache.ENV_SWITCH, "0")
    specs, ev = _three_structures(tmp_path)
    started = []
    monkeypatch.setattr(inference.ENGINE.helper, "start", lambda jobs: started.append(jobs))
    assert inference.precompile([(s, ev) for s in specs]) == []
    assert started == [] and not inference.ENGINE.helper.jobs
