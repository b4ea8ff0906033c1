"""The relay core is sans-IO in fact, not only in its own import lines: importing it in a
fresh interpreter loads no asyncio, socket or ssl, directly or through anything it imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lab.smtp

FORBIDDEN = ("asyncio", "socket", "ssl", "selectors", "threading")
CORE_MODULES = sorted(f"lab.smtp.{p.stem}" for p in Path(lab.smtp.__file__).parent.glob("*.py")
                      if p.stem != "__init__")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in {forbidden!r} if m in sys.modules)))
"""


def loaded_after_import(*modules: str) -> list[str]:
    """IO modules loaded by a fresh interpreter once it has imported ``modules``."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE.format(forbidden=FORBIDDEN), *modules],
        capture_output=True, text=True, check=True, timeout=60,
        cwd=Path(lab.smtp.__file__).parents[2])
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_the_core_has_the_modules_it_should() -> None:
    assert {"lab.smtp.relay", "lab.smtp.state", "lab.smtp.codec", "lab.smtp.hooks",
            "lab.smtp.actions", "lab.smtp.types"} <= set(CORE_MODULES)


def test_importing_the_package_loads_no_io() -> None:
    assert loaded_after_import("lab.smtp") == []


def test_importing_every_core_module_loads_no_io() -> None:
    assert loaded_after_import("lab.smtp", *CORE_MODULES) == []


def test_the_probe_sees_io_modules() -> None:
    # the check can fail: the proxy shell does load them
    assert set(loaded_after_import("lab.proxy.connection")) >= {"asyncio", "socket", "ssl"}
