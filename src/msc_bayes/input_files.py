"""Reading an input file (an evidence table, a model spec) without ever hanging or reading without end.

Only a readable regular file of bounded size is read. Its type is checked before opening (a FIFO
or a device is never opened) and again on the open file, which is opened non-blocking should the
path have changed meanwhile. Anything else raises :class:`NotReadable` saying what the path is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotReadable(Exception):
    """A path that is not a readable regular file of acceptable size; the message says what it is."""


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file `path` (at most `max_bytes`), or NotReadable saying what it is."""
    try:
        _require_regular(os.stat(path), max_bytes)  # follows links: a dangling link or a loop raises here
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            _require_regular(os.fstat(fd), max_bytes)
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise NotReadable(_unreadable(path, exc)) from exc
    if len(raw) > max_bytes:
        raise NotReadable(f"more than {max_bytes:,} bytes")
    return raw


def _require_regular(info: os.stat_result, max_bytes: int) -> None:
    for test, what in _NOT_REGULAR:
        if test(info.st_mode):
            raise NotReadable(what)
    if not stat.S_ISREG(info.st_mode):
        raise NotReadable("not a regular file")
    if info.st_size > max_bytes:
        raise NotReadable(f"{info.st_size:,} bytes, more than {max_bytes:,}")


def _unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
    return exc.strerror or str(exc)
