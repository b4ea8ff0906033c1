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
- A configured ``Location`` starting with ``/`` is sent as ``https://<Host><path>`` with the
  Host (and port) the request named, so a sender that follows a redirect reaches this host.
- ``also_serves`` paths answer 200 ``text/plain`` (the target of a redirect); every other
  path is 404.
- ``not_modified``: a conditional request (If-None-Match, If-Modified-Since) gets 304 with
  no body. Every fetch event says whether the request was ``conditional``.
- ``intercept`` on any configured domain: the attacker is on the path to this host's
  address. Every new connection is handed, unread, to the attacker's mitmproxy
  (``lab.policy_host.mitm``, started on first need), which reaches the genuine answers
  through a second, internal listener of this host on the same address.
- Events that concern a configured domain (handshake, tls-failed, refused, fetch, and the
  attacker's mitm-* events) carry ``applied``: the attacks that shaped its answer (the
  oracle's evidence). ``intercept`` only names them in ``attacks``: handing a connection to
  mitmproxy is not yet the attack, its certificate is.
- A 200 carries an ``ETag`` and a ``Last-Modified``, as most web servers send.

This module handles connections and TLS; what a request gets is decided in ``answer`` (pure),
the stream helpers are in ``streams``.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from lab.addresses import address_text
from lab.events import POLICY, Emit
from lab.pki import LabPKI
from lab.policy_host.answer import (
    POLICY_PATH,
    Answer,
    Conn,
    Site,
    conditional,
    domain_of_host,
    error_answer,
    interceptions,
    norm,
    response_headers,
    route,
    trickle_chunks,
    trickle_plan,
)
from lab.policy_host.http import MAX_HEAD, HttpError, Request, parse_request_head, response_head
from lab.policy_host.mitm import MitmPolicyProxy
from lab.policy_host.response import Interception, PolicyResponse
from lab.policy_host.streams import pipe, read_head, reset
from lab.tlsrpt.collector import Collector, CollectorSetup

__all__ = ["FALLBACK_HOST", "POLICY_PATH", "PolicyHost", "read_head", "trickle_chunks",
           "trickle_plan"]

FALLBACK_HOST = "policy-host.lab.test"
"""The identity presented for an unknown or missing SNI."""


class PolicyHost:
    """HTTPS policy host. ``configure`` any time; changes apply to new connections."""

    def __init__(self, pki: LabPKI, emit: Emit, *, read_timeout: float = 10.0,
                 handshake_timeout: float = 10.0) -> None:
        self.pki = pki
        self.emit = emit
        self.read_timeout = read_timeout
        self.handshake_timeout = handshake_timeout
        self._sites: dict[str, Site] = {}
        self._fallback = pki.write_leaf(FALLBACK_HOST)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._genuine: asyncio.Server | None = None
        """The internal listener the attacker's mitmproxy reaches the genuine host on."""
        self._mitm: MitmPolicyProxy | None = None
        self._mitm_start: asyncio.Future[tuple[str, int]] | None = None
        self.collector = Collector(pki, emit)
        """The TLS-RPT collector, served for its own SNI (``lab.tlsrpt.collector``)."""

    def configure_collector(self, setup: CollectorSetup) -> None:
        """Serve the TLS-RPT collector (or not); resets its count of on-purpose failures."""
        self.collector.configure(setup)

    def configure(self, responses: Mapping[str, PolicyResponse]) -> None:
        """Answers keyed by policy domain (``victim.test`` serves ``mta-sts.victim.test``)."""
        sites = {}
        for domain, response in responses.items():
            name = norm(domain)
            context = self.pki.server_context(f"mta-sts.{name}", response.cert)
            sites[name] = Site(response, context)
        self._sites = sites
        if interceptions(sites) and self._server is not None and self._mitm_start is None:
            # start the attacker's proxy now, not on the sender's first connection
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no running loop: started on the first intercepted connection
            self._mitm_start = loop.create_task(self._start_mitm())

    async def ready(self) -> bool:
        """Wait until the attacker's mitmproxy listens, when an interception is configured
        (the sender must meet the attacker, not a host still starting); True if it waited."""
        start = self._mitm_start
        if start is None or not interceptions(self._sites):
            return False
        waited = not start.done()
        await asyncio.shield(start)
        return waited

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD)

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        if self._genuine is not None:
            self._genuine.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._mitm_start is not None:
            self._mitm_start.cancel()
            await asyncio.gather(self._mitm_start, return_exceptions=True)
            self._mitm_start = None
        if self._mitm is not None:
            await self._mitm.close()
            self._mitm = None
        if self._genuine is not None:
            await self._genuine.wait_closed()
            self._genuine = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # One connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     genuine: bool = False) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._connection(reader, writer, genuine)
        except (OSError, EOFError, TimeoutError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # close(): end quietly (3.11 streams log a cancelled handler as an error)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter, genuine: bool = False) -> None:
        conn = Conn(address_text(writer.get_extra_info("peername")))
        sites = self._sites  # this connection's view, even if configure() runs meanwhile
        plans = [] if genuine else interceptions(sites)
        if plans:
            await self._hand_to_attacker(reader, writer, conn, plans)
            return
        self.emit(POLICY, "connect", {"peer": conn.peer, **({"via": "attacker"} if genuine
                                                            else {})})
        collector: list[bool] = []
        context = self._connection_context(sites, conn, writer.transport, collector)
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self.handshake_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if conn.refused:
                self.emit(POLICY, "refused", {"sni": conn.sni, "domain": conn.domain,
                                              "peer": conn.peer,
                                              "applied": list(conn.applied)})
            else:
                error = conn.error or str(exc) or type(exc).__name__
                self.emit(POLICY, "tls-failed", {"sni": conn.sni, "error": error,
                                                 "cert": conn.cert, "peer": conn.peer,
                                                 "applied": list(conn.applied)})
            return
        if collector:
            await self.collector.serve(reader, writer, conn.peer)
            return
        answer, request = await self._answer(reader, sites, conn)
        await self._send(writer, answer, request, conn)

    def _connection_context(self, sites: Mapping[str, Site], conn: Conn,
                            raw: asyncio.BaseTransport,
                            collector: list[bool]) -> ssl.SSLContext:
        """A context for one connection: fallback certificate, switched by SNI (the TLS-RPT
        collector's name appends to ``collector``)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self._fallback)

        def on_client_hello(ssl_obj: Any, server_name: str | None,
                            _ctx: ssl.SSLContext) -> int | None:
            try:
                conn.sni = server_name
                if self.collector.serves(server_name):
                    ssl_obj.context = self.collector.context()
                    collector.append(True)
                    return None
                domain = domain_of_host(norm(server_name)) if server_name else None
                site = sites.get(domain) if domain else None
                if site is None:
                    self.emit(POLICY, "handshake", {"sni": server_name, "cert": conn.cert,
                                                    "host": FALLBACK_HOST, "peer": conn.peer})
                    return None
                conn.domain = domain
                conn.applied = site.response.applied
                if not site.response.reachable:
                    conn.refused = True
                    reset(raw)
                    return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
                conn.cert = site.response.cert.value
                ssl_obj.context = site.context
                self.emit(POLICY, "handshake", {"sni": server_name, "cert": conn.cert,
                                                "host": f"mta-sts.{domain}",
                                                "peer": conn.peer,
                                                "applied": list(conn.applied)})
                return None
            except Exception as exc:  # never let an error escape into OpenSSL
                conn.error = f"policy host: {exc!r}"
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR

        context.sni_callback = on_client_hello
        return context

    async def _answer(self, reader: asyncio.StreamReader, sites: Mapping[str, Site],
                      conn: Conn) -> tuple[Answer, Request | None]:
        try:
            async with asyncio.timeout(self.read_timeout):
                head = await read_head(reader)
            request = parse_request_head(head)
        except HttpError as exc:
            return error_answer(exc.status, error=str(exc)), None
        except TimeoutError:
            return error_answer(408, error="timed out reading the request"), None
        return route(request, sites, conn.domain), request

    async def _send(self, writer: asyncio.StreamWriter, answer: Answer,
                    request: Request | None, conn: Conn) -> None:
        try:
            head = response_head(answer.status, answer.reason, response_headers(answer))
        except ValueError as exc:
            answer = error_answer(500, answer.domain, f"bad configured response: {exc}")
            head = response_head(answer.status, answer.reason, response_headers(answer))
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
            "conditional": conditional(request) if request else False,
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
                          answer: Answer) -> tuple[int, int, str | None]:
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

    # The attacker in front of the host (mitmproxy)

    async def _start_mitm(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        address = self._server.sockets[0].getsockname()[0]
        serve = functools.partial(self._serve, genuine=True)
        try:
            self._genuine = await asyncio.start_server(serve, address, 0, limit=MAX_HEAD)
        except OSError:  # the host's address lives in a network namespace (netns backend):
            address = "127.0.0.1"  # the attacker's own sockets go on this process's loopback
            self._genuine = await asyncio.start_server(serve, address, 0, limit=MAX_HEAD)
        port = self._genuine.sockets[0].getsockname()[1]
        self._mitm = MitmPolicyProxy((address, port), address,
                                     self.pki.directory / "attacker-mitmproxy", self.emit,
                                     self._interception_for)
        return await self._mitm.start()

    def _interception_for(self, sni: str | None) -> Interception | None:
        """Called from the mitmproxy thread: the plan for a client's SNI."""
        domain = domain_of_host(norm(sni)) if sni else None
        site = self._sites.get(domain) if domain else None
        return site.response.intercept if site else None

    async def _hand_to_attacker(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter, conn: Conn,
                                plans: list[Interception]) -> None:
        """Pipe a connection, unread, to the attacker's mitmproxy."""
        applied = sorted({p.attack for p in plans})
        if self._mitm_start is None:
            self._mitm_start = asyncio.get_running_loop().create_task(self._start_mitm())
        try:
            address = await asyncio.shield(self._mitm_start)
            up_reader, up_writer = await asyncio.open_connection(*address)
        except Exception as exc:  # ImportError without the extra, or a failed start
            self.emit(POLICY, "intercept-failed", {"peer": conn.peer, "attacks": applied,
                                                   "error": f"{type(exc).__name__}: {exc}"})
            return
        # not ``applied``: the attack fired only once mitmproxy presented its certificate
        self.emit(POLICY, "intercept", {"peer": conn.peer, "attacks": applied,
                                        "to": address_text(address),
                                        "via": address_text(up_writer.get_extra_info("sockname"))})
        self._writers.add(up_writer)
        try:
            await pipe(reader, writer, up_reader, up_writer, self.read_timeout)
        finally:
            up_writer.transport.abort()
            self._writers.discard(up_writer)
