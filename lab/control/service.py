"""One lab role in its own container: the in-process services plus the control routes.

The services are ``LabServices``, the same code every other backend runs; this module adds
only what a remote runner needs: a numbered event buffer it can long-poll, the world as JSON,
reset and CA reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fake_dns.zone import Zone
from lab.backends.services import LabServices
from lab.backends.sockets import bound_socket
from lab.control.pki_setup import ca_fingerprint
from lab.control.transport import ControlSocket, Request
from lab.control.wire import collector_from_json, mx_from_json, policy_from_json
from lab.events import Event
from lab.pki import LabPKI
from lab.policy_host.mitm import available as mitm_available
from lab.proxy.streams import Streams

ROLES = ("dns", "policy", "mitm", "mx")
PORTS = {"dns": 53, "policy": 443, "mitm": 25, "mx": 25}
MAX_EVENTS = 20000
"""Events a service keeps for readers that fall behind (older ones are reported as lost)."""
MAX_WAIT_S = 30.0


class EventBuffer:
    """The events of one service, numbered from 0, for readers that long-poll."""

    def __init__(self, limit: int = MAX_EVENTS) -> None:
        self.limit = limit
        self._events: list[tuple[int, Event]] = []
        self.next = 0
        self._changed = asyncio.Event()

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None:
        self._events.append((self.next, Event(source, kind, dict(data or {}))))
        self.next += 1
        if len(self._events) > self.limit:
            del self._events[: len(self._events) - self.limit]
        self._changed.set()

    async def since(self, since: int, wait: float) -> dict[str, Any]:
        """Events numbered ``since`` and after, as soon as there is one or after ``wait`` s."""
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        while self.next <= since:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        first = self._events[0][0] if self._events else self.next
        out = [{"seq": seq, "source": e.source, "kind": e.kind, "data": dict(e.data)}
               for seq, e in self._events if seq >= since]
        return {"events": out, "next": self.next, "lost": max(0, first - since)}


def _dns_sockets(bind: str, port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP on the same port (with port 0: a port free for both)."""
    for _ in range(20):
        udp = bound_socket(socket.SOCK_DGRAM, bind, port)
        chosen = udp.getsockname()[1]
        try:
            return udp, bound_socket(socket.SOCK_STREAM, bind, chosen)
        except OSError:
            udp.close()
            if port:
                raise
    raise OSError("no port free for both UDP and TCP")


class ControlServer:
    """One role's service plus its control socket.

    ``bind`` is the address the service listens on, ``port`` its port (default: the role's
    standard one), ``upstream`` the genuine MX (``host:port``) a ``mitm`` relays to.
    """

    def __init__(self, role: str, pki: LabPKI, state: Path, *, slot: int = 0,
                 bind: str = "0.0.0.0", port: int | None = None,
                 upstream: tuple[str, int] | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role == "mitm" and upstream is None:
            raise ValueError("a mitm needs --upstream HOST:PORT (its genuine MX)")
        self.role, self.slot, self.pki, self.state = role, slot, pki, state
        self.bind, self.port = bind, PORTS[role] if port is None else port
        self.upstream = upstream
        self.events = EventBuffer()
        self.services = LabServices(pki, self.events)
        self._world: dict[str, Any] = {}
        self._control = ControlSocket(self._dispatch)
        self.address: tuple[str, int] | None = None
        """Where the service listens (after ``start``)."""

    @property
    def label(self) -> str:
        return self.role if self.role in ("dns", "policy") else f"{self.role}{self.slot}"

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None:
        self.events.emit(source, kind, data)

    async def start(self) -> None:
        if self.role == "dns":
            udp, tcp = _dns_sockets(self.bind, self.port)
            await self.services.start_dns(udp, tcp)
            self.address = (self.bind, udp.getsockname()[1])
            return
        sock = bound_socket(socket.SOCK_STREAM, self.bind, self.port)
        self.address = sock.getsockname()[:2]
        if self.role == "policy":
            await self.services.start_policy(sock)
        elif self.role == "mitm":
            await self.services.start_proxy(self.slot, sock, self._connect_upstream)
        else:
            await self.services.start_sink(self.slot, sock)

    async def _connect_upstream(self) -> Streams:
        assert self.upstream is not None
        return await asyncio.open_connection(*self.upstream)

    def apply(self, world: Mapping[str, Any]) -> list[str]:
        """Apply this role's part of ``world``; return which parts were applied."""
        services = self.services
        applied = []
        if services.dns is not None and "zone" in world:
            services.set_zone(Zone.from_text(str(world["zone"])))
            applied.append("zone")
        if services.policy is not None and "policies" in world:
            services.set_policies({str(d): policy_from_json(r)
                                   for d, r in dict(world["policies"]).items()})
            applied.append("policies")
        if services.policy is not None and "collector" in world:
            services.set_collector(collector_from_json(dict(world["collector"])))
            applied.append("collector")
        if (services.proxy_by_slot or services.sink_by_slot) and "mx" in world:
            slots, accept = mx_from_json(world["mx"])
            # this container's slot is ``self.slot``: the services know it by that number
            services.set_mx(slots, accept)
            applied.append("mx")
        for key in applied:
            self._world[key] = world[key]
        return applied

    def reset(self) -> None:
        self._world.clear()
        self.services.idle()

    def reload_pki(self) -> None:
        self.pki.reload(self.state / "pki")
        world = dict(self._world)
        if world:
            self.apply(world)
        else:  # new leaves from the new CA for the idle slot
            self.services.set_mx([], [])

    def health(self) -> dict[str, Any]:
        return {"role": self.role, "slot": self.slot, "ca": ca_fingerprint(self.pki),
                "next": self.events.next, "address": list(self.address or ()),
                "pid": os.getpid(), "mitm": mitm_available()}

    # control socket ------------------------------------------------------------------------

    async def serve_control(self, path: Path) -> None:
        await self._control.serve(path)

    async def _dispatch(self, req: Request) -> tuple[int, Any]:
        route = (req.method, req.path)
        if route == ("GET", "/health"):
            return 200, self.health()
        if route == ("GET", "/events"):
            return 200, await self.events.since(int(req.query.get("since", "0")),
                                                float(req.query.get("wait", "0")))
        if route == ("POST", "/world"):
            if not isinstance(req.body, dict):
                return 400, {"error": "the body must be a JSON object"}
            return 200, {"ok": True, "applied": self.apply(req.body)}
        if route == ("GET", "/ready"):
            # the attacker's mitmproxy (policy role) listens before the sender gets a message
            policy = self.services.policy
            return 200, {"waited": await policy.ready() if policy is not None else False}
        if route == ("POST", "/reset"):
            self.reset()
            return 200, {"ok": True}
        if route == ("POST", "/pki"):
            self.reload_pki()
            return 200, {"ok": True, "ca": ca_fingerprint(self.pki)}
        return 404, {"error": f"no {req.method} {req.path}"}

    async def close(self) -> None:
        await self._control.close()
        await self.services.close()
