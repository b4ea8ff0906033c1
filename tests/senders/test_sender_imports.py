"""The sender modules' imports: no circle among them, and none reaches into a backend."""

from __future__ import annotations

import ast
from pathlib import Path

import lab.senders

SENDERS = Path(lab.senders.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every ``lab...`` module a file imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lab"))
        elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
              and node.module.startswith("lab")):
            found.add(node.module)
            # `from lab.senders import postfix` imports a module too
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    mods = {f"lab.senders.{p.stem}": p for p in SENDERS.glob("*.py") if p.stem != "__init__"}
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


def test_no_sender_module_imports_a_backend() -> None:
    bad = {p.name: sorted(i for i in _imports(p) if i.startswith("lab.backends"))
           for p in SENDERS.glob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        for dep in sorted(graph.get(mod, ())):
            if dep in path:
                cycles.append([*path[path.index(dep):], dep])
            elif len(path) < len(graph):
                visit(dep, [*path, dep])

    for mod in sorted(graph):
        visit(mod, [mod])
    return cycles


def test_no_import_circle_among_the_senders() -> None:
    graph = _graph()
    assert "lab.senders.postfix" in graph and "lab.senders.place" in graph
    assert graph["lab.senders.postfix"] >= {"lab.senders.mta", "lab.senders.place"}
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_planted_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}})[0] == ["a", "b", "c", "a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
