"""fake_dns: a small authoritative DNS server for labs, on dnslib and asyncio.

Standalone (no imports from ``lab``): it is also the DNS container's build context.
"""

from fake_dns.errors import ZoneError
from fake_dns.server import DnsServer, QueryLogEntry
from fake_dns.sockets import bind_pair
from fake_dns.zone import Answer, Failure, Zone, ZoneRecord

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
