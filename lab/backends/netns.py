"""The ``netns`` backend: every lab host in its own Linux network namespace, real ports.

Real MTAs need what the loopback backend cannot give: their own resolver configuration, port
25 and 443 on distinct addresses, and a host of their own to run in. This backend gives every
lab host a namespace on an isolated bridge (see ``netns_net`` for the layout) and runs the
same in-process asyncio services as every other backend, on sockets it creates inside those
namespaces. The sender under test gets the namespace ``mtl-<runid>-sender``: programs run
there with ``ip netns exec`` (``SenderEnv.exec_prefix``), which also shows them
``/etc/netns/<ns>/resolv.conf`` pointing at the lab's DNS.

Addresses (host numbers in the lab subnet, default ``198.18.0.0/24``)::

    .2 dns (53 udp+tcp)   .3 policy (443)   .11-.14 MX fronts: the proxies (25)
    .21-.24 genuine MXes: the sinks (25)    .30 attacker   .100 sender

Safety: no namespace gets a default route, there is no NAT, and nothing of the lab exists in
the host namespace (the bridge lives in the switch namespace). Cleanup is guaranteed three
ways: ``down()`` (idempotent, called by the runner in ``finally``), and, for a run that
died, ``cleanup_leftovers()`` (``mtasts-lab down``), which reads the run's state file in
``/run/mtasts-lab``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from lab.backends.base import Backend, BackendUnavailable
from lab.backends.netns_net import (
    DEFAULT_SUBNET,
    LabNet,
    NetnsError,
    bound_socket,
    can_unshare_net,
    client_socket,
)
from lab.backends.netns_place import NetnsPlace
from lab.backends.netns_state import ProcRef, RunState
from lab.backends.netns_state import cleanup_leftovers as _cleanup_leftovers
from lab.backends.services import LabServices, ServiceSockets
from lab.events import RUNNER, EventLog
from lab.pki import LabPKI
from lab.proxy.streams import ConnectUpstream, Streams
from lab.senders.base import SenderEnv
from lab.world import MAX_MX, Topology

DNS_PORT, SMTP_PORT, HTTPS_PORT = 53, 25, 443
DNS_HOST, POLICY_HOST, ATTACKER_HOST, SENDER_HOST = 2, 3, 30, 100
FRONT_BASE, BACK_BASE = 11, 21

__all__ = ["NetnsBackend", "cleanup_leftovers"]


def cleanup_leftovers() -> list[str]:
    """Remove every namespace, /etc/netns entry, process and directory that a lab run which is
    no longer alive left behind; return one line per thing removed (``mtasts-lab down``)."""
    return _cleanup_leftovers()


def roles() -> dict[str, int]:
    plan = {"dns": DNS_HOST, "policy": POLICY_HOST}
    plan.update({f"mx{i}": FRONT_BASE + i for i in range(MAX_MX)})
    plan.update({f"sink{i}": BACK_BASE + i for i in range(MAX_MX)})
    plan.update({"attacker": ATTACKER_HOST, "sender": SENDER_HOST})
    return plan


class NetnsBackend(Backend):
    name = "netns"
    summary = ("every lab host in its own network namespace on an isolated bridge; "
               "real ports 25/53/443; needed for real MTAs (root)")
    needs_root = True

    def __init__(self, subnet: str | None = None) -> None:
        self.subnet = subnet or os.environ.get("MTASTS_LAB_NETNS_SUBNET", DEFAULT_SUBNET)
        self.net: LabNet | None = None
        self.state: RunState | None = None
        self._pki: LabPKI | None = None
        self._events: EventLog | None = None
        self._services_started = False
        self.bringup_s: float | None = None

    @classmethod
    def cleanup_leftovers(cls) -> list[str]:
        return cleanup_leftovers()

    @classmethod
    def check(cls) -> list[str]:
        missing = []
        if os.geteuid() != 0:
            missing.append("root (the netns backend creates network namespaces)")
        if shutil.which("ip") is None:
            missing.append("ip: apt-get install iproute2")
        reason = can_unshare_net()
        if reason is not None:
            missing.append(f"CAP_SYS_ADMIN: cannot create a network namespace ({reason})")
        return missing

    @property
    def sender_netns(self) -> str:
        assert self.net is not None, "up() first"
        return self.net.ns("sender")

    async def up(self, run_dir: Path, pki: LabPKI, events: EventLog) -> Topology:
        missing = self.check()
        if missing:
            raise BackendUnavailable("netns backend: missing " + "; ".join(missing))
        started = time.monotonic()
        self._pki, self._events = pki, events
        net = LabNet(secrets.token_hex(4), self.subnet)
        net.plan(roles())
        self.net = net
        # The state file comes first: whatever happens next, `mtasts-lab down` can undo it.
        self.state = RunState(net.runid, "netns", ProcRef.of(os.getpid()),
                              namespaces=net.namespaces, etc_dirs=net.etc_dirs())
        self.state.save()
        try:
            await asyncio.to_thread(net.create)
            net.write_resolv_conf("sender", net.addr("dns"))
            sockets = self._bind_all(net)
            self.topology = Topology(
                dns=net.addr("dns"), policy=net.addr("policy"),
                mx_fronts=tuple(net.addr(f"mx{i}") for i in range(MAX_MX)),
                mx_backs=tuple(net.addr(f"sink{i}") for i in range(MAX_MX)),
                attacker=net.addr("attacker"),
                dns_port=DNS_PORT, smtp_port=SMTP_PORT, https_port=HTTPS_PORT,
                extra={"sender": net.addr("sender"), "sender_netns": net.ns("sender"),
                       "netns_prefix": net.prefix, "subnet": net.subnet},
            )
            self.services = LabServices(pki, events, self._connector)
            self._services_started = True
            await self.services.start(sockets)
        except BaseException:
            await self.down()
            raise
        self.bringup_s = time.monotonic() - started
        events.emit(RUNNER, "backend-up", {"backend": self.name, "runid": net.runid,
                                           "bringup_s": round(self.bringup_s, 4)})
        return self.topology

    @staticmethod
    def _bind_all(net: LabNet) -> ServiceSockets:
        opened: list[socket.socket] = []

        def bind(role: str, kind: socket.SocketKind, port: int) -> socket.socket:
            sock = bound_socket(net.ns(role), kind, net.addr(role), port)
            opened.append(sock)
            return sock

        try:
            return ServiceSockets(
                dns_udp=bind("dns", socket.SOCK_DGRAM, DNS_PORT),
                dns_tcp=bind("dns", socket.SOCK_STREAM, DNS_PORT),
                policy=bind("policy", socket.SOCK_STREAM, HTTPS_PORT),
                mx_fronts=[bind(f"mx{i}", socket.SOCK_STREAM, SMTP_PORT) for i in range(MAX_MX)],
                mx_backs=[bind(f"sink{i}", socket.SOCK_STREAM, SMTP_PORT)
                          for i in range(MAX_MX)],
            )
        except (OSError, NetnsError):
            for sock in opened:
                sock.close()
            raise

    def _connector(self, slot: int) -> ConnectUpstream:
        async def connect() -> Streams:
            assert self.net is not None
            sock = client_socket(self.net.ns(f"mx{slot}"))
            try:
                await asyncio.get_running_loop().sock_connect(
                    sock, (self.net.addr(f"sink{slot}"), SMTP_PORT))
            except BaseException:
                sock.close()
                raise
            return await asyncio.open_connection(sock=sock)
        return connect

    def sender_env(self, workdir: Path) -> SenderEnv:
        assert self._pki is not None and self._events is not None, "up() first"
        return SenderEnv(
            dns=(self.topology.dns, DNS_PORT), smtp_port=SMTP_PORT, https_port=HTTPS_PORT,
            ca_file=self._pki.ca_file, workdir=workdir, emit=self._events.emit,
            topology=self.topology, backend=self.name,
            exec_prefix=("ip", "netns", "exec", self.sender_netns),
            place=NetnsPlace(self.sender_netns, logs=workdir),
        )

    async def down(self) -> None:
        """Stop the services, kill what still runs in the lab's namespaces, remove the
        namespaces, ``/etc/netns`` entries and the state file. Idempotent."""
        if self._services_started:
            self._services_started = False
            await self.services.close()
        net, state = self.net, self.state
        if net is None or state is None:
            return
        self.net = self.state = None
        # A sender adapter stops its own processes; anything still inside a lab namespace
        # was started by this run (nothing else knows the names) and goes now, with the
        # namespaces, the /etc/netns entries and the state file.
        await asyncio.to_thread(state.undo)
