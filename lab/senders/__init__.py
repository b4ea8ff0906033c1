"""Sender adapters. Importing this package registers every adapter module in it."""

from __future__ import annotations

import importlib
import pkgutil

from lab.senders.base import OutgoingMessage, Sender, SenderEnv

__all__ = ["OutgoingMessage", "Sender", "SenderEnv", "is_known", "known_names", "load_all"]

_HELPERS = {"agent", "base", "certnames", "dane", "dnsclient", "mta", "mtasts", "own",
            "place", "policy_fetch", "postfix_log", "profiles", "smtp_client", "smtp_outcome",
            "smtp_tls"}


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _HELPERS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def is_known(name: str) -> bool:
    """Whether ``name`` names a sender: the one lookup behind ``--sender`` and the scenario
    files' ``known_failures`` (sender profiles resolve here too)."""
    load_all()
    return name in Sender.registry


def known_names() -> list[str]:
    """The sender names an error lists as known."""
    load_all()
    return [f"{name}{':' + profile if profile else ''}" for name in Sender.registry.names()
            for profile in ("", *Sender.registry.get(name).profiles())]
