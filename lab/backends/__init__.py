"""Backends: where a world runs. Importing this package registers every backend module."""

from __future__ import annotations

import importlib
import pkgutil

from lab.backends.base import Backend

__all__ = ["Backend", "load_all"]

_HELPERS = {"base", "compose_docker", "services", "sockets"}


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _HELPERS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
