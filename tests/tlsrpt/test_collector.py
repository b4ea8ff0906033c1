"""The HTTPS collector over real sockets and real TLS: each malformed submission is a finding
with its section, answered with a status, and the collector keeps serving."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lab.backends.sockets import bound_socket
from lab.events import COLLECTOR, EventLog
from lab.pki import LabPKI
from lab.policy_host.server import PolicyHost
from lab.tlsrpt import GZIP_TYPE, JSON_TYPE, MAX_BODY_BYTES, REPORT_HTTPS_HOST, REPORT_PATH
from lab.tlsrpt.collector import CollectorSetup
from tests.tlsrpt.kit import body

pytestmark = pytest.mark.integration
TIMEOUT = 20.0


class Client:
    def __init__(self, port: int, pki: LabPKI, log: EventLog) -> None:
        self.port, self.log = port, log
        self.ctx = ssl.create_default_context(cafile=str(pki.ca_file))

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx,
                                             server_hostname=REPORT_HTTPS_HOST)

    async def raw(self, data: bytes) -> bytes:
        """Send bytes on a new connection, return everything the collector answers."""
        reader, writer = await self.open()
        try:
            writer.write(data)
            await writer.drain()
            async with asyncio.timeout(TIMEOUT):
                return await reader.read()
        finally:
            writer.close()

    async def post(self, data: bytes, kind: str | None = JSON_TYPE, path: str = REPORT_PATH,
                   method: str = "POST") -> int:
        head = f"{method} {path} HTTP/1.1\r\nHost: {REPORT_HTTPS_HOST}\r\n"
        if kind is not None:
            head += f"Content-Type: {kind}\r\n"
        head += f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        answer = await self.raw(head.encode() + data)
        return int(answer.split(b" ", 2)[1])

    def reports(self) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.log.select(source=COLLECTOR)]

    async def wait_reports(self, count: int) -> list[dict[str, Any]]:
        def enough(events: Any) -> bool:
            return sum(1 for e in events if e.source == COLLECTOR) >= count
        assert await self.log.wait_for(enough, 0, time.monotonic() + TIMEOUT)
        return self.reports()


ENABLED = CollectorSetup(enabled=True)


def run(body_fn: Callable[[Client, PolicyHost], Awaitable[None]], tmp_path: Path,
        setup: CollectorSetup = ENABLED) -> None:
    async def main() -> None:
        pki = LabPKI(tmp_path)
        log = EventLog(check=True)
        host = PolicyHost(pki, log.emit)
        host.configure({})
        host.configure_collector(setup)
        sock = bound_socket(socket.SOCK_STREAM, "127.0.0.1", 0)
        await host.start(sock)
        try:
            await asyncio.wait_for(body_fn(Client(sock.getsockname()[1], pki, log), host), 60)
        finally:
            await asyncio.wait_for(host.close(), 10)
        assert log.undeclared == []

    asyncio.run(main())


def sections(event: dict[str, Any]) -> list[str]:
    return [f["section"] for f in event["findings"]]


def test_valid_reports_are_accepted_over_both_media_types(tmp_path: Path) -> None:
    async def body_fn(client: Client, _host: PolicyHost) -> None:
        assert await client.post(body(), JSON_TYPE) == 200
        assert await client.post(body(gz=True), GZIP_TYPE) == 200
        first, second = await client.wait_reports(2)
        for event, kind in ((first, JSON_TYPE), (second, GZIP_TYPE)):
            assert event["transport"] == "https" and event["status"] == 200
            assert event["content_type"] == kind and event["findings"] == []
            assert event["policy_domains"] == ["victim.test"]
            assert event["report"]["report-id"] == "2026-12-01T00:00:00Z_victim.test"
            assert event["failed_on_purpose"] is False and event["path"] == REPORT_PATH
        assert second["size"] == len(body(gz=True))

    run(body_fn, tmp_path)


MALFORMED = [  # (body, content type, status, sections)
    (body(), "application/json", 415, ["RFC 8460 5.3"]),
    (body(), None, 415, ["RFC 8460 5.3"]),
    (b"{not json", JSON_TYPE, 400, ["RFC 8460 4.4"]),
    (b"not gzip at all", GZIP_TYPE, 400, ["RFC 8460 5.2"]),
    (body(gz=True)[:20], GZIP_TYPE, 400, ["RFC 8460 5.2"]),
    (body({"organization-name": "x"}), JSON_TYPE, 200, ["RFC 8460 4.4"] * 4),
]


def test_malformed_submissions_are_findings_and_the_collector_keeps_serving(
        tmp_path: Path) -> None:
    async def body_fn(client: Client, _host: PolicyHost) -> None:
        for data, kind, status, _ in MALFORMED:
            assert await client.post(data, kind) == status
        # a head announcing 10 MB is refused before a byte of the body is sent
        reader, writer = await client.open()
        writer.write(f"POST {REPORT_PATH} HTTP/1.1\r\nHost: {REPORT_HTTPS_HOST}\r\n"
                     f"Content-Type: {GZIP_TYPE}\r\nContent-Length: {10 * 10**6}\r\n\r\n"
                     .encode())
        async with asyncio.timeout(TIMEOUT):
            assert (await reader.readline()).startswith(b"HTTP/1.1 413")
        writer.close()
        # 10 MB chunked, no length: reading stops at the limit
        assert await chunked_flood(client, 10 * 10**6) == 413
        # not HTTP at all
        answer = await client.raw(b"\x16\x03garbage\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")
        # a GET and another path are no submission
        assert await client.post(b"", None, method="GET") == 405
        assert await client.post(body(), JSON_TYPE, path="/other") == 404
        # and a valid report still goes through
        assert await client.post(body(), JSON_TYPE) == 200
        events = await client.wait_reports(len(MALFORMED) + 4)
        for event, (_, kind, status, expected) in zip(events, MALFORMED, strict=False):
            assert (event["content_type"], event["status"]) == (kind, status)
            assert sections(event) == expected, event["findings"]
        flood_len, flood_chunked, garbage, last = events[len(MALFORMED):]
        assert (flood_len["status"], sections(flood_len)) == (413, ["lab limit"])
        assert flood_len["size"] == 10 * 10**6 and "refused unread" in str(flood_len["findings"])
        assert (flood_chunked["status"], sections(flood_chunked)) == (413, ["lab limit"])
        assert flood_chunked["size"] <= MAX_BODY_BYTES
        assert (garbage["status"], sections(garbage)) == (400, ["RFC 8460 5.3.2"])
        assert (last["status"], last["findings"]) == (200, [])

    run(body_fn, tmp_path)


async def chunked_flood(client: Client, total: int) -> int:
    """POST ``total`` bytes in chunks until the collector answers; its status."""
    reader, writer = await client.open()
    writer.write(f"POST {REPORT_PATH} HTTP/1.1\r\nHost: {REPORT_HTTPS_HOST}\r\n"
                 f"Content-Type: {JSON_TYPE}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    answer = asyncio.ensure_future(reader.readline())
    sent = 0
    try:
        while sent < total and not answer.done():
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                break  # the collector closed the connection after answering
            sent += 65536
        async with asyncio.timeout(TIMEOUT):
            line = await answer
        return int(line.split(b" ", 2)[1])
    finally:
        answer.cancel()
        writer.close()


def test_keep_alive_serves_several_reports_on_one_connection(tmp_path: Path) -> None:
    async def body_fn(client: Client, _host: PolicyHost) -> None:
        reader, writer = await client.open()
        data = body()
        request = (f"POST {REPORT_PATH} HTTP/1.1\r\nHost: {REPORT_HTTPS_HOST}\r\n"
                   f"Content-Type: {JSON_TYPE}\r\nContent-Length: {len(data)}\r\n\r\n"
                   ).encode() + data
        for _ in range(2):
            writer.write(request)
            async with asyncio.timeout(TIMEOUT):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
                await reader.readuntil(b"}\n")
        writer.close()
        assert [e["status"] for e in await client.wait_reports(2)] == [200, 200]

    run(body_fn, tmp_path)


def test_the_collector_fails_on_purpose_then_accepts(tmp_path: Path) -> None:
    async def body_fn(client: Client, host: PolicyHost) -> None:
        assert [await client.post(body()) for _ in range(3)] == [500, 500, 200]
        events = await client.wait_reports(3)
        assert [e["failed_on_purpose"] for e in events] == [True, True, False]
        assert all(e["findings"] == [] for e in events)  # the report itself was fine
        host.configure_collector(CollectorSetup(enabled=True, fail_times=1))  # a new phase
        assert await client.post(body()) == 500

    run(body_fn, tmp_path, CollectorSetup(enabled=True, fail_times=2))


def test_without_tlsrpt_in_the_world_the_report_host_is_not_served(tmp_path: Path) -> None:
    async def body_fn(client: Client, _host: PolicyHost) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.open()
        assert client.reports() == []

    run(body_fn, tmp_path, CollectorSetup())
