"""One proxied connection: runs a ``Relay`` and does what its actions say.

All protocol decisions are the core's; this file only reads, writes and does TLS. Every
byte read goes to the core (``lab.proxy.leg``); nothing is fished out of stream buffers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from typing import Any

from lab.addresses import address_text
from lab.events import PROXY, Emit
from lab.pki import LabPKI
from lab.proxy.leg import Leg
from lab.proxy.streams import ConnectUpstream, Streams
from lab.proxy.tls import forged_context
from lab.smtp.actions import (
    Action,
    Close,
    Hold,
    Notice,
    SendToClient,
    SendToServer,
    Side,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.hooks import SmtpHooks
from lab.smtp.relay import Relay
from lab.smtp.types import TlsPlan

SIDES: tuple[Side, Side] = ("server", "client")
DIRECTIONS: tuple[tuple[Side, Side], ...] = (("client", "server"), ("server", "client"))


def _peer(writer: asyncio.StreamWriter) -> str:
    return address_text(writer.get_extra_info("peername"))


class Connection:
    def __init__(self, *, conn_id: str, mx_name: str, attacks: Sequence[SmtpHooks],
                 pki: LabPKI, emit: Emit, client: Streams, connect_upstream: ConnectUpstream,
                 read_timeout: float, handshake_timeout: float) -> None:
        self.conn_id, self.mx_name = conn_id, mx_name
        self.pki, self.emit = pki, emit
        self.client = client
        self.connect_upstream = connect_upstream
        self.read_timeout, self.handshake_timeout = read_timeout, handshake_timeout
        self.relay = Relay(attacks, mx_name, conn_id, clock=lambda: round(time.monotonic(), 6))
        self.wake = asyncio.Event()
        self.legs: dict[Side, Leg] = {}
        self.held: set[Side] = set()
        self.done = False
        self.tunnel = False
        self.tunnel_bytes: dict[Side, int] = {"client": 0, "server": 0}
        self.close_reason = ""

    def _emit(self, kind: str, **data: Any) -> None:
        self.emit(PROXY, kind, {"conn": self.conn_id, "mx": self.mx_name, **data})

    async def run(self) -> None:
        self._emit("connect", peer=_peer(self.client[1]))
        try:
            self.legs["client"] = await Leg.adopt(self.client, self.wake)
            try:
                upstream = await asyncio.wait_for(self.connect_upstream(), self.read_timeout)
            except (OSError, TimeoutError) as exc:
                self._emit("upstream-failed", error=str(exc) or type(exc).__name__)
                self.close_reason = "upstream unreachable"
                return
            self.legs["server"] = await Leg.adopt(upstream, self.wake)
            await self._relay_loop()
            if self.tunnel and not self.done:
                await self._pipe()
        finally:
            await self._shutdown()

    # -- the relay loop ---------------------------------------------------------------
    async def _relay_loop(self) -> None:
        while not self.done and not self.tunnel:
            ready = [side for side in SIDES
                     if side not in self.held and self.legs[side].has_input]
            if not ready:
                if len(self.held) == len(SIDES):
                    return
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.read_timeout)
                except TimeoutError:
                    await self._execute(self.relay.timed_out(self.read_timeout))
                    return
                continue
            for side in ready:
                if self.done or self.tunnel or side in self.held:
                    continue
                await self._execute(self._feed(side))

    def _feed(self, side: Side) -> list[Action]:
        """What ``side`` sent since the last call, or its close, to the core."""
        leg = self.legs[side]
        data = leg.take()
        actions: list[Action] = []
        if data:
            actions += (self.relay.client_data(data) if side == "client"
                        else self.relay.server_data(data))
        if leg.eof and not data:
            actions += self.relay.closed(side, leg.error)
        return actions

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Notice):
                self.emit(PROXY, action.kind, action.data)
            elif self.done:
                continue
            elif isinstance(action, SendToClient | SendToServer):
                side: Side = "client" if isinstance(action, SendToClient) else "server"
                await self._write(side, action.data)
            elif isinstance(action, Hold):
                await self._hold(action.side)
            elif isinstance(action, StartTlsToServer):
                await self._tls_to_server()
            elif isinstance(action, StartTlsToClient):
                await self._tls_to_client(action.plan)
            elif isinstance(action, Tunnel):
                self.tunnel = True
            elif isinstance(action, Close):
                self.done = True
                self.close_reason = action.reason

    async def _write(self, side: Side, data: bytes) -> None:
        try:
            await self.legs[side].write(data, self.read_timeout)
        except (OSError, TimeoutError) as exc:
            await self._execute(self.relay.closed(side, f"write failed: {exc!s}"))

    async def _hold(self, side: Side) -> None:
        """Stop reading ``side``; whatever it already sent goes to the core now."""
        self.held.add(side)
        leg = self.legs[side]
        leg.pause()
        data = leg.take()
        if data:
            await self._execute(self.relay.client_data(data) if side == "client"
                                else self.relay.server_data(data))

    # -- TLS --------------------------------------------------------------------------
    async def _tls_to_server(self) -> None:
        leg = self.legs["server"]
        try:
            await leg.start_tls(self.pki.client_context(), server_side=False,
                                server_hostname=self.mx_name, timeout=self.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            self._emit("tls", leg="server", mode="upstream", ok=False, sni=self.mx_name,
                       version=None, cipher=None, cert=None, error=error)
            await self._execute(self.relay.tls_failed("server", error))
            return
        self._emit("tls", leg="server", mode="upstream", ok=True, sni=self.mx_name,
                   **_session(leg), cert=None, error=None)
        self.held.discard("server")
        await self._execute(self.relay.tls_ready("server"))

    async def _tls_to_client(self, plan: TlsPlan) -> None:
        leg = self.legs["client"]
        name = plan.cert_name or self.mx_name
        ctx, sni = forged_context(self.pki, name, plan.cert, plan.tls_max)
        facts = {"leg": "client", "mode": plan.mode, "cert": plan.cert.value,
                 "cert_name": name}
        try:
            await leg.start_tls(ctx, server_side=True, server_hostname=None,
                                timeout=self.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            self._emit("tls", **facts, ok=False, sni=sni.server_name, version=None,
                       cipher=None, error=error)
            await self._execute(self.relay.tls_failed("client", error))
            return
        self._emit("tls", **facts, ok=True, sni=sni.server_name, **_session(leg), error=None)
        self.held.discard("client")
        await self._execute(self.relay.tls_ready("client"))

    # -- tunnel and shutdown ------------------------------------------------------------
    async def _pipe(self) -> None:
        """Copy raw bytes both ways until either side closes or goes idle."""
        for leg in self.legs.values():
            leg.resume()
        while True:
            moved = False
            for src, dst in DIRECTIONS:
                leg = self.legs[src]
                data = leg.take()
                if data:
                    moved = True
                    self.tunnel_bytes[src] += len(data)
                    try:
                        await self.legs[dst].write(data, self.read_timeout)
                    except (OSError, TimeoutError) as exc:
                        reason = str(exc) or type(exc).__name__
                        self.close_reason = f"tunnel {src}->{dst}: {reason}"
                        return
                elif leg.eof:
                    self.close_reason = f"{src} closed the tunnel"
                    return
            if moved:
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.read_timeout)
            except TimeoutError:
                self.close_reason = "tunnel idle"
                return

    async def _shutdown(self) -> None:
        if "client" not in self.legs:
            self.client[1].transport.abort()
        for leg in self.legs.values():
            await leg.close(self.handshake_timeout)
        data: dict[str, Any] = {"transcript": self.relay.transcript.as_dicts(),
                                "reason": self.close_reason}
        if self.tunnel:
            data["tunnel_bytes"] = dict(self.tunnel_bytes)
        self._emit("close", **data)


def _session(leg: Leg) -> dict[str, Any]:
    sslobj = leg.transport.get_extra_info("ssl_object") if leg.transport else None
    if not isinstance(sslobj, ssl.SSLObject | ssl.SSLSocket):
        return {"version": None, "cipher": None}
    cipher = sslobj.cipher()
    return {"version": sslobj.version(), "cipher": cipher[0] if cipher else None}
