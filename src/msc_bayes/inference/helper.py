"""Compiling ahead in a helper process: models handed over by :meth:`Engine.precompile
<msc_bayes.inference.engine.Engine.precompile>` are compiled into the on-disk compile cache by
one Python process at a time, which ends with the process that started it, however that ends.

Each helper process gets one job ((spec, evidence, part), pickled) over its stdin, which stays open
until the helper ends; the helper exits as soon as that pipe closes, i.e. whenever its parent
ends (an exception, Ctrl-C, SIGTERM, even SIGKILL), with PR_SET_PDEATHSIG as a second line on
Linux, so nothing is left running or on disk.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msc_bayes.evidence import Evidence

#: The helper's command line (argv[1]: this process's pid); its job arrives on stdin.
_HELPER_COMMAND = "import sys; from msc_bayes.inference.helper import _helper_main; _helper_main(int(sys.argv[1]))"
#: The helper's exit status when its parent ended first (its stdin closed, or it started orphaned).
HELPER_ORPHANED = 3


#: A job's part: the whole model, or only its expand wrapper (the parent compiles the rest meanwhile).
MODEL, EXPAND = "model", "expand"


@dataclass
class HelperJob:
    spec: object
    evidence: Evidence
    part: str = MODEL
    state: str = "queued"  # queued -> running -> done, or queued -> taken (compiled by this process)
    done: threading.Event = field(default_factory=threading.Event)


class Helper:
    """The helper processes of one engine: the jobs handed over (structure key -> `HelperJob`),
    the processes running now, and whether this process is exiting (then no helper starts)."""

    def __init__(self) -> None:
        self.jobs: dict[str, HelperJob] = {}
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen] = []  # under _lock
        self._stopped = False
        self._stop_registered = False

    def start(self, jobs: dict[str, HelperJob]) -> None:
        """Hand `jobs` over: a thread compiles them one after another, each in a new helper process."""
        self.jobs.update(jobs)
        with self._lock:
            if not self._stop_registered:
                atexit.register(self.stop)
                self._stop_registered = True
        threading.Thread(target=self._run, args=(list(jobs.values()),), daemon=True, name="msc_bayes-precompile").start()

    def _run(self, jobs: list[HelperJob]) -> None:
        """Compile the jobs one after another, each in a new Python process (skipping any taken back)."""
        for job in jobs:
            with self._lock:
                if job.state == "taken":
                    continue
                job.state = "running"
            try:
                self._compile_in_helper(job)
            finally:
                job.state = "done"
                job.done.set()

    def _compile_in_helper(self, job: HelperJob) -> None:
        """One helper process for one job: the job goes over the helper's stdin, which stays open
        until the helper ends; the helper exits as soon as it closes, so when this process ends,
        however it ends (an exception, Ctrl-C, SIGTERM, SIGKILL), its helper ends with it and
        nothing is left on disk."""
        payload = pickle.dumps((job.spec, job.evidence, job.part))
        with self._lock:  # stop() sees every helper started, and none starts after it
            if self._stopped:
                return
            process = subprocess.Popen([sys.executable, "-c", _HELPER_COMMAND, str(os.getpid())],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._processes.append(process)
        try:
            try:
                process.stdin.write(payload)
                process.stdin.flush()
            except BrokenPipeError:  # it ended before reading its job: compiled() compiles the model here
                pass
            process.wait()  # reaps it: no zombie
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:  # unwritten bytes of a job it never read
                pass
            with self._lock:
                self._processes.remove(process)

    def take(self, key: str, compile_here: Callable[[object, Evidence], object]) -> None:
        """A model handed to the helper: take it back if not started, else wait until it is stored,
        compiling here meanwhile (`compile_here(spec, evidence)`) the helper's models it has not
        started (rather than idling)."""
        job = self._claim(key)
        if job is None:
            return
        while not job.done.is_set():
            with self._lock:
                queued = [j for j in self.jobs.values() if j.state == "queued" and j.part == MODEL]
            if not queued:
                break
            compile_here(queued[0].spec, queued[0].evidence)  # takes it back from the helper, compiles it here
        job.done.wait()

    def wait(self, key: str) -> None:
        """A job handed over: take it back if not started (the caller then does it), else wait until it ends."""
        job = self._claim(key)
        if job is not None:
            job.done.wait()

    def _claim(self, key: str) -> HelperJob | None:
        """The job of `key`, no longer the helper's to hand out; None if there is none or it had not
        started (then it is taken back: the caller does it)."""
        job = self.jobs.pop(key, None)
        if job is None:
            return None
        with self._lock:
            if job.state == "queued":
                job.state = "taken"
                return None
        return job

    def busy(self) -> bool:
        """Is a job queued or running?"""
        with self._lock:
            return any(j.state in ("queued", "running") for j in self.jobs.values())

    def stop(self) -> None:
        """A helper still compiling when this process exits is stopped (and reaped), and no other
        starts. (A process killed without running this still ends its helper: its stdin closes.)"""
        with self._lock:
            self._stopped = True
            processes = list(self._processes)
        for process in processes:
            process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not yet delivered
                pass


# --------------------------------------------------------------------------------------
# In the helper process
# --------------------------------------------------------------------------------------


def _helper_main(parent_pid: int) -> None:
    """In the helper process: read one (spec, evidence, part) from stdin, build the model and compile it
    (or only its expand wrapper) into the on-disk cache; exit at once when the parent ends (stdin
    reaches end of file)."""
    _exit_with_parent(parent_pid)
    from msc_bayes.inference.compile_cache import compile_expand, compile_model
    from msc_bayes.inference.engine import build

    try:
        spec, evidence, part = pickle.load(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError):  # the parent ended before handing over the whole job
        os._exit(HELPER_ORPHANED)
    watch = threading.Thread(target=_exit_at_end_of, args=(sys.stdin.buffer,), daemon=True, name="msc_bayes-parent")
    watch.start()
    (compile_expand if part == EXPAND else compile_model)(build(spec, evidence)[0])


def _exit_at_end_of(stream) -> None:
    """The parent writes nothing after the job, so reading returns when the pipe closes: the parent ended."""
    stream.read()
    os._exit(HELPER_ORPHANED)


def _exit_with_parent(parent_pid: int) -> None:
    """The helper ends with its parent: Ctrl-C ends it without a traceback (a terminal sends SIGINT
    to the whole process group) and, on Linux, the kernel kills it when the parent's thread that
    started it ends (PR_SET_PDEATHSIG: that thread waits for the helper, so only the parent's death
    ends it early). The stdin watcher of :func:`_helper_main` is what works everywhere."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the stdin watcher alone
            pass
    if os.getppid() != parent_pid:  # the parent ended before the line above took effect
        os._exit(HELPER_ORPHANED)
