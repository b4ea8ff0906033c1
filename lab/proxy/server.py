"""SmtpProxy: the on-path attacker in front of one MX. Accepts senders, relays to the MX."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from lab.events import PROXY, Emit
from lab.pki import LabPKI
from lab.proxy.connection import Connection
from lab.proxy.streams import ConnectUpstream
from lab.smtp.hooks import SmtpHooks

DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


class SmtpProxy:
    """``configure`` applies to connections accepted afterwards; ``close`` ends every one."""

    def __init__(self, pki: LabPKI, emit: Emit, connect_upstream: ConnectUpstream, *,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> None:
        self.pki = pki
        self.emit = emit
        self.connect_upstream = connect_upstream
        self.read_timeout = read_timeout
        self.handshake_timeout = handshake_timeout
        self.mx_name = "mx.invalid.test"
        self.attacks: tuple[SmtpHooks, ...] = ()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._count = 0

    def configure(self, mx_name: str, attacks: Sequence[SmtpHooks]) -> None:
        self.mx_name = mx_name.lower().rstrip(".")
        self.attacks = tuple(attacks)

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._accept, sock=sock)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count += 1
        connection = Connection(
            conn_id=f"{self.mx_name}/{self._count}", mx_name=self.mx_name,
            attacks=self.attacks, pki=self.pki, emit=self.emit, client=(reader, writer),
            connect_upstream=self.connect_upstream, read_timeout=self.read_timeout,
            handshake_timeout=self.handshake_timeout)
        task = asyncio.ensure_future(connection.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        """A connection that died of an exception is a bug in the proxy: log it, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.emit(PROXY, "internal-error", {"mx": self.mx_name, "error": repr(exc)})

    @property
    def connections(self) -> int:
        """Connections still open."""
        return len(self._tasks)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
