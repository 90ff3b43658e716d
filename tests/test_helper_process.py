"""The compile helper of inference.precompile ends with the process that started it, however that ends."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import psutil  # installed with the test extra (dask[distributed] depends on it)
import pytest

from msc_bayes.evidence import load_evidence
from msc_bayes.inference import compile_cache
from msc_bayes.inference.helper import _HELPER_COMMAND, HELPER_ORPHANED, MODEL
from msc_bayes.spec import spec_from_dict

PLAIN = spec_from_dict({"outcome": "edss_change", "covariates": []})
#: How soon a helper must be gone once its parent is (it takes ~100 s to compile on empty caches).
GONE_WITHIN = 5.0


def _evidence_folder(path, values=(-0.3, 0.1, -0.5)):
    folder = path / "data"
    folder.mkdir(parents=True)
    rows = "".join(f"s{i},a,12,{20 + 5 * i},{v!r},0.15\n" for i, v in enumerate(values))
    (folder / "edss.csv").write_text("study,arm,timepoint_months,n,change_mean,change_se\n" + rows)
    return folder


def _cold_env(tmp_path) -> dict:
    """Empty PyTensor and numba caches (nothing stored: precompile hands over), and a temp folder of its own."""
    cache, tmp = tmp_path / "empty_cache", tmp_path / "tmp"
    tmp.mkdir()
    flags = ",".join(f for f in [os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={cache}"] if f)
    return {**os.environ, "PYTENSOR_FLAGS": flags, "NUMBA_CACHE_DIR": str(cache / "numba_user"), "TMPDIR": str(tmp)}


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _busy(process: psutil.Process, seconds: float = 3.0) -> None:
    """Wait until it has used `seconds` of CPU: started, read its job and is compiling."""
    _until(lambda: sum(process.cpu_times()[:2]) >= seconds, 120, "the helper compiles")


def _gone(process: psutil.Process) -> bool:
    """Ended (a zombie has ended: where PID 1 does not reap orphans, as in some containers, it stays one)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _helper_of(parent: subprocess.Popen) -> psutil.Process:
    me = psutil.Process(parent.pid)
    return _until(lambda: next((c for c in me.children() if "_helper_main" in " ".join(c.cmdline())), None),
                  60, "the helper starts")


def _end(parent: subprocess.Popen, helper: psutil.Process | None) -> None:
    """What a failed test leaves running is killed."""
    if parent.poll() is None:
        parent.kill()
    parent.communicate()  # reaps it, closes its pipes
    if helper is not None and not _gone(helper):
        helper.kill()


_PARENT = textwrap.dedent("""
    import sys
    from msc_bayes import inference
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import Prior, spec_from_dict

    plain = spec_from_dict({"outcome": "edss_change", "covariates": []})
    specs = [plain, plain.replace(priors={"tau": Prior("HalfCauchy", {"beta": 0.5})})]
    evidence = load_evidence(sys.argv[1])
    print(len(inference.precompile([(s, evidence) for s in specs])), flush=True)
    inference.compiled(specs[0], evidence)  # compiles the first model here meanwhile (long on empty caches)
""")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_parents_helper_ends_and_leaves_nothing_behind(tmp_path, signum):
    # neither signal runs the parent's atexit handler: the helper must notice by itself
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(_evidence_folder(tmp_path))],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_cold_env(tmp_path))
    helper = None
    try:
        assert parent.stdout.readline().strip() == "1"  # the second model was handed over
        helper = _helper_of(parent)
        _busy(helper)
        parent.send_signal(signum)
        assert parent.wait(timeout=30) == -signum
        _until(lambda: _gone(helper), GONE_WITHIN, "the helper ends")
    finally:
        _end(parent, helper)
    tmp = tmp_path / "tmp"
    assert list(tmp.glob("msc_bayes-precompile-*")) == [] and list(tmp.rglob("job.pkl")) == []


_SAMPLING_PARENT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, however pytest started
    from msc_bayes import inference
    from msc_bayes.evidence import load_evidence
    from msc_bayes.spec import Prior, spec_from_dict

    plain = spec_from_dict({"outcome": "edss_change", "covariates": []})
    known, new = load_evidence(sys.argv[1]), load_evidence(sys.argv[2])
    inference.compiled(plain, known)
    models = [(plain, known), (plain.replace(priors={"tau": Prior("HalfCauchy", {"beta": 0.5})}), new),
              (plain.replace(priors={"mu": Prior("StudentT", {"nu": 4, "mu": 0, "sigma": 1})}), new)]
    print(len(inference.precompile(models)), flush=True)  # the third goes to the helper
    while True:  # as a report samples one model after another
        inference.fit(plain, known, draws=100_000, tune=500, chains=2)
""")


@pytest.mark.slow
def test_ctrl_c_while_sampling_ends_the_parent_and_its_helper(tmp_path):
    # nutpie's blocking sample() answers Ctrl-C with the draws so far, as if done: the parent went on
    # (to its next model), and so did the helper
    new = _evidence_folder(tmp_path / "new", (0.2, -0.4, -0.1, 0.3))
    # a compile cache of its own: the two other structures are missing (the same structure on other
    # data would not be: it loads); PyTensor's and numba's usual caches, so the first model is quick
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), compile_cache.DIR_VARIABLE: str(tmp_path / "cache")}
    (tmp_path / "tmp").mkdir()
    parent = subprocess.Popen([sys.executable, "-c", _SAMPLING_PARENT, str(_evidence_folder(tmp_path)), str(new)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    helper = None
    try:
        assert parent.stdout.readline().strip() == "1"
        helper = _helper_of(parent)
        _busy(helper)  # the parent samples meanwhile
        parent.send_signal(signal.SIGINT)
        try:
            _, err = parent.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not end the parent")
        _until(lambda: _gone(helper), GONE_WITHIN, "the helper ends")
    finally:
        _end(parent, helper)
    assert "KeyboardInterrupt" in err
    assert list((tmp_path / "tmp").glob("msc_bayes-precompile-*")) == []


@pytest.mark.slow
def test_a_helper_whose_stdin_closes_exits_at_once(tmp_path):
    # its parent (this process) lives on: what ends it is the end of its stdin, not Linux's PDEATHSIG
    job = pickle.dumps((PLAIN, load_evidence(_evidence_folder(tmp_path)), MODEL))
    helper = subprocess.Popen([sys.executable, "-c", _HELPER_COMMAND, str(os.getpid())],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=_cold_env(tmp_path))
    try:
        helper.stdin.write(job)
        helper.stdin.flush()
        _busy(psutil.Process(helper.pid))
        helper.stdin.close()
        assert helper.wait(timeout=GONE_WITHIN) == HELPER_ORPHANED
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
