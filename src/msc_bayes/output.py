"""Run folders: written whole or not at all, and never at the cost of anything a user has.

The rules (see README, "Output folders"):

- msc_bayes deletes, moves or replaces only what it created itself, and says so first.
- A run is written into a staging folder ``.<name>.<token>.partial`` beside its target and
  published by one rename when complete. A default target (``reports/run-<UTC>-<token>``) is
  new by construction; the rename never replaces anything (``RENAME_NOREPLACE`` where the
  system has it, a check otherwise).
- An explicit target must be new or an empty folder, or an earlier run folder (recognised by
  the marker :data:`MARKER`, which lists every file the run wrote with its SHA-256) when
  ``overwrite`` is given. The old run stays intact and visible until the new one is complete;
  then the two are swapped in one step (``RENAME_EXCHANGE``) or, where the system lacks it,
  the old one is first renamed to a visible ``<name>.previous-<token>``. A target that holds a
  file the marker does not list, or a changed file, is never replaced.
- Nothing is ever written inside a protected folder (the evidence) or replaces a folder that
  contains one.
- On failure, a staging folder that holds results (``*.nc`` posteriors) is kept under a visible
  ``<name>.failed`` name with a README; one that holds none is removed. Staging folders left by
  killed runs are found by the next run writing beside them (their process is gone) and are
  treated the same way, with a message.
- Folders are created with ordinary permissions (0777 less the umask), not ``mkdtemp``'s 0700.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from msc_bayes.errors import OutputError

#: Written last into every complete run folder: what wrote it and every file it wrote.
MARKER = ".msc_bayes-run.json"
#: Written first into every staging folder: which process owns it and where it goes.
PARTIAL_MARKER = ".msc_bayes-partial.json"
#: What kinds of run folder the package writes (the ``kind`` of :data:`MARKER`).
KINDS = ("report", "fit")
#: The names each kind of run writes: a marker listing any other name (a forged one, say) does not
#: make a folder replaceable, so --overwrite can never remove a file the package did not write.
WRITES = {"fit": re.compile(r"posterior\.nc|summary\.csv"),
          "report": re.compile(r"[^/]+\.nc|[^/]+_(?:summary|diagnostics|study_estimates|ppc|sensitivity|psense)\.csv"
                               r"|figures/[^/]+_[a-z_]+\.png|index\.html|report\.md|run\.json|summary_of_findings\.csv")}

_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


#: Stops asked for by a signal (the exception each one raises), recorded by the CLI's handlers.
#: Python swallows an exception that a handler raises inside a finalizer ("Exception ignored in
#: ..."; seen with llvmlite's), so a run checks before publishing that nobody stopped it meanwhile.
_STOPS: list[type[BaseException]] = []


def request_stop(exception: type[BaseException]) -> None:
    """Record that a signal asked the run to stop (raise `exception` at the next check)."""
    _STOPS.append(exception)


def clear_stop_requests() -> None:
    _STOPS.clear()


def _raise_if_stopped() -> None:
    if _STOPS:
        raise _STOPS[0]()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then take their usual course.

    For writes that must not be cut short: a KeyboardInterrupt inside netCDF/HDF5 leaves its
    file lock held, and the process then hangs at exit. In the main thread only (elsewhere
    Python delivers no signals anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def default_target(kind: str, name: str = "", root: str | Path = "reports",
                   now: dt.datetime | None = None) -> Path:
    """``<root>/<kind prefix>[-<name>]-<UTC second>-<random token>``: no two runs share it."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    prefix = {"report": "run", "fit": "fit"}[kind] + (f"-{name}" if name else "")
    return Path(root) / f"{prefix}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_target(target: str | Path, *, overwrite: bool = False, protect: Sequence[str | Path] = ()) -> Path:
    """The target as a Path, or an OutputError saying why it cannot be written (before any work).

    Allowed: a path that does not exist, an empty folder, or (with `overwrite`) an earlier
    msc_bayes run folder that holds exactly the files its marker lists. Never a protected
    folder, a folder inside one, or a folder that contains one.
    """
    target = Path(target)
    _check_protected(target, protect)
    if not os.path.lexists(target):
        return target
    if target.is_symlink():
        raise OutputError(f"{target} is a symbolic link: nothing was written. Give the folder itself, "
                          "or a new path, as the output folder.")
    if not target.is_dir():
        raise OutputError(f"{target} exists and is not a folder: nothing was written. "
                          "Choose a new folder for the output.")
    if not any(target.iterdir()):
        return target
    marker = read_marker(target)
    if marker is None:
        raise OutputError(f"{target} exists, is not empty and is not an msc_bayes run folder: nothing was written "
                          "and nothing in it was touched. Choose a new or empty folder.")
    if not overwrite:
        raise OutputError(f"{target} holds an earlier msc_bayes {marker.get('kind', 'run')} "
                          f"(created {marker.get('created_utc', '?')}): nothing was written. Add --overwrite to "
                          "replace it (it stays as it is until the new run is complete), or choose a new folder.")
    foreign = foreign_files(target, marker)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(f"{target} is an earlier msc_bayes run folder, but it holds files msc_bayes did not write "
                          f"or that were changed since ({shown}): it will not be replaced. Move them out or choose "
                          "a new folder.")
    return target


def _check_protected(target: Path, protect: Sequence[str | Path]) -> None:
    resolved = _resolve(target)
    for folder in protect:
        guarded = _resolve(Path(folder))
        if resolved == guarded or guarded in resolved.parents:
            raise OutputError(f"{target} is inside the evidence folder {folder}: msc_bayes writes nothing there. "
                              "Choose an output folder outside it.")
        if resolved in guarded.parents:
            raise OutputError(f"{target} contains the evidence folder {folder}: it will not be used as an output "
                              "folder. Choose another one.")


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop (RuntimeError before Python 3.13)
        raise OutputError(f"{path} cannot be resolved ({exc}): nothing was written. Choose another path.") from exc


def read_marker(folder: Path) -> dict | None:
    """The run marker of `folder` (a dict with kind, created_utc, files), or None if it has none."""
    file = folder / MARKER
    try:
        if file.is_symlink() or not file.is_file():
            return None
        marker = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("kind") not in KINDS or not isinstance(marker.get("files"), dict):
        return None
    if not all(isinstance(f, str) and WRITES[marker["kind"]].fullmatch(f) for f in marker["files"]):
        return None  # a marker naming a file this kind of run never writes was not written by msc_bayes
    return marker


def foreign_files(folder: Path, marker: dict) -> list[str]:
    """Entries of `folder` that its marker does not list, or whose content changed since."""
    listed: dict[str, str] = marker["files"]
    dirs = {str(Path(f).parent) for f in listed} - {"."}
    foreign = []
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if rel in (MARKER, PARTIAL_MARKER):
            continue
        if path.is_dir() and not path.is_symlink() and rel in dirs:
            continue
        if rel not in listed or path.is_symlink() or not path.is_file() or _sha256(path) != listed[rel]:
            foreign.append(rel)
    return foreign


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def run_folder(target: str | Path, *, kind: str, overwrite: bool = False, protect: Sequence[str | Path] = (),
               log: Callable[[str], None] = print) -> Iterator[Path]:
    """Yield a staging folder for a run bound for `target`; publish it when the block succeeds.

    Checks the target first (:func:`check_target`) and deals with staging folders that killed
    runs left beside it. On an exception the staging folder is kept as ``<name>.failed`` if it
    holds posteriors, else removed; the exception propagates.
    """
    target = check_target(target, overwrite=overwrite, protect=protect)
    _make_parent(target)
    recover_stale(target.parent, log=log)
    if os.path.lexists(target) and read_marker(target) is not None:
        log(f"{target} holds an earlier msc_bayes run: it is replaced once the new run is complete")
    staging = _make_staging(target, kind)
    try:
        yield staging
        _raise_if_stopped()  # a Ctrl-C swallowed on the way is still a Ctrl-C: nothing is published
        write_marker(staging, kind)
        publish(staging, target, overwrite=overwrite, protect=protect, log=log)
    except BaseException as exc:
        kept = keep_or_remove(staging, target, reason=f"{type(exc).__name__}: {exc}", log=log) \
            if staging.exists() else None
        if isinstance(exc, OSError):  # a full disk, a failed rename: said plainly, not as a traceback
            where = f"the posteriors sampled so far are in {kept}" if kept else "nothing was kept"
            raise OutputError(f"writing the run folder {target} failed ({exc.strerror or exc}): {where}; "
                              "anything that was at that path before is unchanged.") from exc
        raise


def _make_parent(target: Path) -> None:
    blocking = next((p for p in reversed(target.parents) if os.path.lexists(p) and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(f"{blocking} is not a folder, so {target} cannot be created there. Nothing was written.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target.parent} for {target}: {exc.strerror or exc}. "
                          "Nothing was written.") from exc


def _make_staging(target: Path, kind: str) -> Path:
    for _ in range(100):
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            staging.mkdir(mode=0o777)  # exclusive; ordinary permissions (umask applies)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise OutputError(f"the folder name {target.name!r} is too long for this file system (its staging "
                                  f"folder adds {len(staging.name) - len(target.name)} characters). Nothing was "
                                  "written; choose a shorter name.") from exc
            raise OutputError(f"cannot write in {target.parent}: {exc.strerror or exc}. Nothing was written; "
                              "choose a writable output folder.") from exc
        try:
            _write_json(staging / PARTIAL_MARKER, {"kind": kind, "target": target.name, "pid": os.getpid(),
                                                   "host": socket.gethostname(), "created_utc": _now()})
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)  # created just now, by us
            raise OutputError(f"cannot write in {target.parent}: {exc.strerror or exc}. Nothing was written.") from exc
        return staging
    raise OutputError(f"could not create a unique staging folder beside {target}")  # pragma: no cover


def write_marker(folder: Path, kind: str) -> None:
    """The run marker: kind, time, version and the SHA-256 of every file written (last, so a folder
    with a marker is complete)."""
    from msc_bayes import __version__

    files = {str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in (MARKER, PARTIAL_MARKER)}
    _write_json(folder / MARKER, {"kind": kind, "created_utc": _now(), "msc_bayes": __version__, "files": files})


def publish(staging: Path, target: Path, *, overwrite: bool, protect: Sequence[str | Path] = (),
            log: Callable[[str], None] = print) -> None:
    """Move the complete `staging` folder to `target`; an earlier run there is swapped out, then removed."""
    check_target(target, overwrite=overwrite, protect=protect)  # again: the target may have changed meanwhile
    if not os.path.lexists(target):
        rename_noreplace(staging, target)
    elif read_marker(target) is None:  # an empty folder (checked above): fill it, keep the user's folder itself
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == MARKER):  # the marker last
            if entry.name != PARTIAL_MARKER:
                rename_noreplace(entry, target / entry.name)
        (staging / PARTIAL_MARKER).unlink()
        staging.rmdir()
    else:
        log(f"replacing the earlier msc_bayes run folder {target} (the new run is complete)")
        old = exchange(staging, target)
        (target / PARTIAL_MARKER).unlink(missing_ok=True)
        remove_replaced(old, target, log=log)
    (target / PARTIAL_MARKER).unlink(missing_ok=True)  # published: no longer a staging folder


def remove_replaced(old: Path, target: Path, *, log: Callable[[str], None] = print) -> None:
    """Remove an earlier run that the run now at `target` replaced. Marked first, so that a run
    killed meanwhile leaves a folder the next run recognises and removes; a removal that fails
    leaves what is left under a visible name, said (the new run stands either way)."""
    try:
        _write_json(old / PARTIAL_MARKER, {"kind": "replaced", "target": target.name, "pid": os.getpid(),
                                           "host": socket.gethostname(), "created_utc": _now()})
        for entry in sorted(old.iterdir()):
            if entry.name != PARTIAL_MARKER:
                _remove_entry(entry)
        (old / PARTIAL_MARKER).unlink()
        old.rmdir()
    except OSError as exc:
        where = old
        with contextlib.suppress(OSError):
            where = _rename_to_free_name(old, target.with_name(f"{target.name}.previous"))
        log(f"warning: {target} holds the new run, but the earlier run's files could not all be removed "
            f"({exc.strerror or exc}): what is left of them is in {where}")


def _remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def exchange(staging: Path, target: Path) -> Path:
    """Put `staging` at `target` and return where the old `target` now is (never a hidden name
    while neither is in place)."""
    try:
        _renameat2(staging, target, _RENAME_EXCHANGE)
        return staging  # the old run now sits under the staging name
    except NotImplementedError:
        pass
    old = target.with_name(f"{target.name}.previous-{secrets.token_hex(3)}")
    rename_noreplace(target, old)
    try:
        rename_noreplace(staging, target)
    except BaseException as exc:
        try:
            rename_noreplace(old, target)
        except OSError as back:
            raise OutputError(f"replacing {target} failed ({exc}) and so did putting the earlier run back "
                              f"({back.strerror or back}): the earlier run is in {old}, unchanged.") from exc
        raise
    return old


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, failing with FileExistsError if `dst` exists (atomically where the system can)."""
    try:
        _renameat2(src, dst, _RENAME_NOREPLACE)
        return
    except NotImplementedError:
        pass
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    os.rename(src, dst)


def _renameat2(src: Path, dst: Path, flags: int) -> None:
    """Linux's renameat2; NotImplementedError where the C library, kernel or file system lacks it."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        raise NotImplementedError
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        raise NotImplementedError
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a platform without a loadable C library
        return None


def keep_or_remove(staging: Path, target: Path, *, reason: str, log: Callable[[str], None] = print) -> Path | None:
    """A staging folder that will not be published: kept as ``<target>.failed[-N]`` (visible, with a
    README) if it holds posteriors, else removed. Returns where it was kept, or None."""
    posteriors = sorted(p.name for p in staging.glob("*.nc"))
    if not posteriors:
        shutil.rmtree(staging)
        return None
    (staging / "README.txt").write_text(
        f"The msc_bayes run bound for {target.name} did not complete ({reason}).\n"
        "The posteriors in this folder were sampled before that; they are not a report.\n"
        "Read them with arviz.from_netcdf or xarray.open_datatree.\n", encoding="utf-8")
    kept = _rename_to_free_name(staging, target.with_name(f"{target.name}.failed"))
    log(f"the run did not complete; the {len(posteriors)} posterior(s) sampled so far are in {kept}")
    return kept


def _rename_to_free_name(src: Path, wanted: Path) -> Path:
    for i in range(1, 1000):
        dst = wanted if i == 1 else wanted.with_name(f"{wanted.name}-{i}")
        try:
            rename_noreplace(src, dst)
            return dst
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue
            raise
    raise OutputError(f"no free name for {wanted}; the results are still in {src}")  # pragma: no cover


def recover_stale(folder: Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Staging folders in `folder` whose run was killed (its process is gone): removed if they hold
    no posterior, else kept visible as ``<target>.failed``; each one said. Returns the kept ones."""
    kept = []
    for staging in sorted(folder.glob(".*.partial")):
        owner = _partial_owner(staging)
        if owner is None or _alive(owner):
            continue
        target = folder / owner["target"]
        if owner.get("kind") == "replaced":  # an earlier run whose replacement was already in place
            log(f"removing {staging}: what is left of an earlier run of {target}, replaced by an msc_bayes run "
                f"(process {owner['pid']}) that was killed while removing it")
            shutil.rmtree(staging)
            continue
        log(f"found {staging}, left by an interrupted msc_bayes run (process {owner['pid']}, started "
            f"{owner.get('created_utc', '?')}): " + ("keeping its posteriors" if any(staging.glob("*.nc"))
                                                     else "removing it (it holds no results)"))
        where = keep_or_remove(staging, target, reason="the process was killed", log=log)
        if where is not None:
            kept.append(where)
    return kept


def _partial_owner(staging: Path) -> dict | None:
    try:
        owner = json.loads((staging / PARTIAL_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not ours (or not readable): never touched
    ok = (isinstance(owner, dict) and isinstance(owner.get("pid"), int) and isinstance(owner.get("target"), str)
          and Path(owner["target"]).name == owner["target"] and staging.name.startswith(f".{owner['target']}."))
    return owner if ok else None


def _alive(owner: dict) -> bool:
    """Is the process that owns a staging folder still running? (Unknowable for another host: yes.)"""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
