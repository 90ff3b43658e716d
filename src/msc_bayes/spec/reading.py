"""Reading a spec file: its bytes, UTF-8 text and TOML, the line that defines each key (for
messages), and `load_spec` / `spec_from_dict`."""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msc_bayes.errors import Problem, SpecError
from msc_bayes.input_files import NotReadable, read_bytes
from msc_bayes.spec.core import Spec, _build

_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEYVAL_RE = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_INLINE_KEY_RE = re.compile(r"""[{,]\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")
_TOML_LINE_RE = re.compile(r"at line (\d+)")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _key_lines(text: str) -> dict[str, int]:
    """Best-effort map dotted key -> first 1-based line defining it (a cheap scan, not a parser)."""
    lines: dict[str, int] = {}
    table: tuple[str, ...] = ()
    for i, line in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(line)
        if m:
            table = _split_key(m.group(1))
            lines.setdefault(".".join(table), i)
            continue
        m = _KEYVAL_RE.match(line)
        if m:
            key = table + _split_key(m.group(1))
            lines.setdefault(".".join(key), i)
            for sub in _INLINE_KEY_RE.findall(line[m.end() :]):
                lines.setdefault(".".join(key + _split_key(sub)), i)
    return lines


#: Largest spec file read (bytes); the bundled specs are ~5 kB.
MAX_SPEC_BYTES = 2**20


def _read_spec_bytes(p: Path, file: str) -> bytes:
    try:
        return read_bytes(p, MAX_SPEC_BYTES)
    except NotReadable as exc:
        raise SpecError([Problem(file, None, None, str(exc), "a readable TOML file (a regular file)")]) from None


def _decode_spec(raw: bytes, file: str) -> str:
    """The text of a UTF-8 spec (a leading byte-order mark dropped); SpecError naming the line otherwise."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        found = raw[max(exc.start - 10, 0) : exc.end + 10]
        expected = f"UTF-8 text (byte {column} of line {line} is not UTF-8; save the file as UTF-8)"
        raise SpecError([Problem(file, line, None, found, expected)]) from None


def _parse_toml(text: str, file: str) -> dict:
    """tomllib.loads(text); SpecError with the line (row) and tomllib's message (with the column) otherwise."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE_RE.search(str(exc))
        row = int(m.group(1)) if m else None
        lines = text.splitlines()
        line = lines[row - 1] if row and row <= len(lines) else None
        raise SpecError([Problem(file, row, None, line, f"valid TOML ({exc})")]) from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file; raises SpecError listing every problem found.

    The file must be a regular file (a folder, FIFO, device or dangling link is a SpecError,
    and is never read) of at most MAX_SPEC_BYTES, UTF-8 and valid TOML.
    """
    p = Path(path)
    file = str(path)
    text = _decode_spec(_read_spec_bytes(p, file), file)
    return _build(_parse_toml(text, file), file=file, path=file, default_name=p.stem, lines=_key_lines(text))


def spec_from_dict(d: Mapping[str, Any], *, source: str = "<dict>") -> Spec:
    """Validate a spec given as a dict (same rules as :func:`load_spec`).

    ``source`` names the origin in error messages. The default name is the outcome.
    """
    default = d.get("outcome") if isinstance(d, Mapping) else None
    return _build(d, file=source, path=None, default_name=default if isinstance(default, str) else "spec")
