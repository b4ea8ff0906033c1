"""The ``loopback`` backend: every host on its own 127.x.y.z address, one process, no privileges.

Linux routes the whole of 127.0.0.0/8 to the loopback interface, so each lab host gets an
address of its own in a /24 picked at random per run (parallel runs do not collide), and
the ports are free ephemeral ones shared by all hosts of a role.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from pathlib import Path

from lab.backends.base import Backend
from lab.backends.services import LabServices, ServiceSockets
from lab.backends.sockets import bound_socket
from lab.events import EventLog
from lab.pki import LabPKI
from lab.proxy.streams import ConnectUpstream
from lab.senders.base import SenderEnv
from lab.world import MAX_MX, Topology

DNS_HOST, POLICY_HOST, ATTACKER_HOST = 2, 3, 30
FRONT_BASE, BACK_BASE = 11, 21


class LoopbackBackend(Backend):
    name = "loopback"
    summary = "one process on 127.x.y.z addresses and ephemeral ports; needs no privileges"

    def __init__(self, subnet: str | None = None) -> None:
        self._subnet = subnet
        self._pki: LabPKI | None = None
        self._events: EventLog | None = None
        self._started = False

    def _pick_block(self) -> str:
        """The given /24 of 127.0.0.0/8, or a random one (parallel runs do not collide)."""
        return self._subnet or f"127.{random.randint(16, 250)}.{random.randint(1, 250)}"

    async def up(self, run_dir: Path, pki: LabPKI, events: EventLog) -> Topology:
        self._pki, self._events = pki, events
        for _ in range(20):
            try:
                sockets, topology = self._bind_all(self._pick_block())
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or self._subnet:
                    raise
        else:
            raise OSError(errno.EADDRINUSE, "no free loopback address block found")
        self.topology = topology
        self.services = LabServices(pki, events, self._connector)
        self._started = True
        await self.services.start(sockets)
        return topology

    def _bind_all(self, base: str) -> tuple[ServiceSockets, Topology]:
        def addr(host: int) -> str:
            return f"{base}.{host}"

        opened: list[socket.socket] = []
        try:
            dns_udp = bound_socket(socket.SOCK_DGRAM, addr(DNS_HOST), 0)
            opened.append(dns_udp)
            dns_port = dns_udp.getsockname()[1]
            dns_tcp = bound_socket(socket.SOCK_STREAM, addr(DNS_HOST), dns_port)
            opened.append(dns_tcp)
            policy = bound_socket(socket.SOCK_STREAM, addr(POLICY_HOST), 0)
            opened.append(policy)
            https_port = policy.getsockname()[1]
            fronts = [bound_socket(socket.SOCK_STREAM, addr(FRONT_BASE), 0)]
            opened.append(fronts[0])
            smtp_port = fronts[0].getsockname()[1]
            for i in range(1, MAX_MX):
                fronts.append(bound_socket(socket.SOCK_STREAM, addr(FRONT_BASE + i), smtp_port))
                opened.append(fronts[-1])
            backs = []
            for i in range(MAX_MX):
                backs.append(bound_socket(socket.SOCK_STREAM, addr(BACK_BASE + i), smtp_port))
                opened.append(backs[-1])
        except OSError:
            for sock in opened:
                sock.close()
            raise
        topology = Topology(
            dns=addr(DNS_HOST), policy=addr(POLICY_HOST),
            mx_fronts=tuple(addr(FRONT_BASE + i) for i in range(MAX_MX)),
            mx_backs=tuple(addr(BACK_BASE + i) for i in range(MAX_MX)),
            attacker=addr(ATTACKER_HOST),
            dns_port=dns_port, smtp_port=smtp_port, https_port=https_port,
        )
        return ServiceSockets(dns_udp, dns_tcp, policy, fronts, backs), topology

    def _connector(self, slot: int) -> ConnectUpstream:
        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(self.topology.mx_backs[slot],
                                                 self.topology.smtp_port)
        return connect

    def sender_env(self, workdir: Path) -> SenderEnv:
        assert self._pki is not None and self._events is not None, "up() first"
        return SenderEnv(
            dns=(self.topology.dns, self.topology.dns_port),
            smtp_port=self.topology.smtp_port, https_port=self.topology.https_port,
            ca_file=self._pki.ca_file, workdir=workdir, emit=self._events.emit,
            topology=self.topology, backend=self.name,
        )

    async def down(self) -> None:
        if self._started:
            self._started = False
            await self.services.close()
