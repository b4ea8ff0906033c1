"""A minimal HTTP/1.1 request-head parser and response-head writer (sans-IO).

Only what a policy host needs: the request line and headers, strict syntax, hard size
limits. Bodies are never read (the host answers GET only and closes the connection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_HEAD = 8192
"""Most bytes a request head (request line + headers + blank line) may take."""
MAX_TARGET = 2048
MAX_HEADERS = 64

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TARGET = re.compile(rb"^[\x21-\x7e]+$")
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
_REASON_BAD = re.compile(r"[\r\n]")

REASONS = {
    200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 410: "Gone", 414: "URI Too Long", 421: "Misdirected Request",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


class HttpError(ValueError):
    """A request the host refuses to parse; ``status`` is the answer to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


def find_head_end(buffer: bytes) -> int | None:
    """Index just past the blank line that ends the head (CRLF CRLF or bare LF LF)."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n")
            if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else None


def parse_request_head(head: bytes) -> Request:
    """Parse a request head; the trailing blank line is optional. Raises ``HttpError``."""
    if len(head) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise HttpError(400, "empty request")
    method, target, version = _request_line(lines[0])
    headers = [_header(line) for line in lines[1:]]
    if len(headers) > MAX_HEADERS:
        raise HttpError(431, "too many header fields")
    hosts = [value for key, value in headers if key.lower() == "host"]
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host header")
    if version == "HTTP/1.1" and not hosts:
        raise HttpError(400, "HTTP/1.1 request without Host")
    return Request(method, target, version, tuple(headers))


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "malformed method")
    if len(target) > MAX_TARGET:
        raise HttpError(414, "request target too long")
    if not _TARGET.match(target):
        raise HttpError(400, "malformed request target")
    match = _VERSION.match(version)
    if match is None:
        raise HttpError(400, "malformed HTTP version")
    if match.group(1) != b"1":
        raise HttpError(505, "only HTTP/1.x")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def _header(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise HttpError(400, "obsolete line folding")
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.match(name):
        raise HttpError(400, "malformed header field")
    value = value.strip(b" \t")
    if not _VALUE.match(value):
        raise HttpError(400, "invalid character in header value")
    return name.decode("ascii"), value.decode("latin-1")


def host_name(value: str) -> str:
    """The host part of a Host header value, lower-cased, without port or final dot."""
    host = value.strip()
    if host.startswith("["):
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.lower().rstrip(".")


def response_head(status: int, reason: str,
                  headers: Iterable[tuple[str, str]]) -> bytes:
    """The status line and header block, blank line included."""
    if not 100 <= status <= 999:
        raise ValueError(f"bad status {status}")
    lines = [f"HTTP/1.1 {status} {_REASON_BAD.sub(' ', reason)}".rstrip()]
    for name, value in headers:
        if not _TOKEN.match(name.encode("latin-1")) or _REASON_BAD.search(value):
            raise ValueError(f"bad header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
