"""Helpers for the fake_dns tests: a running server on loopback and small async DNS clients.

A plain module (not conftest.py) with a unique name, imported by the tests next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from dnslib import DNSRecord

from fake_dns import DnsServer, QueryLogEntry, Zone, bind_pair

Addr = tuple[str, int]
TEST_DEADLINE = 15.0
"""No test body may run longer than this (tests must never hang)."""


def run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run with an overall deadline."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_DEADLINE):
            await coro

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(zone: Zone, on_query: Callable[[QueryLogEntry], None] | None = None,
                  tcp: bool = True) -> AsyncIterator[tuple[DnsServer, Addr]]:
    """A DnsServer on 127.0.0.1, an ephemeral port for UDP and TCP."""
    udp_sock, tcp_sock = bind_pair("127.0.0.1", 0)
    if not tcp:
        tcp_sock.close()
    server = DnsServer(zone, on_query)
    try:
        await server.start(udp_sock, tcp_sock if tcp else None)
        host, port = udp_sock.getsockname()[:2]
        yield server, (host, port)
    finally:
        await server.close()
        udp_sock.close()
        tcp_sock.close()


async def udp_exchange(addr: Addr, payload: bytes, timeout: float = 2.0) -> bytes | None:
    """Send one datagram; the reply, or None if none came within ``timeout``."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, _addr: tuple[str | int, ...]) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=addr)
    try:
        transport.sendto(payload)
        try:
            return await asyncio.wait_for(got, timeout)
        except TimeoutError:
            return None
    finally:
        transport.close()


async def udp_query(addr: Addr, query: DNSRecord, timeout: float = 2.0) -> DNSRecord | None:
    data = await udp_exchange(addr, query.pack(), timeout)
    return DNSRecord.parse(data) if data is not None else None


class TcpClient:
    """One TCP connection, several length-prefixed queries on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, addr: Addr) -> TcpClient:
        reader, writer = await asyncio.open_connection(*addr)
        return cls(reader, writer)

    def send_raw(self, payload: bytes) -> None:
        self.writer.write(len(payload).to_bytes(2, "big") + payload)

    async def receive(self, timeout: float = 2.0) -> DNSRecord | None:
        try:
            async with asyncio.timeout(timeout):
                size = int.from_bytes(await self.reader.readexactly(2), "big")
                return DNSRecord.parse(await self.reader.readexactly(size))
        except TimeoutError:
            return None

    async def query(self, query: DNSRecord, timeout: float = 2.0) -> DNSRecord | None:
        self.send_raw(query.pack())
        await self.writer.drain()
        return await self.receive(timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def tcp_query(addr: Addr, query: DNSRecord, timeout: float = 2.0) -> DNSRecord | None:
    client = await TcpClient.connect(addr)
    try:
        return await client.query(query, timeout)
    finally:
        await client.close()


def txt_strings(reply: DNSRecord) -> list[list[bytes]]:
    """The character-strings of each TXT answer."""
    return [list(rr.rdata.data) for rr in reply.rr if rr.rtype == 16]


def victim_zone() -> Zone:
    zone = Zone()
    zone.add("victim.test", "MX", "10 mx1.victim.test.")
    zone.add("victim.test", "MX", "20 mx2.victim.test.")
    zone.add("mx1.victim.test", "A", "127.0.0.11")
    zone.add("mx2.victim.test", "A", "127.0.0.12")
    zone.add("_mta-sts.victim.test", "TXT", "v=STSv1; id=20240101;")
    zone.add("mta-sts.victim.test", "A", "127.0.0.20")
    return zone
