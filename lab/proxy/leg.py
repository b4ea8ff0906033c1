"""One side of a proxied connection, read through the proxy's own protocol object.

Every byte the transport delivers lands here and goes to the relay core, so that nothing
waits in a buffer the core does not know of when TLS starts (plaintext sent just before the
switch must reach the core, which drops it, never the TLS session). A leg adopts the
transport of the streams it was given; bytes the stream had already buffered are taken out
through its public API (EOF fed, then read), and the stream is not used again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from lab.proxy.streams import Streams


class Leg(asyncio.Protocol):
    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self._chunks: deque[bytes] = deque()
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.error = ""
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def adopt(cls, streams: Streams, wake: asyncio.Event) -> Leg:
        reader, writer = streams
        leg = cls(wake)
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.set_protocol(leg)
        leg.connection_made(transport)
        leg._writer = writer  # kept until shutdown: its transport is ours now
        reader.feed_eof()  # nothing more reaches the stream; read what it holds, at once
        early = await reader.read()
        if early:
            leg._chunks.appendleft(early)
            wake.set()
        return leg

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake.set()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof and exc is not None:
            self.error = str(exc) or type(exc).__name__
        self.eof = True
        self._writable.set()
        self._wake.set()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- for the connection ---------------------------------------------------------------
    @property
    def has_input(self) -> bool:
        return bool(self._chunks) or self.eof

    def take(self) -> bytes:
        """Every byte received and not yet taken."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data

    def pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    async def write(self, data: bytes, timeout: float) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        await asyncio.wait_for(self._writable.wait(), timeout)

    async def start_tls(self, ctx: ssl.SSLContext, *, server_side: bool,
                        server_hostname: str | None, timeout: float) -> None:
        """TLS on this leg; this object then reads and writes the decrypted bytes."""
        raw = self.transport
        assert raw is not None
        try:
            await asyncio.wait_for(self._writable.wait(), timeout)
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, ctx, server_side=server_side, server_hostname=server_hostname,
                ssl_handshake_timeout=timeout)
        except BaseException:
            raw.abort()  # the handshake never finished: nothing to say goodbye to
            self.eof = True
            if not self.lost.done():
                self.lost.set_result(None)
            raise
        if tls is None:
            raise ConnectionResetError("connection closed during the TLS handshake")
        self.transport = tls

    async def close(self, timeout: float) -> None:
        if self.transport is not None:
            self.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(self.lost), timeout)
            except TimeoutError:
                self.transport.abort()
        if self._writer is not None and not self._writer.transport.is_closing():
            self._writer.transport.abort()
