"""Progress of long work, for the person waiting: each model's sampling with the time left, and the
sensitivity refits counted up (3/11 ...).

The layers below only report, and only when a :class:`Progress` is active (``with
progress.about(label):``, as the report does around each model's fit and its sensitivity step):

- :func:`meter` gives a fit that starts sampling a :class:`Meter` for its draws (nutpie calls it
  from a sampler thread with the draws done and the total, chains x (tune + draws));
- :func:`scenario` marks a sweep's scenario; if the scenario samples, its meter starts with the line
  ``    <label>: sensitivity refit 3/11 (<scenario>) ...`` (a scenario answered from a fit already
  made, by reweighting or by the exact oracle samples nothing and prints nothing).

Two kinds: :class:`TerminalProgress`, a rich bar per sampling run (draws done, time elapsed, time
left) that disappears when the run ends; :class:`LogProgress`, concise lines for a log or CI, at most
one per :data:`PROGRESS_LINE_SECONDS` during a fit (``    edss_change: sampling 45% (about 40 s
left)``), so a fit shorter than that adds no line. Nothing here changes what is sampled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from msc_bayes.errors import one_line

#: At most one progress line per this many seconds of a fit in a log (none in a shorter fit).
PROGRESS_LINE_SECONDS = 20.0
#: How often nutpie reports a fit's draws to its meter, in milliseconds.
PROGRESS_RATE_MS = 250

_ACTIVE: ContextVar[Progress | None] = ContextVar("msc_bayes_progress", default=None)


class Meter(Protocol):
    """One sampling run's progress: ``update`` may be called from any thread; ``close`` once, at the end."""

    def update(self, done: int, total: int) -> None: ...

    def close(self) -> None: ...


class Progress:
    """Where progress goes: ``line`` writes a line, ``_meter`` makes one sampling run's :class:`Meter`.

    ``label`` is what the work is about (a model's key), ``steps`` what a scenario of it is called
    ("sensitivity refit"); both set by :meth:`about`.
    """

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.log = log
        self.label = ""
        self.steps = "scenario"
        self._scenario = ""  # the running scenario: "3/11 (carry-over none)"

    def line(self, text: str) -> None:
        self.log(text)

    @contextmanager
    def about(self, label: str, *, steps: str = "scenario") -> Iterator[Progress]:
        """Make this the active progress for the block, about `label` (shown on one line)."""
        saved = (self.label, self.steps, self._scenario)
        self.label, self.steps, self._scenario = one_line(label), steps, ""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)
            self.label, self.steps, self._scenario = saved

    def meter(self) -> Meter:
        """The meter of a sampling run that starts now (a scenario's run first says which refit it is)."""
        name = self.label
        if self._scenario:
            name = f"{self.label}: {self.steps} {self._scenario}"
            self.line(f"    {name} ...")
        return self._meter(name)

    @contextmanager
    def scenario(self, i: int, n: int, name: str) -> Iterator[None]:
        """Scenario `i` of `n` runs in this block: a sampling run in it is announced as that refit."""
        saved = self._scenario
        self._scenario = f"{i}/{n} ({one_line(name)})"
        try:
            yield
        finally:
            self._scenario = saved

    def _meter(self, name: str) -> Meter:
        raise NotImplementedError


class LogProgress(Progress):
    """Concise lines for a log: during a fit, at most one line per `every` seconds, the first after `every`."""

    def __init__(self, log: Callable[[str], None] = print, *, every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(log)
        self.every = float(PROGRESS_LINE_SECONDS if every is None else every)  # None: the constant, read now
        self.clock = clock

    def _meter(self, name: str) -> Meter:
        return _LogMeter(self, name)


class _LogMeter:
    def __init__(self, progress: LogProgress, name: str) -> None:
        self.progress, self.name = progress, name
        self.start = self.last = progress.clock()

    def update(self, done: int, total: int) -> None:
        now = self.progress.clock()
        if total <= 0 or done >= total or now - self.last < self.progress.every:
            return
        self.last = now
        self.progress.line(f"    {self.name}: sampling {100 * done // total}% ({time_left(now - self.start, done, total)})")

    def close(self) -> None:
        pass


class TerminalProgress(Progress):
    """A rich bar per sampling run on a terminal: name, bar, draws done/total, time elapsed and time left.

    Lines go to `log`; the bar is drawn on `console` (a ``rich.console.Console``; default: standard
    output) and removed when the run ends.
    """

    def __init__(self, log: Callable[[str], None] = print, *, console=None) -> None:
        from rich.console import Console

        super().__init__(log)
        self.console = console if console is not None else Console()

    def _meter(self, name: str) -> Meter:
        return _RichMeter(self.console, name)


class _RichMeter:
    def __init__(self, console, name: str) -> None:
        from rich import progress as rp

        self.bar = rp.Progress(rp.TextColumn("{task.description}", markup=False), rp.BarColumn(),
                               rp.MofNCompleteColumn(), rp.TextColumn("draws"), rp.TimeElapsedColumn(),
                               rp.TextColumn("elapsed,"), rp.TimeRemainingColumn(), rp.TextColumn("left"),
                               console=console, transient=True, refresh_per_second=4,
                               redirect_stdout=False, redirect_stderr=False)  # ~2 ms a redraw
        self.task = self.bar.add_task(name, total=None)
        self.lock = threading.Lock()
        self.closed = False
        self.bar.start()

    def update(self, done: int, total: int) -> None:
        with self.lock:
            if not self.closed:
                self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.bar.stop()


def time_left(elapsed: float, done: int, total: int) -> str:
    """'about 40 s left' from the rate so far; 'time left not known yet' before the first draw."""
    if done <= 0:
        return "time left not known yet"
    left = elapsed * (total - done) / done
    if left < 90:
        return f"about {max(1, round(left))} s left"
    return f"about {round(left / 60)} min left"


# --------------------------------------------------------------------------------------
# What the layers below call
# --------------------------------------------------------------------------------------


def active() -> Progress | None:
    """The progress of the running block (:meth:`Progress.about`), or None."""
    return _ACTIVE.get()


def meter() -> Meter | None:
    """A meter for the sampling run that starts now, or None when no progress is active."""
    progress = _ACTIVE.get()
    return progress.meter() if progress is not None else None


@contextmanager
def scenario(i: int, n: int, name: str) -> Iterator[None]:
    """Scenario `i` of `n` runs in this block: a sampling run in it is announced as that refit."""
    progress = _ACTIVE.get()
    if progress is None:
        yield
        return
    with progress.scenario(i, n, name):
        yield
