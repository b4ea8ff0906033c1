"""How the lab names a socket address in its events: ``host:port``."""

from __future__ import annotations

from typing import Any


def address_text(address: Any) -> str:
    """``host:port`` of a socket address tuple; anything else as ``str`` (a unix socket's
    path, or None when the socket has no peer)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
