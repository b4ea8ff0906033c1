"""The HTTPS report collector: ``POST https://tlsrpt.reports.test/v1/tlsrpt`` (RFC 8460 5.3.2).

It runs inside the policy host (the report host's name resolves to the policy host's
address; the TLS handshake's SNI picks the collector, which presents a lab-CA certificate for
``tlsrpt.reports.test``), so every backend serves it with no socket of its own. HTTP/1.1 is
parsed by h11; keep-alive is honoured.

Each POST is one ``("collector", "tlsrpt-report")`` event with what ``lab.tlsrpt.examine``
found and the status answered:

- 200: the report was read (findings about its content do not change the answer);
- 415: the Content-Type is not ``application/tlsrpt+json`` or ``+gzip``;
- 400: the body is not a report (bad gzip, not JSON), or the request is not valid HTTP;
- 413: the body is over ``MAX_BODY_BYTES`` (announced by Content-Length: refused unread;
  otherwise reading stops at the limit);
- 500 on purpose for the first ``fail_times`` POSTs after ``configure`` (a world's
  ``tlsrpt.https_fails``: does the sender retry, RFC 8460 5.4?).

Other methods get 405, other paths 404 (neither is an event: no report was submitted).
"""

from __future__ import annotations

import asyncio
import http
import json
from dataclasses import dataclass
from typing import Any

import h11

from lab.events import COLLECTOR, Emit
from lab.pki import LabPKI
from lab.tlsrpt.findings import Finding, limit, rfc
from lab.tlsrpt.names import REPORT_HTTPS_HOST, REPORT_PATH
from lab.tlsrpt.submission import MAX_BODY_BYTES, MEDIA_TYPES, Submission, examine, media_type

READ_TIMEOUT_S = 10.0
MAX_REQUESTS = 100
"""Requests served on one connection before it is closed."""
LINGER_S = 2.0
LINGER_BYTES = 16 << 20
"""After refusing a body, read and drop at most this much (for at most ``LINGER_S``) before
closing, so the client reads the 413 instead of a reset; nothing of it is kept."""


@dataclass(frozen=True)
class CollectorSetup:
    """What the collector does in a phase; ``enabled`` False: its name is not served."""

    enabled: bool = False
    fail_times: int = 0
    """Answer the first this many POSTs with 500."""


class Collector:
    def __init__(self, pki: LabPKI, emit: Emit) -> None:
        self.pki = pki
        self.emit = emit
        self.setup = CollectorSetup()
        self._failures_left = 0

    def configure(self, setup: CollectorSetup) -> None:
        self.setup = setup
        self._failures_left = setup.fail_times

    def serves(self, sni: str | None) -> bool:
        return self.setup.enabled and sni is not None and (
            sni.lower().rstrip(".") == REPORT_HTTPS_HOST)

    def context(self) -> Any:
        return self.pki.server_context(REPORT_HTTPS_HOST)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: str) -> None:
        """Answer requests on one TLS connection until the client is done."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        for _ in range(MAX_REQUESTS):
            try:
                keep = await self._one(conn, reader, writer, peer)
            except (OSError, TimeoutError, h11.LocalProtocolError):
                return
            if not keep or conn.our_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(READ_TIMEOUT_S):
                data = await reader.read(65536)
            conn.receive_data(data)

    async def _one(self, conn: h11.Connection, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, peer: str) -> bool:
        """One request; True when the connection may serve another."""
        try:
            request = await self._next(conn, reader)
        except h11.RemoteProtocolError as exc:
            sub = Submission("https", None, 0, findings=[
                rfc("5.3.2", f"not a valid HTTP/1.1 request ({exc})")])
            await self._answer(conn, writer, 400, close=True)
            self._report(sub, 400, None, peer)
            return False
        if isinstance(request, h11.ConnectionClosed) or not isinstance(request, h11.Request):
            return False
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if path.split("?")[0] != REPORT_PATH:
            await self._answer(conn, writer, 404, close=True)
            return False
        if method != "POST":
            await self._answer(conn, writer, 405, close=True, extra=[("Allow", "POST")])
            return False
        content_type = headers.get("content-type")
        length = headers.get("content-length")

        async def too_large(size: int, why: str) -> bool:
            sub = Submission("https", content_type, size, findings=[limit(why)])
            await self._answer(conn, writer, 413, close=True)
            self._report(sub, 413, path, peer)
            await _linger(reader)
            return False

        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await too_large(int(length), f"Content-Length {length}, over "
                                                f"{MAX_BODY_BYTES} bytes; refused unread")
        body, complete = await self._body(conn, reader)
        if not complete:
            return await too_large(len(body), f"a body over {MAX_BODY_BYTES} bytes; reading "
                                              "stopped there")
        sub = examine("https", body, content_type)
        if self._failures_left > 0:
            self._failures_left -= 1
            await self._answer(conn, writer, 500)
            self._report(sub, 500, path, peer, on_purpose=True)
            return True
        if media_type(content_type) not in MEDIA_TYPES:
            status = 415
        elif sub.report is None:
            status = 400
        else:
            status = 200
        await self._answer(conn, writer, status)
        self._report(sub, status, path, peer)
        return True

    async def _body(self, conn: h11.Connection,
                    reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        """The request body, and False when it went over the limit (reading stopped)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    return b"".join(chunks), False
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks), True
            else:
                return b"".join(chunks), True

    async def _answer(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                      *, close: bool = False,
                      extra: list[tuple[str, str]] | None = None) -> None:
        body = json.dumps({"status": status}).encode() + b"\n"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   *(extra or [])]
        if close:
            headers.append(("Connection", "close"))
        try:
            reason = http.HTTPStatus(status).phrase.encode()
            writer.write(conn.send(h11.Response(status_code=status, headers=headers,
                                                reason=reason)) or b"")
            writer.write(conn.send(h11.Data(data=body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # the client's side made h11 refuse: send it raw
            writer.write(f"HTTP/1.1 {status} \r\nConnection: close\r\nContent-Length: "
                         f"{len(body)}\r\n\r\n".encode() + body)
        async with asyncio.timeout(READ_TIMEOUT_S):
            await writer.drain()

    def _report(self, sub: Submission, status: int, path: str | None, peer: str,
                on_purpose: bool = False) -> None:
        data = sub.event()
        data.update(status=status, path=path, peer=peer, failed_on_purpose=on_purpose)
        self.emit(COLLECTOR, "tlsrpt-report", data)


async def _linger(reader: asyncio.StreamReader) -> None:
    dropped = 0
    try:
        async with asyncio.timeout(LINGER_S):
            while dropped < LINGER_BYTES:
                data = await reader.read(65536)
                if not data:
                    return
                dropped += len(data)
    except (OSError, TimeoutError):
        return


def findings_of(data: dict[str, Any]) -> list[Finding]:
    """The findings of an event payload, back as ``Finding`` objects."""
    return [Finding(str(f["section"]), str(f["text"]), str(f.get("level", "must")))
            for f in data.get("findings") or []]
