"""lab/smtp is sans-IO: no module in it may import asyncio, socket or ssl."""

from __future__ import annotations

import ast
from pathlib import Path

import lab.smtp

FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "threading"}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_io_imports_in_lab_smtp() -> None:
    modules = sorted(Path(lab.smtp.__file__).parent.glob("*.py"))
    assert {m.name for m in modules} >= {"codec.py", "relay.py", "types.py", "actions.py"}
    for module in modules:
        bad = imported_roots(module.read_text()) & FORBIDDEN
        assert not bad, f"{module.name} imports {sorted(bad)}"


def test_the_checker_sees_imports() -> None:
    assert imported_roots("import ssl\nfrom asyncio import x\n") == {"ssl", "asyncio"}
