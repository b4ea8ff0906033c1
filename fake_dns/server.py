"""The authoritative DNS server: answers from a ``Zone`` over UDP and TCP, logs every query.

``handle()`` is the whole protocol (bytes in, bytes or nothing out); the asyncio transports
around it only move bytes. The server also plays the sender's recursive resolver, so RA
mirrors RD and the AD bit is set for authenticated names (no DNSSEC records are served).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    MX,
    NS,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TLSA,
    TXT,
    A,
    DNSLabel,
    DNSRecord,
)

from fake_dns.errors import ZoneError
from fake_dns.zone import Answer, Failure, Zone, ZoneRecord

logger = logging.getLogger("fake_dns")

Transport = Literal["udp", "tcp"]
UDP_PLAIN = 512
"""UDP reply limit for queries without EDNS (RFC 1035)."""
UDP_EDNS = 1232
"""The UDP payload size this server advertises and caps EDNS clients at."""
TCP_IDLE = 30.0
"""Seconds a TCP connection may sit idle before the server closes it."""


@dataclass(frozen=True)
class QueryLogEntry:
    t: float
    """``time.monotonic()`` when the query arrived."""
    client: tuple[str, int]
    transport: Transport
    name: str
    """The query name, lower-case, no trailing dot."""
    qtype: str
    rcode: str
    """The reply's rcode; ``NONE`` when no reply was sent (failure ``no-answer``)."""
    answers: tuple[str, ...]
    """``TYPE value`` of each answer record sent."""
    failure: str | None
    """The zone failure that applied to this query, if any."""
    ad: bool
    truncated: bool = False
    """True when the reply had the TC bit set (failure or a UDP reply too large)."""


def to_rr(record: ZoneRecord, owner: str | None = None) -> RR:
    """A zone record as a dnslib resource record (``owner`` keeps the asker's spelling)."""
    rname = owner if owner is not None else record.name + "."
    value, rtype = record.value, record.rtype
    parts = value.split()
    rdata: object
    if rtype == "A":
        rdata = A(value)
    elif rtype == "AAAA":
        rdata = AAAA(value)
    elif rtype == "MX":
        rdata = MX(parts[1], int(parts[0]))
    elif rtype == "CNAME":
        rdata = CNAME(value)
    elif rtype == "NS":
        rdata = NS(value)
    elif rtype == "TLSA":
        rdata = TLSA(int(parts[0]), int(parts[1]), int(parts[2]), bytes.fromhex(parts[3]))
    elif rtype == "SOA":
        rdata = SOA(parts[0], parts[1], tuple(int(p) for p in parts[2:]))
    elif rtype == "TXT":
        raw = value.encode("utf-8")
        rdata = TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])
    else:  # Zone.add refuses other types
        raise ZoneError(f"cannot serve record type {rtype}")
    return RR(rname, getattr(QTYPE, rtype), rdata=rdata, ttl=record.ttl)


def _qtype_name(qtype: int) -> str:
    name = QTYPE.get(qtype)  # dnslib gives unknown types back as their number
    return name if isinstance(name, str) and not name.isdigit() else f"TYPE{qtype}"


def _norm(label: DNSLabel) -> str:
    return str(label).lower().rstrip(".")


class DnsServer:
    """Serve ``zone`` on sockets the caller bound; swap the zone with ``set_zone``."""

    def __init__(self, zone: Zone,
                 on_query: Callable[[QueryLogEntry], None] | None = None) -> None:
        self._zone = zone
        self._on_query = on_query
        self.log: list[QueryLogEntry] = []
        self.malformed = 0
        """Packets that were not a DNS query (ignored)."""
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._started = False
        self._closing = False

    @property
    def zone(self) -> Zone:
        return self._zone

    def set_zone(self, zone: Zone) -> None:
        """Answer from ``zone`` from the next query on (one reference swap: atomic)."""
        self._zone = zone

    # --- the protocol -------------------------------------------------------------------

    def handle(self, data: bytes, client: tuple[str, int], transport: Transport) -> bytes | None:
        """One DNS message in, the reply out (None: send nothing)."""
        try:
            query = DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises assorted errors on garbage
            self._malformed(client, transport, f"unparsable: {exc}")
            return None
        if query.header.qr:
            self._malformed(client, transport, "a response, not a query")
            return None
        if query.header.opcode != 0 or len(query.questions) != 1:
            reply = query.reply(ra=query.header.rd, aa=0)
            reply.header.rcode = RCODE.NOTIMP if query.header.opcode != 0 else RCODE.FORMERR
            return self._pack(reply, query, transport)
        question = query.questions[0]
        name, qtype = _norm(question.qname), _qtype_name(question.qtype)
        reply = query.reply(ra=query.header.rd, aa=1)
        if question.qclass not in (1, 255):  # IN, ANY
            answer = Answer("REFUSED", aa=False)
        else:
            answer = self._lookup(name, qtype)
        if answer.failure is Failure.NO_ANSWER:
            self._record(client, transport, name, qtype, "NONE", (), answer, truncated=False)
            return None
        truncated = answer.failure is Failure.TRUNCATE and transport == "udp"
        sent: tuple[ZoneRecord, ...] = ()
        if not truncated:
            reply.header.rcode = getattr(RCODE, answer.rcode)
            reply.header.aa = int(answer.aa)
            reply.header.ad = int(answer.ad)
            for record in answer.records:
                owner = str(question.qname) if record.name == name else None
                reply.add_answer(to_rr(record, owner))
            for record in answer.authority:
                reply.add_auth(to_rr(record))
            sent = answer.records
        else:
            reply.header.tc = 1
        packed = self._pack(reply, query, transport)
        if packed is None:  # too large even for TCP
            reply = query.reply(ra=query.header.rd, aa=1)
            reply.header.rcode = RCODE.SERVFAIL
            packed, sent = self._pack(reply, query, transport), ()
        elif transport == "udp" and len(packed) > self._udp_limit(query):
            reply = query.reply(ra=query.header.rd, aa=1)
            reply.header.tc = 1
            packed, sent, truncated = self._pack(reply, query, transport), (), True
        rcode = RCODE.get(reply.header.rcode)
        self._record(client, transport, name, qtype, str(rcode), sent, answer, truncated)
        return packed

    def _lookup(self, name: str, qtype: str) -> Answer:
        try:
            return self._zone.answer(name, qtype)
        except ZoneError:  # a name no zone can hold: it does not exist (the root does)
            return Answer("NOERROR" if name == "" else "NXDOMAIN")

    @staticmethod
    def _udp_limit(query: DNSRecord) -> int:
        for rr in query.ar:
            if rr.rtype == QTYPE.OPT:
                return max(UDP_PLAIN, min(int(rr.rclass), UDP_EDNS))
        return UDP_PLAIN

    @staticmethod
    def _pack(reply: DNSRecord, query: DNSRecord, transport: Transport) -> bytes | None:
        if any(rr.rtype == QTYPE.OPT for rr in query.ar):
            reply.add_ar(EDNS0(udp_len=UDP_EDNS))
        try:
            packed: bytes = reply.pack()
        except Exception as exc:  # dnslib refuses what does not fit the wire format
            logger.warning("cannot pack reply: %s", exc)
            return None
        return packed if len(packed) <= 65535 else None

    def _record(self, client: tuple[str, int], transport: Transport, name: str, qtype: str,
                rcode: str, sent: tuple[ZoneRecord, ...], answer: Answer, truncated: bool) -> None:
        entry = QueryLogEntry(
            t=time.monotonic(), client=client, transport=transport, name=name, qtype=qtype,
            rcode=rcode, answers=tuple(str(r) for r in sent),
            failure=answer.failure.value if answer.failure else None,
            ad=answer.ad and rcode not in ("NONE", "SERVFAIL", "REFUSED") and not truncated,
            truncated=truncated)
        self.log.append(entry)
        if self._on_query is not None:
            try:
                self._on_query(entry)
            except Exception:
                logger.exception("on_query callback failed")

    def _malformed(self, client: tuple[str, int], transport: Transport, why: str) -> None:
        self.malformed += 1
        logger.info("ignored malformed %s packet from %s:%s: %s", transport, *client[:2], why)

    # --- the asyncio shell --------------------------------------------------------------

    async def start(self, udp_sock: socket.socket, tcp_sock: socket.socket | None = None) -> None:
        """Serve on an already bound UDP socket and, if given, a bound TCP socket."""
        if self._started:
            raise RuntimeError("DnsServer already started")
        self._started = True
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(lambda: _Udp(self),
                                                                  sock=udp_sock)
        self._udp, self._udp_protocol = transport, protocol
        if tcp_sock is not None:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)

    async def close(self) -> None:
        """Stop serving and close every socket and connection (idempotent)."""
        self._closing = True
        if self._udp is not None and self._udp_protocol is not None:
            self._udp.close()
            await self._udp_protocol.lost  # the socket is closed once this resolves
            self._udp = self._udp_protocol = None
        if self._tcp is not None:
            self._tcp.close()
        # Abort the connections: their handlers then end on their own (a cancelled handler
        # task makes asyncio's stream machinery log an error on Python 3.11).
        for writer in self._conns.values():
            writer.transport.abort()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        if self._closing:  # accepted just before close(): drop it
            writer.transport.abort()
        peer = writer.get_extra_info("peername")
        client = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                out = self.handle(data, client, "tcp")
                if out is not None:
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client went away, or idled too long
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._conns.pop(task, None)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        client = (str(addr[0]), int(addr[1]))
        out = self.server.handle(data, client, "udp")
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp error: %s", exc)  # e.g. ICMP port unreachable from a gone client
