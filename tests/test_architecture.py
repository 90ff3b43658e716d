"""The shape ARCHITECTURE.md promises, checked on the source: small modules and functions, one
reader of the fitted DataTree, and layers whose module-level imports never form a cycle."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "msc_bayes"
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: ARCHITECTURE.md's limits ("no module over ~600 lines and no function over ~100").
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
#: Indexing a fit's groups by string, or its attrs, directly.
TREE_READ = re.compile(r"""\.tree\[|\btree\[["']|\.tree\.attrs|\btree\.children|\.tree\.children""")
#: The only modules allowed to: the reader (results) and the writer that assembles the tree (sampling).
TREE_OWNERS = {PACKAGE / "results.py", PACKAGE / "inference" / "sampling.py"}


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def test_the_checks_see_the_package():
    names = {_rel(p) for p in SOURCES}
    assert {"results.py", "inference/sampling.py", "outcomes/edss/model.py", "reporting/run.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_modules_and_functions_are_small(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{_rel(path)} has {text.count(chr(10))} lines"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{_rel(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_only_results_reads_the_datatree():
    found = [f"{_rel(p)}:{i}: {line.strip()}" for p in SOURCES if p not in TREE_OWNERS
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if TREE_READ.search(line)]
    assert not found, "read a fit through msc_bayes.results instead:\n" + "\n".join(found)


def test_the_tree_read_pattern_would_catch_a_read():
    assert TREE_READ.search('x = fit.tree["posterior"]') and TREE_READ.search("a = run.fit.tree.attrs")
    assert not TREE_READ.search("tree = results.tree_of(fit)")


def _layer(module: str) -> str | None:
    """`msc_bayes.outcomes.edss.model` -> "outcomes"; the package root itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "msc_bayes" else None


def _module_level_imports() -> dict[str, set[str]]:
    """Layer -> the other layers its modules import at module level (imports inside functions are lazy
    on purpose, e.g. spec looking up an outcome's declaration, and are left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES:
        me = path.relative_to(PACKAGE).with_suffix("").parts[0]
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + ([f"msc_bayes.{a.name}" for a in node.names] if node.module == "msc_bayes" else [])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                layer = _layer(target)
                if layer and layer != me and ((PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").exists()):
                    graph[me].add(layer)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_layers_import_each_other_in_one_direction():
    graph = _module_level_imports()
    assert graph["reporting"] >= {"inference", "outcomes", "results", "sensitivity"}  # the graph is really read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    # the lower layers never look up
    assert not graph["evidence"] & {"spec", "outcomes", "inference", "results", "reporting", "viz", "sensitivity"}
    assert not graph["results"] & {"inference", "outcomes", "reporting", "viz", "sensitivity", "diagnostics"}
    # how numbers are written (findings, viz and report share it) stands on nothing of the package
    assert not graph["numbers"] and {"findings", "viz", "reporting"} <= {m for m, deps in graph.items() if "numbers" in deps}


def test_a_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
