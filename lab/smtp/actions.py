"""What the relay core asks its shell to do. Small frozen values, executed in order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.smtp.types import TlsPlan

Side = Literal["client", "server"]
CloseSide = Literal["client", "server", "both"]


@dataclass(frozen=True)
class SendToClient:
    data: bytes


@dataclass(frozen=True)
class SendToServer:
    data: bytes


@dataclass(frozen=True)
class Hold:
    """Stop reading ``side``; hand every byte already received to the core now.

    Comes before a TLS switch, so that bytes sent before the switch reach the core (which
    drops them as trailing data) and never the TLS session.
    """

    side: Side


@dataclass(frozen=True)
class StartTlsToServer:
    """Open genuine TLS to the MX (verify it as a sender would); then call ``tls_ready``."""


@dataclass(frozen=True)
class StartTlsToClient:
    """Terminate TLS with the sender as ``plan`` says; then call ``tls_ready``."""

    plan: TlsPlan


@dataclass(frozen=True)
class Tunnel:
    """From now on copy raw bytes both ways, untouched; the core sees no more data."""


@dataclass(frozen=True)
class Close:
    side: CloseSide = "both"
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    """Something for the log (the shell writes it as an event of source ``proxy``)."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


Action = SendToClient | SendToServer | Hold | StartTlsToServer | StartTlsToClient | Tunnel \
    | Close | Notice
