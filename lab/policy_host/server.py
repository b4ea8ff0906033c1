"""The policy host: HTTPS for ``mta-sts.<domain>``, honest or misbehaving on purpose.

One host serves every configured policy domain. TLS is started by hand on each accepted
connection (``StreamWriter.start_tls``) with a per-connection context whose SNI callback
picks the certificate kind the domain's ``PolicyResponse`` asks for, or drops the
connection before the handshake when the response says the host is unreachable.

Choices:
- SNI that is not ``mta-sts.<configured domain>``, or no SNI: a valid certificate for
  ``policy-host.lab.test`` is presented and every request is answered 404.
- The SNI selects the domain; a Host header naming another host gets 421.
- Headers in ``PolicyResponse.headers`` replace the host's own header of the same name
  (Content-Type, Content-Length, Connection), so an attack can make them lie.
- ``reachable=False`` resets the TCP connection (SO_LINGER 0) as soon as the ClientHello
  names that domain: the client sees a reset before any TLS answer.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.events import POLICY, Emit
from lab.pki import CertKind, LabPKI
from lab.policy_host.http import (
    MAX_HEAD,
    REASONS,
    HttpError,
    Request,
    find_head_end,
    host_name,
    parse_request_head,
    response_head,
)
from lab.policy_host.response import PolicyResponse

POLICY_PATH = "/.well-known/mta-sts.txt"
FALLBACK_HOST = "policy-host.lab.test"
"""The identity presented for an unknown or missing SNI."""
SERVER = "mtasts-lab-policy-host"
TRICKLE_INTERVAL_S = 0.05
"""Pacing step for a trickling body: one chunk per step."""


def trickle_plan(bytes_per_s: float) -> tuple[int, float]:
    """Chunk size and pause between chunks for a body sent at ``bytes_per_s``."""
    if not bytes_per_s > 0:
        raise ValueError("trickle rate must be positive")
    chunk = max(1, round(bytes_per_s * TRICKLE_INTERVAL_S))
    return chunk, chunk / bytes_per_s


def trickle_chunks(size: int, bytes_per_s: float) -> int:
    """How many chunks a trickled body of ``size`` bytes is sent in."""
    return math.ceil(size / trickle_plan(bytes_per_s)[0])


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _domain_of_host(host: str | None) -> str | None:
    if host and host.startswith("mta-sts."):
        return host[len("mta-sts."):]
    return None


@dataclass(frozen=True)
class _Site:
    response: PolicyResponse
    context: ssl.SSLContext


@dataclass
class _Conn:
    """What one connection learnt during its handshake."""

    peer: str
    sni: str | None = None
    domain: str | None = None
    cert: str = CertKind.VALID.value
    refused: bool = False
    error: str | None = None


@dataclass
class _Answer:
    status: int
    reason: str
    body: bytes = b""
    content_type: str | None = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float | None = None
    applied: tuple[str, ...] = ()
    domain: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _error(status: int, domain: str | None = None, error: str | None = None) -> _Answer:
    reason = REASONS.get(status, "Error")
    extra = {"error": error} if error else {}
    return _Answer(status, reason, f"{status} {reason}\n".encode(), domain=domain, extra=extra)


class PolicyHost:
    """HTTPS policy host. ``configure`` any time; changes apply to new connections."""

    def __init__(self, pki: LabPKI, emit: Emit, *, read_timeout: float = 10.0,
                 handshake_timeout: float = 10.0) -> None:
        self.pki = pki
        self.emit = emit
        self.read_timeout = read_timeout
        self.handshake_timeout = handshake_timeout
        self._sites: dict[str, _Site] = {}
        self._fallback = pki.write_leaf(FALLBACK_HOST)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def configure(self, responses: Mapping[str, PolicyResponse]) -> None:
        """Answers keyed by policy domain (``victim.test`` serves ``mta-sts.victim.test``)."""
        sites = {}
        for domain, response in responses.items():
            name = _norm(domain)
            context = self.pki.server_context(f"mta-sts.{name}", response.cert)
            sites[name] = _Site(response, context)
        self._sites = sites

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD)

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # One connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._connection(reader, writer)
        except (OSError, EOFError, TimeoutError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # close(): end quietly (3.11 streams log a cancelled handler as an error)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _Conn(f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))
        sites = self._sites  # this connection's view, even if configure() runs meanwhile
        self.emit(POLICY, "connect", {"peer": conn.peer})
        context = self._connection_context(sites, conn, writer.transport)
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self.handshake_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if conn.refused:
                self.emit(POLICY, "refused", {"sni": conn.sni, "domain": conn.domain,
                                              "peer": conn.peer})
            else:
                error = conn.error or str(exc) or type(exc).__name__
                self.emit(POLICY, "tls-failed", {"sni": conn.sni, "error": error,
                                                 "cert": conn.cert, "peer": conn.peer})
            return
        answer, request = await self._answer(reader, sites, conn)
        await self._send(writer, answer, request, conn)

    def _connection_context(self, sites: Mapping[str, _Site], conn: _Conn,
                            raw: asyncio.BaseTransport) -> ssl.SSLContext:
        """A context for one connection: fallback certificate, switched by SNI."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self._fallback)

        def on_client_hello(ssl_obj: Any, server_name: str | None,
                            _ctx: ssl.SSLContext) -> int | None:
            try:
                conn.sni = server_name
                domain = _domain_of_host(_norm(server_name)) if server_name else None
                site = sites.get(domain) if domain else None
                if site is None:
                    self.emit(POLICY, "handshake", {"sni": server_name, "cert": conn.cert,
                                                    "host": FALLBACK_HOST, "peer": conn.peer})
                    return None
                conn.domain = domain
                if not site.response.reachable:
                    conn.refused = True
                    _reset(raw)
                    return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
                conn.cert = site.response.cert.value
                ssl_obj.context = site.context
                self.emit(POLICY, "handshake", {"sni": server_name, "cert": conn.cert,
                                                "host": f"mta-sts.{domain}",
                                                "peer": conn.peer})
                return None
            except Exception as exc:  # never let an error escape into OpenSSL
                conn.error = f"policy host: {exc!r}"
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR

        context.sni_callback = on_client_hello
        return context

    async def _answer(self, reader: asyncio.StreamReader, sites: Mapping[str, _Site],
                      conn: _Conn) -> tuple[_Answer, Request | None]:
        try:
            async with asyncio.timeout(self.read_timeout):
                head = await read_head(reader)
            request = parse_request_head(head)
        except HttpError as exc:
            return _error(exc.status, error=str(exc)), None
        except TimeoutError:
            return _error(408, error="timed out reading the request"), None
        return self._route(request, sites, conn), request

    def _route(self, request: Request, sites: Mapping[str, _Site], conn: _Conn) -> _Answer:
        domain = conn.domain
        site = sites.get(domain) if domain else None
        if site is None or domain is None:
            return _error(404)
        host = request.header("Host")
        if host is not None and host_name(host) != f"mta-sts.{domain}":
            return _error(421, domain)
        if request.method != "GET":
            answer = _error(405, domain)
            answer.headers = (("Allow", "GET"),)
            return answer
        if request.target != POLICY_PATH:
            return _error(404, domain)
        r = site.response
        return _Answer(r.status, r.reason, r.body, r.content_type, r.headers,
                       r.trickle_bytes_per_s, r.applied, domain)

    async def _send(self, writer: asyncio.StreamWriter, answer: _Answer,
                    request: Request | None, conn: _Conn) -> None:
        try:
            head = response_head(answer.status, answer.reason, _headers(answer))
        except ValueError as exc:
            answer = _error(500, answer.domain, f"bad configured response: {exc}")
            head = response_head(answer.status, answer.reason, _headers(answer))
        writer.write(head)
        chunks, sent, aborted = await self._write_body(writer, answer)
        self.emit(POLICY, "fetch" if request is not None else "bad-request", {
            "domain": answer.domain,
            "host": request.header("Host") if request else None,
            "method": request.method if request else None,
            "path": request.target if request else None,
            "status": answer.status,
            "bytes": sent,
            "chunks": chunks,
            "complete": aborted is None,
            "aborted": aborted,
            "applied": list(answer.applied),
            "sni": conn.sni,
            "cert": conn.cert,
            "content_type": answer.content_type,
            "peer": conn.peer,
            **answer.extra,
        })
        writer.close()
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass

    async def _write_body(self, writer: asyncio.StreamWriter,
                          answer: _Answer) -> tuple[int, int, str | None]:
        """Write the body; a trickle is paced by the event loop.

        Returns (chunks written, bytes written, why the client stopped reading or None).
        """
        body = answer.body
        size, pause = (trickle_plan(answer.trickle) if answer.trickle is not None
                       else (max(1, len(body)), 0.0))
        chunks = sent = 0
        try:
            for start in range(0, len(body), size):
                if chunks:
                    await asyncio.sleep(pause)  # pacing is the behaviour, not a wait
                piece = body[start:start + size]
                writer.write(piece)
                async with asyncio.timeout(self.read_timeout):
                    await writer.drain()
                chunks, sent = chunks + 1, sent + len(piece)
        except (OSError, TimeoutError) as exc:
            return chunks, sent, str(exc) or type(exc).__name__
        return chunks, sent, None


def _headers(answer: _Answer) -> list[tuple[str, str]]:
    """The host's own headers, each replaced by a configured header of the same name."""
    own = [("Server", SERVER), ("Content-Length", str(len(answer.body))),
           ("Connection", "close")]
    if answer.content_type is not None:
        own.insert(1, ("Content-Type", answer.content_type))
    configured = {name.lower() for name, _ in answer.headers}
    return [h for h in own if h[0].lower() not in configured] + list(answer.headers)


def _reset(transport: asyncio.BaseTransport) -> None:
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
