"""Domain exceptions. The CLI turns these into one clear message and a non-zero exit."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


def did_you_mean(value: object, choices) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(value).lower()]
    matches = same_case or difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where, what was found, what was expected."""

    file: str
    row: int | None  # 1-based data row (header excluded); None for file-level problems
    column: str | None
    value: object
    expected: str
    #: 1-based line of the file as an editor shows it (header = line 1, blank lines and the
    #: lines of a quoted line break counted) where the row starts; None when there is no file
    #: line (tables built in memory, TOML specs). Messages name the line when it is known.
    line: int | None = None

    def __str__(self) -> str:
        where = one_line(self.file)
        if self.line is not None:
            where += f", line {self.line}"
        elif self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:  # a header may hold any character: shown on one line, escaped
            where += f", column '{one_line(self.column)}'"
        value = self.value.item() if hasattr(self.value, "item") else self.value
        return f"{where}: found {value!r}; expected {self.expected}"


def one_line(text: object) -> str:
    """`text` with control characters (line breaks, tabs, escapes) written as Python escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class MscBayesError(Exception):
    """Base class of every error the package raises on bad input."""


class ProblemsError(MscBayesError):
    """An error that carries every problem found, not just the first."""

    kind = "input"

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in the {self.kind}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class EvidenceError(ProblemsError):
    """The evidence tables in data/ are invalid."""

    kind = "evidence"


class SpecError(ProblemsError):
    """A model spec in models/ is invalid."""

    kind = "model spec"


class ConvergenceError(MscBayesError):
    """A posterior failed the convergence gate."""


class OutputError(MscBayesError):
    """An output folder cannot be written without risking what is already there."""


class SamplingError(MscBayesError):
    """The sampler failed (nutpie raised or panicked): names the spec, the settings and nutpie's error."""
