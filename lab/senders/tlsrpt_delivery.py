"""Delivering a TLS report (RFC 8460 5.3): HTTPS POST, or mail to the report domain's MX.

The thin part with sockets; the report itself is built by ``lab.senders.tlsrpt_reporter``.

- HTTPS (5.3.2): ``POST`` of the report to the ``https:`` URI, ``application/tlsrpt+gzip``
  (or ``+json``), over TLS that trusts the lab CA. Only a 2xx counts as delivered.
- Mail (5.3.1): the ``multipart/report`` message, DKIM-signed (3), to the MX of the ``mailto:``
  address found by DNS. The delivery is not subject to MTA-STS or DANE: STARTTLS when
  offered, no certificate checks, and plaintext when TLS fails ("Sending MTAs MUST deliver
  reports despite any TLS-related failures").
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import dkim
import h11

from lab.events import Emit
from lab.senders.dnsclient import LookupFailure, Resolver, mail_hosts
from lab.senders.smtp_client import deliver
from lab.senders.smtp_outcome import SmtpError, TlsRequirement

MAX_RESPONSE = 65536


class ReportDeliveryError(Exception):
    """The report did not reach that destination (a retry may)."""


async def post_https(uri: str, body: bytes, content_type: str, resolver: Resolver,
                     ca_file: Path | str, timeout: float = 10.0) -> int:
    """POST the report; the HTTP status on 2xx, ReportDeliveryError otherwise."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or 443
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        addresses = await resolver.a(host)
    except LookupFailure as exc:
        raise ReportDeliveryError(f"{host}: address lookup failed: {exc}") from None
    if not addresses:
        raise ReportDeliveryError(f"{host}: no address")
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    conn = h11.Connection(h11.CLIENT)
    host_header = host if port == 443 else f"{host}:{port}"
    request = conn.send(h11.Request(method="POST", target=path, headers=[
        ("Host", host_header), ("Content-Type", content_type),
        ("Content-Length", str(len(body))), ("Connection", "close"),
        ("User-Agent", "mtasts-lab reference sender")]))
    data = conn.send(h11.Data(data=body))
    end = conn.send(h11.EndOfMessage())
    assert request is not None and data is not None and end is not None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(addresses[0], port, ssl=ctx,
                                                           server_hostname=host)
            writer.write(request + data + end)
            await writer.drain()
            received = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await reader.read(16384)
                    received += len(chunk)
                    if received > MAX_RESPONSE:
                        raise ReportDeliveryError(f"{uri}: response too large")
                    conn.receive_data(chunk)
                    continue
                if isinstance(event, h11.Response):
                    if not 200 <= event.status_code < 300:
                        raise ReportDeliveryError(f"{uri}: HTTP {event.status_code}")
                    return int(event.status_code)
                if isinstance(event, h11.ConnectionClosed):
                    raise ReportDeliveryError(f"{uri}: connection closed without a response")
    except TimeoutError:
        raise ReportDeliveryError(f"{uri}: no response within {timeout:g}s") from None
    except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
        raise ReportDeliveryError(f"{uri}: {type(exc).__name__}: {exc}") from None
    finally:
        if writer is not None:
            writer.close()


def dkim_sign(message: bytes, domain: str, selector: str, key_pem: bytes) -> bytes:
    """The message with a DKIM-Signature (rsa-sha256, relaxed/relaxed, no ``l=``: RFC 8460 3)."""
    signature = dkim.sign(message, selector.encode(), domain.encode(), key_pem,
                          canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[b"from", b"to", b"subject", b"date",
                                           b"message-id", b"tls-report-domain",
                                           b"tls-report-submitter", b"content-type"])
    return bytes(signature) + message


TlsFor = Callable[[str], Awaitable[TlsRequirement]]
"""The TLS a report delivery demands of the report domain's MX (the compliant answer is
``opportunistic``; a mutant asks its MTA-STS policy)."""


async def send_mail(rcpt: str, message: bytes, mail_from: str, resolver: Resolver,
                    smtp_port: int, ca_file: Path | str, emit: Emit, tls_for: TlsFor,
                    timeout: float = 30.0) -> str:
    """Deliver the report message to the MX of ``rcpt``'s domain; the MX that took it."""
    domain = rcpt.rpartition("@")[2].lower()
    try:
        hosts = await mail_hosts(resolver, domain)
    except LookupFailure as exc:
        raise ReportDeliveryError(f"MX lookup for {domain} failed: {exc}") from None
    if not hosts:
        raise ReportDeliveryError(f"{domain} accepts no mail")
    tls = await tls_for(domain)
    problems: list[str] = []
    for _, mx in hosts:
        try:
            addresses = await resolver.a(mx)
        except LookupFailure as exc:
            problems.append(f"{mx}: address lookup failed: {exc}")
            continue
        for address in addresses:
            modes: tuple[TlsRequirement, ...] = (tls,) if tls == "verify" \
                else ("opportunistic", "none")
            for mode in modes:
                try:
                    await deliver(address, smtp_port, mx, message, mail_from, rcpt, mode,
                                  ca_file, emit, timeout)
                    return mx
                except SmtpError as exc:
                    problems.append(f"{mx} [{address}] ({mode}): {exc.reason}")
                    if exc.stage not in ("handshake", "starttls") or mode == "none":
                        break  # not a TLS failure: plaintext would not help
    raise ReportDeliveryError("; ".join(problems))
