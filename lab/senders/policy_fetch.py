"""Fetch an MTA-STS policy over HTTPS (RFC 8461 3.3), with a small sans-IO response parser.

Only status 200 counts, redirects are not followed, no HTTP caching, the certificate must be
valid for ``mta-sts.<domain>``, the media type must be ``text/plain``, the body is capped and
the whole fetch is bounded in time.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from cryptography import x509

from lab.senders.certnames import cert_names_host
from lab.senders.dnsclient import LookupFailure, Resolver
from lab.senders.profiles import COMPLIANT, Profile

WELL_KNOWN = "/.well-known/mta-sts.txt"
MAX_HEAD = 16384


class HttpParseError(ValueError):
    """The bytes are not an HTTP/1.x response we accept."""


class PolicyFetchError(Exception):
    """The policy could not be fetched. ``result_type`` is the TLS-RPT result type."""

    def __init__(self, reason: str, result_type: str = "sts-policy-fetch-error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.result_type = result_type


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_head(head: bytes) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """Parse the status line and headers (``head`` without the blank line)."""
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise HttpParseError(f"bad status line {lines[0][:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpParseError(f"bad header line {line[:80]!r}")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return int(match.group(1)), (match.group(2) or b"").decode("latin-1"), tuple(headers)


class ResponseParser:
    """Sans-IO HTTP/1.1 response reader: ``feed`` bytes, ``feed_eof``, then ``response()``.

    Body framing: chunked, Content-Length, or read to EOF (we always send Connection: close).
    A body longer than ``max_body`` raises ``HttpParseError`` as soon as that is known.
    """

    def __init__(self, max_body: int, max_head: int = MAX_HEAD) -> None:
        self.max_body = max_body
        self.max_head = max_head
        self._buf = bytearray()
        self._head: tuple[int, str, tuple[tuple[str, str], ...]] | None = None
        self._length: int | None = None
        self._chunked = False
        self._body = bytearray()
        self._done = False
        self._eof = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def status(self) -> int | None:
        return self._head[0] if self._head else None

    def feed(self, data: bytes) -> None:
        if self._done or self._eof:
            return
        self._buf += data
        self._advance()

    def feed_eof(self) -> None:
        self._eof = True
        if self._done:
            return
        if self._head is None:
            raise HttpParseError("connection closed before the response head ended")
        if self._chunked or self._length is not None:
            raise HttpParseError("connection closed before the body ended")
        self._done = True  # read-to-EOF framing

    def response(self) -> HttpResponse:
        if not self._done or self._head is None:
            raise HttpParseError("response incomplete")
        status, reason, headers = self._head
        return HttpResponse(status, reason, headers, bytes(self._body))

    def head(self) -> HttpResponse | None:
        """The status and headers as soon as they are known (the body left empty)."""
        if self._head is None:
            return None
        status, reason, headers = self._head
        return HttpResponse(status, reason, headers, b"")

    def _advance(self) -> None:
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.max_head:
                    raise HttpParseError(f"response head longer than {self.max_head} bytes")
                return
            self._head = parse_head(bytes(self._buf[:end]))
            del self._buf[:end + 4]
            self._frame()
        if self._chunked:
            self._advance_chunked()
        else:
            self._body += self._buf
            self._buf.clear()
            self._check_size(len(self._body))
            if self._length is not None and len(self._body) >= self._length:
                del self._body[self._length:]
                self._done = True

    def _frame(self) -> None:
        assert self._head is not None
        status, _, headers = self._head
        encoding = [v for k, v in headers if k.lower() == "transfer-encoding"]
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        if status in (204, 304) or 100 <= status < 200:
            self._length = 0
        elif encoding:
            if encoding[-1].split(",")[-1].strip().lower() != "chunked":
                raise HttpParseError(f"unsupported Transfer-Encoding {encoding[-1]!r}")
            self._chunked = True
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise HttpParseError(f"bad Content-Length {lengths!r}")
            self._length = int(lengths[0])
            self._check_size(self._length)
        if self._length == 0:
            self._done = True

    def _advance_chunked(self) -> None:
        while not self._done:
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                if len(self._buf) > 1024:
                    raise HttpParseError("chunk size line too long")
                return
            size_text = bytes(self._buf[:line_end]).split(b";")[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
                raise HttpParseError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                # Trailers are skipped up to the blank line.
                end = self._buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return
                self._done = True
                return
            self._check_size(len(self._body) + size)
            if len(self._buf) < line_end + 2 + size + 2:
                return
            start = line_end + 2
            if self._buf[start + size:start + size + 2] != b"\r\n":
                raise HttpParseError("chunk not followed by CRLF")
            self._body += self._buf[start:start + size]
            del self._buf[:start + size + 2]

    def _check_size(self, size: int) -> None:
        if size > self.max_body:
            raise HttpParseError(f"body larger than {self.max_body} bytes")


def media_type(content_type: str | None) -> str | None:
    """``text/plain; charset=utf-8`` -> ``text/plain``."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def policy_request(host: str, path: str = WELL_KNOWN, etag: str | None = None) -> bytes:
    conditional = f"If-None-Match: {etag}\r\n" if etag else ""  # only the http-caching mutant
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mtasts-lab-reference\r\n"
            f"Accept: text/plain\r\n{conditional}Cache-Control: no-cache\r\n"
            "Connection: close\r\n\r\n").encode("ascii")


def check_response(response: HttpResponse, profile: Profile = COMPLIANT) -> str:
    """The policy text from a response, or ``PolicyFetchError`` (F2, P2)."""
    if response.status != 200 and not profile.accept_error_body:
        where = response.header("Location")
        extra = f" (Location {where}; redirects are not followed)" if where else ""
        raise PolicyFetchError(f"HTTP {response.status} {response.reason}{extra}")
    kind = media_type(response.header("Content-Type"))
    if kind != "text/plain":
        raise PolicyFetchError(f"media type {kind or 'missing'}, not text/plain",
                               "sts-policy-invalid")
    try:
        return response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFetchError("policy body is not UTF-8", "sts-policy-invalid") from None


def tls_client_context(ca_file: Path | str, profile: Profile = COMPLIANT) -> ssl.SSLContext:
    """Full WebPKI checks against the lab CA only, TLS 1.2 or newer."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.hostname_checks_common_name = False  # a DNS-ID only (RFC 6125 6.4.4)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if profile.fetch_any_cert or profile.fetch_no_sni:
        ctx.check_hostname = False  # no-sni checks the name itself after the handshake
    if profile.fetch_any_cert:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


HttpCache = dict[str, tuple[str, str]]
"""Host -> (ETag, policy text): only the http-caching mutant keeps one."""

MAX_REDIRECTS = 5


async def fetch_policy(domain: str, resolver: Resolver, https_port: int,
                       ca_file: Path | str, timeout: float = 10.0,
                       max_bytes: int = 65536, *, profile: Profile = COMPLIANT,
                       http_cache: HttpCache | None = None) -> str:
    """Fetch ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` and return its text."""
    host = f"mta-sts.{domain.lower().rstrip('.')}"
    bound = None if profile.unbounded_fetch else timeout
    limit = (1 << 40) if profile.unbounded_fetch else max_bytes
    try:
        async with asyncio.timeout(bound):
            target = (host, https_port, WELL_KNOWN)
            for _ in range(MAX_REDIRECTS + 1):
                result = await _fetch(target, resolver, ca_file, limit, profile, http_cache)
                if isinstance(result, str):
                    return result
                target = _redirect(result[0], target, https_port)  # follows-redirects mutant
            raise PolicyFetchError(f"more than {MAX_REDIRECTS} redirects from {host}")
    except TimeoutError:
        raise PolicyFetchError(f"fetch from {host} took longer than {timeout:g}s") from None


def _redirect(location: str, base: tuple[str, int, str],
              https_port: int) -> tuple[str, int, str]:
    """Where a Location leads; the lab's ``https_port`` stands for 443."""
    host, port, path = base
    url = urlsplit(urljoin(f"https://{host}:{port}{path}", location))
    if url.scheme != "https" or not url.hostname:
        raise PolicyFetchError(f"redirect to {location!r} is not an https URL")
    return url.hostname, url.port or https_port, url.path or "/"


async def _fetch(target: tuple[str, int, str], resolver: Resolver, ca_file: Path | str,
                 max_bytes: int, profile: Profile,
                 http_cache: HttpCache | None) -> str | tuple[str]:
    """The policy text, or ``(location,)`` when the follows-redirects mutant is redirected."""
    host, port, path = target
    try:
        addresses = await resolver.a(host)
    except LookupFailure as exc:
        raise PolicyFetchError(f"cannot resolve {host}: {exc.detail}") from None
    ctx = tls_client_context(ca_file, profile)
    errors: list[str] = []
    cached = http_cache.get(host) if http_cache is not None else None
    for address in addresses:
        try:
            reader, writer = await asyncio.open_connection(
                address, port, ssl=ctx,
                server_hostname=None if profile.fetch_no_sni else host)
        except ssl.SSLCertVerificationError as exc:
            raise PolicyFetchError(f"{host} ({address}): certificate verify failed: "
                                   f"{exc.verify_message}", "sts-webpki-invalid") from None
        except (OSError, ssl.SSLError) as exc:
            errors.append(f"{address}: {exc}")
            continue
        try:
            if profile.fetch_no_sni:
                _check_name(writer, host)
            writer.write(policy_request(host, path, cached[0] if cached else None))
            await writer.drain()
            parser = ResponseParser(max_bytes)
            while not parser.done:
                head = parser.head()
                if head is not None and head.status != 200:
                    early = _not_ok(head, profile, cached)
                    if early is not None:
                        return early
                data = await reader.read(65536)
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            response = parser.response()
            early = _not_ok(response, profile, cached) if response.status != 200 else None
            if early is not None:
                return early
            text = check_response(response, profile)
            etag = response.header("ETag")
            if http_cache is not None and etag:
                http_cache[host] = (etag, text)
            return text
        except HttpParseError as exc:
            raise PolicyFetchError(f"{host}: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise PolicyFetchError(f"{host}: connection failed mid-fetch: {exc}") from None
        finally:
            await _close(writer)
    raise PolicyFetchError(f"cannot connect to {host}: {'; '.join(errors) or 'no address'}")


def _not_ok(head: HttpResponse, profile: Profile,
            cached: tuple[str, str] | None) -> str | tuple[str] | None:
    """A non-200 head: raise (compliant), or what a mutant makes of it."""
    location = head.header("Location")
    if profile.follow_redirects and 300 <= head.status < 400 and location:
        return (location,)
    if profile.http_caching and head.status == 304 and cached:
        return cached[1]
    if not profile.accept_error_body:
        check_response(head)  # raises: the body of a non-200 answer is not read
    return None


def _check_name(writer: asyncio.StreamWriter, host: str) -> None:
    """The name check ``ssl`` cannot do without SNI (the fetch-no-sni mutant)."""
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    if der is None or not cert_names_host(x509.load_der_x509_certificate(der), host):
        raise PolicyFetchError(f"{host}: the certificate does not name {host}",
                               "sts-webpki-invalid")


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close politely, but never wait long for a peer's TLS close_notify."""
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
