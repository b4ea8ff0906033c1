"""The lab's services and the one interface the runner drives them through on every backend.

``Services`` is that interface. ``LabServices`` runs the services in this process (loopback
and netns: the backend binds the sockets and says how a proxy reaches the genuine MX behind
it; a compose container runs the part its role needs). ``lab.control.RemoteServices`` is the
other implementation: it forwards each call to services in other containers.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fake_dns.server import DnsServer, QueryLogEntry
from fake_dns.zone import Zone
from lab.events import DNS
from lab.pki import LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import PolicyHost
from lab.proxy.server import SmtpProxy
from lab.proxy.streams import ConnectUpstream, Streams
from lab.sink.server import Sink
from lab.tlsrpt.collector import CollectorSetup
from lab.world_setup import MxSetup, idle_name, slot_setup

__all__ = ["ConnectUpstream", "Emitter", "LabServices", "MxSetup", "ServiceSockets",
           "Services", "Streams"]


class Services(Protocol):
    """What the runner configures for each phase (``lab.world_setup.publish``)."""

    def set_zone(self, zone: Zone) -> None:
        """The fake DNS server's zone."""

    def set_policies(self, responses: Mapping[str, PolicyResponse]) -> None:
        """The policy host's answer per policy domain."""

    def set_collector(self, setup: CollectorSetup) -> None:
        """The TLS-RPT collector on the policy host's address (``lab.tlsrpt.collector``)."""

    def set_mx(self, slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> None:
        """Name each MX slot and arm its proxy; slots past ``slots`` become idle."""

    async def close(self) -> None:
        """Stop what this object started."""


class Emitter(Protocol):
    """Where services report events (``EventLog``, or a control server's buffer)."""

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None: ...


@dataclass
class ServiceSockets:
    """Bound sockets a backend hands over (listening TCP sockets, one UDP socket for DNS)."""

    dns_udp: socket.socket
    dns_tcp: socket.socket
    policy: socket.socket
    mx_fronts: list[socket.socket]
    mx_backs: list[socket.socket]


def query_event(entry: QueryLogEntry) -> dict[str, Any]:
    """A DNS query log entry as the payload of a ``("dns", "query")`` event."""
    data = dataclasses.asdict(entry)
    data.pop("t", None)
    return data


class LabServices:
    """Fake DNS, policy host, one proxy and one sink per MX slot, in this process.

    ``start`` starts all of them; ``start_dns``, ``start_policy``, ``start_sink`` and
    ``start_proxy`` start one part (a control server runs only its role's).
    """

    def __init__(self, pki: LabPKI, events: Emitter,
                 connect_upstream: Callable[[int], ConnectUpstream] | None = None) -> None:
        self.pki = pki
        self.events = events
        self._connect_upstream = connect_upstream
        self.dns: DnsServer | None = None
        self.policy: PolicyHost | None = None
        self.proxy_by_slot: dict[int, SmtpProxy] = {}
        self.sink_by_slot: dict[int, Sink] = {}

    @property
    def proxies(self) -> list[SmtpProxy]:
        return [self.proxy_by_slot[i] for i in sorted(self.proxy_by_slot)]

    @property
    def sinks(self) -> list[Sink]:
        return [self.sink_by_slot[i] for i in sorted(self.sink_by_slot)]

    def _on_query(self, entry: QueryLogEntry) -> None:
        self.events.emit(DNS, "query", query_event(entry))

    async def start(self, sockets: ServiceSockets) -> None:
        await self.start_dns(sockets.dns_udp, sockets.dns_tcp)
        await self.start_policy(sockets.policy)
        for slot, (front, back) in enumerate(zip(sockets.mx_fronts, sockets.mx_backs,
                                                 strict=True)):
            await self.start_sink(slot, back)
            await self.start_proxy(slot, front)

    async def start_dns(self, udp: socket.socket, tcp: socket.socket) -> None:
        self.dns = DnsServer(Zone(), on_query=self._on_query)
        await self.dns.start(udp, tcp)

    async def start_policy(self, sock: socket.socket) -> None:
        self.policy = PolicyHost(self.pki, self.events.emit)
        await self.policy.start(sock)

    async def start_sink(self, slot: int, sock: socket.socket) -> None:
        sink = Sink(self.pki, self.events.emit)
        sink.configure([idle_name(slot)], [])
        await sink.start(sock)
        self.sink_by_slot[slot] = sink

    async def start_proxy(self, slot: int, sock: socket.socket,
                          connect: ConnectUpstream | None = None) -> None:
        """``connect``: how this proxy reaches its genuine MX (default: the backend's)."""
        if connect is None:
            assert self._connect_upstream is not None, "no way to reach the genuine MX"
            connect = self._connect_upstream(slot)
        proxy = SmtpProxy(self.pki, self.events.emit, connect)
        proxy.configure(idle_name(slot), [])
        await proxy.start(sock)
        self.proxy_by_slot[slot] = proxy

    def set_zone(self, zone: Zone) -> None:
        if self.dns is not None:
            self.dns.set_zone(zone)

    def set_policies(self, responses: Mapping[str, PolicyResponse]) -> None:
        if self.policy is not None:
            self.policy.configure(responses)

    def set_collector(self, setup: CollectorSetup) -> None:
        if self.policy is not None:
            self.policy.configure_collector(setup)

    def set_mx(self, slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> None:
        """Name each MX slot, arm its proxy with the SMTP attacks; unused slots get no name."""
        for i, sink in self.sink_by_slot.items():
            sink.configure([slot_setup(slots, i).name], list(accept_domains))
        for i, proxy in self.proxy_by_slot.items():
            setup = slot_setup(slots, i)
            proxy.configure(setup.name, list(setup.attacks))

    def idle(self) -> None:
        """Back to an idle world: empty zone, no policies, unnamed MX slots."""
        self.set_zone(Zone())
        self.set_policies({})
        self.set_collector(CollectorSetup())
        self.set_mx([], [])

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()
        for sink in self.sinks:
            await sink.close()
        if self.policy is not None:
            await self.policy.close()
        if self.dns is not None:
            await self.dns.close()
        self.proxy_by_slot.clear()
        self.sink_by_slot.clear()
        self.policy = self.dns = None
