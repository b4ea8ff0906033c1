"""What the shell tells the relay core: one small frozen value per thing that happened.

``Relay.handle`` takes any of them; the methods ``client_data`` ... ``timed_out`` are the
same inputs spelled as calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.smtp.actions import Side


@dataclass(frozen=True)
class ClientData:
    """Bytes from the sender, as read (any chunking)."""

    data: bytes


@dataclass(frozen=True)
class ServerData:
    """Bytes from the genuine MX, as read."""

    data: bytes


@dataclass(frozen=True)
class TlsReady:
    """The TLS handshake the core asked for on ``side`` is done."""

    side: Side


@dataclass(frozen=True)
class TlsFailed:
    side: Side
    error: str


@dataclass(frozen=True)
class PeerClosed:
    """``side`` closed its connection (EOF, reset); ``reason`` says which when known."""

    side: Side
    reason: str = ""


@dataclass(frozen=True)
class TimedOut:
    """Neither side sent anything for ``seconds``."""

    seconds: float


Input = ClientData | ServerData | TlsReady | TlsFailed | PeerClosed | TimedOut
