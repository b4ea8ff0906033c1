"""fake_dns: a small authoritative DNS server for labs, on dnslib and asyncio.

Standalone (no imports from ``lab``): it is also the DNS container's build context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fake_dns.errors import ZoneError
from fake_dns.zone import Answer, Failure, Zone, ZoneRecord

if TYPE_CHECKING:
    from fake_dns.server import DnsServer, QueryLogEntry
    from fake_dns.sockets import bind_pair

_LAZY = {"DnsServer": "fake_dns.server", "QueryLogEntry": "fake_dns.server",
         "bind_pair": "fake_dns.sockets"}
"""Names whose modules need asyncio or socket: loaded on first use, not on package import."""

__all__ = [
    "Answer",
    "DnsServer",
    "Failure",
    "QueryLogEntry",
    "Zone",
    "ZoneError",
    "ZoneRecord",
    "bind_pair",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fake_dns' has no attribute {name!r}")
