"""Attack plugins. Importing this package registers every attack module in it."""

from __future__ import annotations

import importlib
import pkgutil

from lab.attacks.base import Attack, DnsAttack, PolicyAttack, SmtpAttack

__all__ = ["Attack", "DnsAttack", "PolicyAttack", "SmtpAttack", "load_all"]


def load_all() -> None:
    """Import every module of this package so that each attack registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
