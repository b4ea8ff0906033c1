"""One proxied connection: runs a ``Relay`` and does what its actions say.

All protocol decisions are the core's; this file only reads, writes and does TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lab.attacks.base import SmtpAttack
from lab.events import PROXY, Emit
from lab.pki import LabPKI
from lab.proxy.tls import forged_context
from lab.smtp.actions import (
    Action,
    Close,
    Hold,
    SendToClient,
    SendToServer,
    Side,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.actions import (
    Emit as EmitAction,
)
from lab.smtp.relay import Relay
from lab.smtp.types import TlsPlan

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
ConnectUpstream = Callable[[], Awaitable[Streams]]

CHUNK = 65536
SIDES: tuple[Side, Side] = ("server", "client")


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """Bytes the stream has received but nobody read yet.

    StreamWriter.start_tls keeps the reader's buffer, so plaintext waiting there would be
    read back as if it came over TLS. Before a switch we take it out and give it to the core,
    which drops it (the trailing-data rule). asyncio has no public API for this.
    """
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray) or not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data


class Connection:
    def __init__(self, *, conn_id: str, mx_name: str, attacks: Sequence[SmtpAttack],
                 pki: LabPKI, emit: Emit, client: Streams, connect_upstream: ConnectUpstream,
                 read_timeout: float, handshake_timeout: float) -> None:
        self.conn_id, self.mx_name = conn_id, mx_name
        self.pki, self.emit = pki, emit
        self.connect_upstream = connect_upstream
        self.read_timeout, self.handshake_timeout = read_timeout, handshake_timeout
        self.relay = Relay(attacks, mx_name, conn_id, clock=lambda: round(time.monotonic(), 6))
        self.streams: dict[Side, Streams] = {"client": client}
        self.reads: dict[Side, asyncio.Task[bytes] | None] = {"client": None, "server": None}
        self.held: set[Side] = set()
        self.done = False
        self.tunnel = False
        self.tunnel_bytes: dict[Side, int] = {"client": 0, "server": 0}
        self.close_reason = ""

    def _emit(self, kind: str, **data: Any) -> None:
        self.emit(PROXY, kind, {"conn": self.conn_id, "mx": self.mx_name, **data})

    async def run(self) -> None:
        self._emit("connect", peer=_peer(self.streams["client"][1]))
        try:
            try:
                self.streams["server"] = await asyncio.wait_for(self.connect_upstream(),
                                                                self.read_timeout)
            except (OSError, TimeoutError) as exc:
                self._emit("upstream-failed", error=str(exc) or type(exc).__name__)
                self.close_reason = "upstream unreachable"
                return
            await self._relay_loop()
            if self.tunnel and not self.done:
                await self._pipe()
        finally:
            await self._shutdown()

    # -- the relay loop ---------------------------------------------------------------
    async def _relay_loop(self) -> None:
        while not self.done and not self.tunnel:
            for side in SIDES:
                if self.reads[side] is None and side not in self.held:
                    reader = self.streams[side][0]
                    self.reads[side] = asyncio.ensure_future(reader.read(CHUNK))
            waiting = [task for task in self.reads.values() if task is not None]
            if not waiting:
                return
            done, _ = await asyncio.wait(waiting, timeout=self.read_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                await self._execute(self.relay.timed_out(self.read_timeout))
                return
            for side in SIDES:
                task = self.reads[side]
                if task is None or not task.done() or self.done or self.tunnel:
                    continue
                self.reads[side] = None
                await self._execute(self._feed(side, task))

    def _feed(self, side: Side, task: asyncio.Task[bytes]) -> list[Action]:
        try:
            data = task.result()
        except OSError as exc:
            return self.relay.closed(side, str(exc) or type(exc).__name__)
        if not data:
            return self.relay.closed(side)
        return self.relay.client_data(data) if side == "client" else self.relay.server_data(data)

    async def _execute(self, actions: list[Action]) -> None:
        for i, action in enumerate(actions):
            if isinstance(action, EmitAction):
                self.emit(PROXY, action.kind, action.data)
            elif self.done:
                continue
            elif isinstance(action, SendToClient) and _tls_to_client_next(actions, i):
                # The sender may answer the 220 with its ClientHello at once: yielding to
                # the loop here would let those bytes land in the plaintext reader, where
                # start_tls never sees them. Write and switch without yielding.
                self.streams["client"][1].write(action.data)
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
        writer = self.streams[side][1]
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.read_timeout)
        except (OSError, TimeoutError) as exc:
            await self._execute(self.relay.closed(side, f"write failed: {exc!s}"))

    async def _hold(self, side: Side) -> None:
        """Stop reading ``side``; whatever it already sent goes to the core now."""
        self.held.add(side)
        task, self.reads[side] = self.reads[side], None
        actions: list[Action] = []
        if task is not None:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
            if not task.cancelled():
                actions += self._feed(side, task)
        buffered = _take_buffered(self.streams[side][0])
        if buffered:
            actions += (self.relay.client_data(buffered) if side == "client"
                        else self.relay.server_data(buffered))
        await self._execute(actions)

    # -- TLS --------------------------------------------------------------------------
    async def _tls_to_server(self) -> None:
        writer = self.streams["server"][1]
        try:
            await writer.start_tls(self.pki.client_context(), server_hostname=self.mx_name,
                                   ssl_handshake_timeout=self.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            self._emit("tls", leg="server", mode="upstream", ok=False, sni=self.mx_name,
                       version=None, cipher=None, cert=None, error=error)
            await self._execute(self.relay.tls_failed("server", error))
            return
        self._emit("tls", leg="server", mode="upstream", ok=True, sni=self.mx_name,
                   **_session(writer), cert=None, error=None)
        self.held.discard("server")
        await self._execute(self.relay.tls_ready("server"))

    async def _tls_to_client(self, plan: TlsPlan) -> None:
        writer = self.streams["client"][1]
        name = plan.cert_name or self.mx_name
        ctx, sni = forged_context(self.pki, name, plan.cert, plan.tls_max)
        facts = {"leg": "client", "mode": plan.mode, "cert": plan.cert.value,
                 "cert_name": name}
        try:
            await writer.start_tls(ctx, ssl_handshake_timeout=self.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            self._emit("tls", **facts, ok=False, sni=sni.server_name, version=None,
                       cipher=None, error=error)
            await self._execute(self.relay.tls_failed("client", error))
            return
        self._emit("tls", **facts, ok=True, sni=sni.server_name, **_session(writer),
                   error=None)
        self.held.discard("client")
        await self._execute(self.relay.tls_ready("client"))

    # -- tunnel and shutdown ------------------------------------------------------------
    async def _pipe(self) -> None:
        """Copy raw bytes both ways until either side closes or goes idle."""
        copies = [asyncio.ensure_future(self._copy("client", "server")),
                  asyncio.ensure_future(self._copy("server", "client"))]
        try:
            await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in copies:
                task.cancel()
            await asyncio.wait(copies)
        self.close_reason = self.close_reason or "tunnel ended"

    async def _copy(self, src: Side, dst: Side) -> None:
        reader, writer = self.streams[src][0], self.streams[dst][1]
        while True:
            try:
                data = await asyncio.wait_for(reader.read(CHUNK), self.read_timeout)
                if not data:
                    self.close_reason = f"{src} closed the tunnel"
                    return
                writer.write(data)
                await asyncio.wait_for(writer.drain(), self.read_timeout)
            except (OSError, TimeoutError) as exc:
                self.close_reason = f"tunnel {src}->{dst}: {str(exc) or type(exc).__name__}"
                return
            self.tunnel_bytes[src] += len(data)

    async def _shutdown(self) -> None:
        for side in SIDES:
            task, self.reads[side] = self.reads[side], None
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        for _, writer in self.streams.values():
            await _close_writer(writer, self.handshake_timeout)
        data: dict[str, Any] = {"transcript": self.relay.transcript.as_dicts(),
                                "reason": self.close_reason}
        if self.tunnel:
            data["tunnel_bytes"] = dict(self.tunnel_bytes)
        self._emit("close", **data)


def _tls_to_client_next(actions: list[Action], i: int) -> bool:
    """True when only writes to the sender stand between here and the switch to TLS."""
    for action in actions[i + 1:]:
        if isinstance(action, EmitAction | SendToClient):
            continue
        return isinstance(action, StartTlsToClient)
    return False


def _session(writer: asyncio.StreamWriter) -> dict[str, Any]:
    sslobj = writer.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject | ssl.SSLSocket):
        return {"version": None, "cipher": None}
    cipher = sslobj.cipher()
    return {"version": sslobj.version(), "cipher": cipher[0] if cipher else None}


async def _close_writer(writer: asyncio.StreamWriter, timeout: float) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        pass
