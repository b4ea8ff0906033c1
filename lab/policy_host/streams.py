"""Stream helpers of the policy host: read a request head, reset, pipe two connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from lab.policy_host.http import MAX_HEAD, HttpError, find_head_end


async def pipe(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter,
                idle_timeout: float) -> None:
    """Copy both ways until both sides are done (or one is idle for ``idle_timeout``)."""

    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(idle_timeout):
                    data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            if writer.can_write_eof() and not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()

    tasks = [asyncio.ensure_future(copy(a_reader, b_writer)),
             asyncio.ensure_future(copy(b_reader, a_writer))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def reset(transport: asyncio.BaseTransport) -> None:
    """Drop a TCP connection with a reset (the host is down)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Read up to the blank line ending a request head; HttpError 431 past ``MAX_HEAD``."""
    buffer = b""
    while True:
        end = find_head_end(buffer)
        if end is not None:
            if end > MAX_HEAD:
                raise HttpError(431, "request head too large")
            return buffer[:end]
        if len(buffer) > MAX_HEAD:
            raise HttpError(431, "request head too large")
        data = await reader.read(4096)
        if not data:
            raise HttpError(400, "connection closed before the request was complete")
        buffer += data
