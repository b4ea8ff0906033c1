"""Tiny loopback servers for the sender tests: DNS (dnslib), HTTPS policy host, SMTP MXes.

They stand in for the lab's own services so these tests do not depend on them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from dnslib import CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord

from lab.events import Event

LOOPBACK = "127.0.0.1"


# --- DNS -----------------------------------------------------------------------------------

class DnsResponder(asyncio.DatagramProtocol):
    """An authoritative answerer from a dict zone, on UDP and TCP at one loopback port.

    ``rcode[name]`` forces an RCODE; ``truncate`` names get TC over UDP (full answer on TCP);
    ``silent`` names are never answered over UDP; a CNAME is answered with its chain unless
    ``answer_chain`` is False (then the client must ask for the target itself).
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[RR]] = {}
        self.rcode: dict[str, int] = {}
        self.truncate: set[str] = set()
        self.silent: set[str] = set()
        self.answer_chain = True
        self.queries: list[tuple[str, str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.address: tuple[str, int] = (LOOPBACK, 0)

    # zone editing
    def add(self, name: str, rtype: str, rdata: Any) -> None:
        key = (name.lower().rstrip("."), rtype)
        self.records.setdefault(key, []).append(
            RR(key[0], getattr(QTYPE, rtype), rdata=rdata, ttl=60))

    def a(self, name: str, address: str) -> None:
        self.add(name, "A", A(address))

    def mx(self, domain: str, pref: int, host: str) -> None:
        self.add(domain, "MX", MX(host, pref))

    def txt(self, name: str, *strings: str) -> None:
        self.add(name, "TXT", TXT([s.encode() for s in strings]))

    def cname(self, name: str, target: str) -> None:
        self.add(name, "CNAME", CNAME(target))

    def remove(self, name: str, rtype: str) -> None:
        self.records.pop((name.lower().rstrip("."), rtype), None)

    # answering
    def answer(self, request: DNSRecord) -> DNSRecord:
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        reply = request.reply()
        if name in self.rcode:
            reply.header.rcode = self.rcode[name]
            return reply
        current, hops = name, 0
        while hops < 8:
            if (current, qtype) in self.records:
                for rr in self.records[(current, qtype)]:
                    reply.add_answer(rr)
                return reply
            alias = self.records.get((current, "CNAME"))
            if not alias:
                break
            reply.add_answer(alias[0])
            if not self.answer_chain:
                return reply
            current = str(alias[0].rdata.label).lower().rstrip(".")
            hops += 1
        if not reply.rr and not any(key[0] == current for key in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        request = DNSRecord.parse(data)
        name = str(request.q.qname).lower().rstrip(".")
        self.queries.append(("udp", name, QTYPE[request.q.qtype]))
        if name in self.silent:
            return
        reply = self.answer(request)
        if name in self.truncate:
            reply = request.reply()
            reply.header.tc = 1
        assert self.transport is not None
        self.transport.sendto(reply.pack(), addr)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            request = DNSRecord.parse(await reader.readexactly(size))
            self.queries.append(("tcp", str(request.q.qname).lower().rstrip("."),
                                 QTYPE[request.q.qtype]))
            packet = self.answer(request).pack()
            writer.write(struct.pack("!H", len(packet)) + packet)
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, local_addr=(LOOPBACK, 0))
            port = transport.get_extra_info("sockname")[1]
            try:
                self.tcp = await asyncio.start_server(self._tcp, LOOPBACK, port)
            except OSError:
                transport.close()
                continue
            self.transport = transport
            self.address = (LOOPBACK, port)
            return self.address
        raise RuntimeError("no free port for UDP and TCP together")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()


# --- HTTPS policy host -------------------------------------------------------------------

@dataclass
class HttpAnswer:
    status: int = 200
    reason: str = "OK"
    headers: list[tuple[str, str]] = field(default_factory=lambda: [
        ("Content-Type", "text/plain")])
    body: bytes = b""
    chunked: bool = False


class PolicyHost:
    """HTTPS on loopback: answers every request with ``self.answer``; records requests."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.answer = HttpAnswer()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            self.requests.append((lines[0], headers))
            answer = self.answer
            out = [f"HTTP/1.1 {answer.status} {answer.reason}"]
            out += [f"{k}: {v}" for k, v in answer.headers]
            if answer.chunked:
                out.append("Transfer-Encoding: chunked")
                body = b"".join(b"%x\r\n%s\r\n" % (len(answer.body[i:i + 7]),
                                                    answer.body[i:i + 7])
                                for i in range(0, len(answer.body), 7)) + b"0\r\n\r\n"
            else:
                out.append(f"Content-Length: {len(answer.body)}")
                body = answer.body
            out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self, host: str = LOOPBACK, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# --- SMTP MX (aiosmtpd) ------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    sni: str | None


class MxServer:
    """An aiosmtpd MX. ``tls_context`` is read per connection (None: no STARTTLS)."""

    def __init__(self, tls_context: ssl.SSLContext | None) -> None:
        self.tls_context = tls_context
        self.received: list[Received] = []
        self.sni: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    def _record_sni(self, context: ssl.SSLContext) -> None:
        def callback(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            self.sni.append(name)
        context.sni_callback = callback

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      content, session.ssl is not None,
                                      self.sni[-1] if self.sni else None))
        return "250 2.0.0 queued"

    def _protocol(self) -> SMTP:
        if self.tls_context is not None:
            self._record_sni(self.tls_context)
        return SMTP(self, hostname="mx.victim.test", tls_context=self.tls_context,
                    require_starttls=False)

    async def start(self, host: str = LOOPBACK, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def start_on_shared_port(starters: list[Callable[[str, int], Any]],
                               hosts: list[str]) -> int:
    """Start servers on different loopback addresses at one port (like MXes on port 25)."""
    for _ in range(20):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for start, host in zip(starters, hosts, strict=True):
                await start(host, port)
            return port
        except OSError:
            continue
    raise RuntimeError("no shared free port")


# --- a scripted SMTP server for protocol corner cases ------------------------------------

@dataclass
class ScriptedMx:
    """A hand-written MX whose misbehaviour is chosen per test.

    ``refuse_ehlo``: 502 to EHLO (the client must fall back to HELO). ``starttls_reply``:
    what STARTTLS gets. ``inject``: plaintext appended to the 220 to STARTTLS (I1).
    ``break_handshake``: answer the ClientHello with garbage and hang up.
    """

    context: ssl.SSLContext | None
    refuse_ehlo: bool = False
    starttls_reply: str = "220 2.0.0 ready to start TLS"
    inject: bytes = b""
    break_handshake: bool = False
    commands: list[list[str]] = field(default_factory=list)
    received: list[tuple[bytes, bool]] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[str] = []
        self.commands.append(seen)
        tls = False
        try:
            writer.write(b"220 mx.victim.test ESMTP scripted\r\n")
            while True:
                line = (await reader.readline()).decode("ascii", "replace").rstrip("\r\n")
                if not line:
                    return
                verb = line.split(" ")[0].split(":")[0].upper()
                seen.append(f"{verb}{' (tls)' if tls else ''}")
                if verb == "EHLO" and self.refuse_ehlo:
                    writer.write(b"502 5.5.2 EHLO not implemented\r\n")
                elif verb == "EHLO":
                    offer = self.context is not None and not tls
                    writer.write(b"250-mx.victim.test\r\n"
                                 + (b"250-STARTTLS\r\n" if offer else b"")
                                 + b"250 8BITMIME\r\n")
                elif verb == "HELO":
                    writer.write(b"250 mx.victim.test\r\n")
                elif verb == "STARTTLS" and self.context is not None and not tls:
                    writer.write(self.starttls_reply.encode() + b"\r\n" + self.inject)
                    if not self.starttls_reply.startswith("220"):
                        continue
                    if self.break_handshake:
                        await reader.read(1)  # the ClientHello has started
                        writer.write(b"this is not TLS\r\n")
                        await writer.drain()
                        return
                    await writer.start_tls(self.context)
                    tls = True
                elif verb in ("MAIL", "RCPT"):
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go ahead\r\n")
                    body = await reader.readuntil(b"\r\n.\r\n")
                    self.received.append((body, tls))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"500 5.5.1 unknown command\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self, host: str = LOOPBACK, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# --- events --------------------------------------------------------------------------------

class Recorder:
    """An emit callback that keeps events and resolves waiters for a predicate."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    def __call__(self, source: str, kind: str, data: Mapping[str, Any]) -> None:
        event = Event(source, kind, dict(data))
        self.events.append(event)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(event):
                future.set_result(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def wait(self, predicate: Callable[[Event], bool], timeout: float = 15.0) -> Event:
        for event in self.events:
            if predicate(event):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.remove((predicate, future))

    async def status(self, message_id: str, timeout: float = 15.0) -> Event:
        return await self.wait(lambda e: e.kind == "status"
                               and e.get("message_id") == message_id, timeout)

    def lines(self) -> list[str]:
        return [str(e.get("line")) for e in self.of("log")]
