"""The lab's services and the one control interface the runner uses on every backend.

A backend binds the sockets (on loopback, inside namespaces ...) and says how a proxy reaches
the genuine MX behind it; everything else is the same code.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fake_dns.server import DnsServer, QueryLogEntry
from fake_dns.zone import Zone
from lab.attacks.base import SmtpAttack
from lab.events import DNS, EventLog
from lab.pki import LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import PolicyHost
from lab.proxy.server import SmtpProxy
from lab.proxy.streams import ConnectUpstream
from lab.sink.server import Sink


@dataclass
class ServiceSockets:
    """Bound sockets a backend hands over (listening TCP sockets, one UDP socket for DNS)."""

    dns_udp: socket.socket
    dns_tcp: socket.socket
    policy: socket.socket
    mx_fronts: list[socket.socket]
    mx_backs: list[socket.socket]


@dataclass(frozen=True)
class MxSetup:
    name: str
    attacks: tuple[SmtpAttack, ...] = ()


def _idle_name(slot: int) -> str:
    return f"unused{slot}.lab.test"


class LabServices:
    """Fake DNS, policy host, one proxy and one sink per MX slot."""

    def __init__(self, pki: LabPKI, events: EventLog,
                 connect_upstream: Callable[[int], ConnectUpstream]) -> None:
        self.pki = pki
        self.events = events
        self.dns = DnsServer(Zone(), on_query=self._on_query)
        self.policy = PolicyHost(pki, events.emit)
        self._connect_upstream = connect_upstream
        self.proxies: list[SmtpProxy] = []
        self.sinks: list[Sink] = []

    def _on_query(self, entry: QueryLogEntry) -> None:
        data = dataclasses.asdict(entry)
        data.pop("t", None)
        self.events.emit(DNS, "query", data)

    async def start(self, sockets: ServiceSockets) -> None:
        await self.dns.start(sockets.dns_udp, sockets.dns_tcp)
        await self.policy.start(sockets.policy)
        for slot, (front, back) in enumerate(zip(sockets.mx_fronts, sockets.mx_backs,
                                                 strict=True)):
            idle = _idle_name(slot)
            sink = Sink(self.pki, self.events.emit)
            sink.configure([idle], [])
            await sink.start(back)
            proxy = SmtpProxy(self.pki, self.events.emit, self._connect_upstream(slot))
            proxy.configure(idle, [])
            await proxy.start(front)
            self.sinks.append(sink)
            self.proxies.append(proxy)

    def set_zone(self, zone: Zone) -> None:
        self.dns.set_zone(zone)

    def set_policies(self, responses: Mapping[str, PolicyResponse]) -> None:
        self.policy.configure(responses)

    def set_mx(self, slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> None:
        """Name each MX slot, arm its proxy with the SMTP attacks; unused slots get no name."""
        for i, (proxy, sink) in enumerate(zip(self.proxies, self.sinks, strict=True)):
            setup = slots[i] if i < len(slots) else MxSetup(_idle_name(i))
            proxy.configure(setup.name, list(setup.attacks))
            sink.configure([setup.name], list(accept_domains))

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()
        for sink in self.sinks:
            await sink.close()
        await self.policy.close()
        await self.dns.close()
