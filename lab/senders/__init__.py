"""Sender adapters. Importing this package registers every adapter module in it."""

from __future__ import annotations

import importlib
import pkgutil

from lab.senders.base import OutgoingMessage, Sender, SenderEnv

__all__ = ["OutgoingMessage", "Sender", "SenderEnv", "load_all"]

_HELPERS = {"agent", "base", "dnsclient", "mta", "mtasts", "place", "policy_fetch",
            "postfix_log", "smtp_client"}


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _HELPERS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
