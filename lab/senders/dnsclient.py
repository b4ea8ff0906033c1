"""A small asyncio stub resolver for the lab's DNS: UDP with retries, TCP when truncated.

Built on dnslib for packing and parsing. Failures are typed, because policy discovery
treats them differently: ``NXDomain`` (the name does not exist), ``NoData`` (it exists, no
record of that type) and ``DnsError`` (SERVFAIL, REFUSED, timeout: the answer is unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct

from dnslib import CNAME, QTYPE, RCODE, RR, TLSA, DNSRecord

from lab.senders.dane import Tlsa

MAX_CNAME_HOPS = 8


class LookupFailure(Exception):
    """Base of the three lookup failures."""

    def __init__(self, name: str, qtype: str, detail: str) -> None:
        super().__init__(f"{qtype} {name}: {detail}")
        self.name = name
        self.qtype = qtype
        self.detail = detail


class NXDomain(LookupFailure):
    """The name does not exist (RCODE NXDOMAIN)."""


class NoData(LookupFailure):
    """The name exists but has no record of the asked type."""


class DnsError(LookupFailure):
    """No usable answer: SERVFAIL, REFUSED, a malformed reply or a timeout."""


def _norm(name: object) -> str:
    return str(name).lower().rstrip(".")


class _UdpExchange(asyncio.DatagramProtocol):
    """One query over a connected UDP socket: resolves with the first matching reply."""

    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.query_id \
                and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc or ConnectionError("socket closed"))


class Resolver:
    """Asks one server (``(address, port)``); ``timeout`` is per attempt."""

    def __init__(self, server: tuple[str, int], timeout: float = 2.0, retries: int = 2) -> None:
        self.server = server
        self.timeout = timeout
        self.retries = retries

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """``(preference, host)`` pairs sorted by preference (host names lower case, no dot)."""
        records = await self._resolve(domain, "MX")
        found = [(int(rr.rdata.preference), _norm(rr.rdata.label)) for rr in records]
        return sorted(found)

    async def txt(self, name: str, *, follow_cname: bool = True,
                  joiner: bytes = b"") -> list[str]:
        """One string per TXT record, its character-strings joined with nothing between
        them (RFC 8461 3.1; ``joiner`` is for a mutant), CNAMEs followed (D2)."""
        records = await self._resolve(name, "TXT", follow_cname=follow_cname)
        return [joiner.join(rr.rdata.data).decode("utf-8", "replace") for rr in records]

    async def tlsa(self, name: str) -> tuple[list[Tlsa], bool]:
        """The TLSA records at ``name`` and whether the answer carried the AD bit.

        No such name, or no TLSA there, is no records; SERVFAIL and the like raise
        ``DnsError`` (DANE then cannot be ruled out)."""
        reply = await self.query(name, "TLSA", want_ad=True)
        rcode = reply.header.rcode
        if rcode == RCODE.NXDOMAIN:
            return [], bool(reply.header.ad)
        if rcode != RCODE.NOERROR:
            raise DnsError(name, "TLSA", f"server answered {RCODE.get(rcode)}")
        found = [Tlsa(int(rr.rdata.cert_usage), int(rr.rdata.selector),
                      int(rr.rdata.matching_type), bytes(rr.rdata.cert_data))
                 for rr in reply.rr if rr.rtype == QTYPE.TLSA and isinstance(rr.rdata, TLSA)]
        return found, bool(reply.header.ad)

    async def a(self, name: str) -> list[str]:
        records = await self._resolve(name, "A")
        return [str(rr.rdata) for rr in records]

    async def _resolve(self, name: str, qtype: str, *,
                       follow_cname: bool = True) -> list[RR]:
        """The records of ``qtype`` at ``name``, following a CNAME chain (RFC 8461 3.1)."""
        current = _norm(name)
        seen = {current}
        for _ in range(MAX_CNAME_HOPS):
            reply = await self.query(current, qtype)
            rcode = reply.header.rcode
            if rcode == RCODE.NXDOMAIN:
                raise NXDomain(current, qtype, "no such domain")
            if rcode != RCODE.NOERROR:
                raise DnsError(current, qtype, f"server answered {RCODE.get(rcode)}")
            # Walk the chain inside this answer first.
            target = current
            while True:
                found = [rr for rr in reply.rr
                         if _norm(rr.rname) == target and rr.rtype == getattr(QTYPE, qtype)]
                if found:
                    return list(found)
                alias = [rr for rr in reply.rr
                         if _norm(rr.rname) == target and rr.rtype == QTYPE.CNAME
                         and isinstance(rr.rdata, CNAME)]
                if not alias or not follow_cname:
                    break
                target = _norm(alias[0].rdata.label)
                if target in seen:
                    raise DnsError(name, qtype, "CNAME loop")
                seen.add(target)
            if target == current or not follow_cname:
                raise NoData(current, qtype, "no record of this type")
            current = target  # the chain leaves this answer: ask for the target
        raise DnsError(name, qtype, f"more than {MAX_CNAME_HOPS} CNAME hops")

    async def query(self, name: str, qtype: str, *, want_ad: bool = False) -> DNSRecord:
        """One question, answered over UDP (retried) or TCP when the UDP reply is truncated.

        ``want_ad`` sets the AD bit in the query (RFC 6840 5.7: the client understands it)."""
        request = DNSRecord.question(name, qtype)
        request.header.id = random.randrange(1 << 16)
        request.header.rd = 1
        request.header.ad = int(want_ad)
        packet = request.pack()
        last: str = "no attempt"
        for _ in range(self.retries + 1):
            try:
                data = await self._udp(packet, request.header.id)
            except TimeoutError:
                last = f"timed out after {self.timeout:g}s"
                continue
            except OSError as exc:
                last = f"network error: {exc}"
                continue
            reply = self._parse(data, request, name, qtype)
            if reply.header.tc:
                return await self._tcp_query(request, name, qtype)
            return reply
        raise DnsError(name, qtype, f"{self.server[0]}:{self.server[1]} {last}")

    async def _udp(self, packet: bytes, query_id: int) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UdpExchange(query_id), remote_addr=self.server)
        try:
            transport.sendto(packet)
            async with asyncio.timeout(self.timeout):
                return await protocol.reply
        finally:
            transport.close()

    async def _tcp_query(self, request: DNSRecord, name: str, qtype: str) -> DNSRecord:
        packet = request.pack()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(*self.server)
                try:
                    writer.write(struct.pack("!H", len(packet)) + packet)
                    await writer.drain()
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                finally:
                    writer.close()
                    await _closed(writer)
        except TimeoutError:
            raise DnsError(name, qtype, f"TCP timed out after {self.timeout:g}s") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise DnsError(name, qtype, f"TCP error: {exc!r}") from None
        return self._parse(data, request, name, qtype)

    @staticmethod
    def _parse(data: bytes, request: DNSRecord, name: str, qtype: str) -> DNSRecord:
        try:
            reply = DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises several types on malformed input
            raise DnsError(name, qtype, f"malformed reply: {exc}") from None
        if reply.header.id != request.header.id or not reply.header.qr:
            raise DnsError(name, qtype, "reply does not match the query")
        if reply.questions and (_norm(reply.q.qname) != _norm(request.q.qname)
                                or reply.q.qtype != request.q.qtype):
            raise DnsError(name, qtype, "reply is for another question")
        return reply


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def mail_hosts(resolver: Resolver, domain: str) -> list[tuple[int, str]]:
    """The MX hosts of ``domain`` in preference order; no MX means the domain itself (implicit
    MX, RFC 5321 5.1). A null MX (``0 .``, RFC 7505) gives an empty list."""
    try:
        hosts = await resolver.mx(domain)
    except NoData:
        return [(0, _norm(domain))]
    if len(hosts) == 1 and hosts[0][1] == "":
        return []
    return [(pref, host) for pref, host in hosts if host]
