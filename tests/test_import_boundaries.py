"""No module reaches into ``lab.control``'s internals or the scenario loader's private names.

``lab.control`` is used through the names its ``__init__`` exports (its submodules import
each other); the scenario loader's names starting with ``_`` stay inside their module
(``lab/scenario.py``, ``lab/scenario_world.py``; ``build_attack`` is the public way to build
an attack from its options).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTROL = ROOT / "lab" / "control"
LOADER = {"lab.scenario": "scenario.py", "lab.scenario_world": "scenario_world.py"}


def _python_files() -> list[Path]:
    files = [p for d in ("lab", "fake_dns", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    files += [p for p in (ROOT / "scripts").iterdir()
              if p.is_file() and p.read_text(errors="replace").startswith("#!/usr/bin/env python")]
    return sorted(files)


def violations(path: Path, source: str) -> list[str]:
    """The forbidden imports in one file's source."""
    inside_control = CONTROL in path.parents
    out = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [a.name for a in node.names]
            mod = node.module
            if mod.startswith("lab.control.") and not inside_control:
                out.append(f"line {node.lineno}: from {mod} import ... (use lab.control)")
            if mod == "lab.control":
                out += [f"line {node.lineno}: lab.control.{n}" for n in names
                        if n.startswith("_")]
            if mod in LOADER and path.name != LOADER[mod]:
                out += [f"line {node.lineno}: {mod}.{n}" for n in names if n.startswith("_")]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lab.control.") and not inside_control:
                    out.append(f"line {node.lineno}: import {alias.name} (use lab.control)")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            dotted = ast.unparse(node.value)
            loader = LOADER.get(dotted if dotted.startswith("lab.") else f"lab.{dotted}")
            if (dotted in ("control", "lab.control") and not inside_control) or (
                    loader is not None and path.name != loader):
                out.append(f"line {node.lineno}: {dotted}.{node.attr}")
    return out


def test_no_module_imports_control_internals_or_loader_privates() -> None:
    files = _python_files()
    assert len(files) > 100 and any(CONTROL in p.parents for p in files)
    found = {str(p.relative_to(ROOT)): v for p in files
             if (v := violations(p, p.read_text()))}
    assert found == {}


@pytest.mark.parametrize("source", [
    "from lab.control.transport import ControlClient",
    "from lab.control import _plain",
    "import lab.control.wire",
    "from lab.scenario import _attack",
    "import lab.scenario\nlab.scenario._coerce",
    "from lab.scenario_world import _tlsrpt",
    "from lab import scenario_world\nscenario_world._policy",
])
def test_the_check_catches(source: str) -> None:
    assert violations(ROOT / "lab" / "runner.py", source)


def test_the_check_allows_the_public_surface() -> None:
    source = ("from lab.control import ControlClient, RemoteServices\n"
              "from lab.scenario import build_attack, load_catalogue\n")
    assert violations(ROOT / "lab" / "runner.py", source) == []
    assert violations(CONTROL / "cli.py", "from lab.control.service import ControlServer") == []
