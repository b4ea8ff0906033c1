"""The HTTP response parser (sans-IO, hypothesis) and the HTTPS policy fetch (loopback TLS)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.pki import CertKind, LabPKI
from lab.senders.dnsclient import Resolver
from lab.senders.policy_fetch import (
    HttpParseError,
    HttpResponse,
    PolicyFetchError,
    ResponseParser,
    check_response,
    fetch_policy,
    media_type,
    parse_head,
)

from .lab_servers import DnsResponder, HttpAnswer, PolicyHost

POLICY = "version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmax_age: 86400\n"


def parse_all(raw: bytes, cuts: list[int], max_body: int = 65536) -> HttpResponse:
    parser = ResponseParser(max_body)
    start = 0
    for cut in [*sorted(set(c % (len(raw) + 1) for c in cuts)), len(raw)]:
        parser.feed(raw[start:cut])
        start = cut
    if not parser.done:
        parser.feed_eof()
    return parser.response()


def encode(status: int, headers: list[tuple[str, str]], body: bytes, framing: str) -> bytes:
    head = [f"HTTP/1.1 {status} Some Reason"] + [f"{k}: {v}" for k, v in headers]
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5])
                           for i in range(0, len(body), 5)) + b"0\r\nX-Trailer: y\r\n\r\n"
    else:
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


header_names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: n not in ("content-length", "transfer-encoding"))
header_values = st.text("abcdefghij klmnop/;=0123456789", max_size=20).map(str.strip)


@given(st.integers(200, 599).filter(lambda s: s not in (204, 304)),
       st.lists(st.tuples(header_names, header_values), max_size=5),
       st.binary(max_size=300), st.sampled_from(["length", "chunked", "eof"]),
       st.lists(st.integers(0, 2000), max_size=6))
def test_parser_round_trip_in_any_pieces(status: int, headers: list[tuple[str, str]],
                                         body: bytes, framing: str, cuts: list[int]) -> None:
    response = parse_all(encode(status, headers, body, framing), cuts)
    assert response.status == status
    assert response.reason == "Some Reason"
    assert response.body == body
    for name, value in headers:
        assert (name, value) in response.headers


@given(st.binary(min_size=11, max_size=400), st.sampled_from(["length", "chunked", "eof"]))
def test_parser_caps_the_body(body: bytes, framing: str) -> None:
    with pytest.raises(HttpParseError, match="larger than 10"):
        parse_all(encode(200, [], body, framing), [], max_body=10)


@given(st.binary(max_size=200))
def test_parser_on_garbage_only_raises_parse_errors(raw: bytes) -> None:
    parser = ResponseParser(1000)
    try:
        parser.feed(raw)
        if not parser.done:
            parser.feed_eof()
        response = parser.response()
    except HttpParseError:
        return
    assert raw.startswith(b"HTTP/1.")
    assert 100 <= response.status <= 999


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
])
def test_parser_rejects(raw: bytes) -> None:
    parser = ResponseParser(100)
    with pytest.raises(HttpParseError):
        parser.feed(raw)
        parser.feed_eof()
        parser.response()


def test_parse_head_and_media_type() -> None:
    status, reason, headers = parse_head(b"HTTP/1.0 404\r\nX-A:  b \r\nX-A: c")
    assert (status, reason, headers) == (404, "", (("X-A", "b"), ("X-A", "c")))
    assert media_type("Text/Plain; charset=utf-8") == "text/plain"
    assert media_type(None) is None


@pytest.mark.parametrize(("response", "fragment"), [
    (HttpResponse(301, "Moved", (("Location", "https://x.test/"),), b""), "redirects"),
    (HttpResponse(404, "Not Found", (("Content-Type", "text/plain"),), POLICY.encode()), "404"),
    (HttpResponse(200, "OK", (("Content-Type", "text/html"),), POLICY.encode()), "text/html"),
    (HttpResponse(200, "OK", (), POLICY.encode()), "missing"),
    (HttpResponse(200, "OK", (("Content-Type", "text/plain"),), b"\xff\xfe"), "UTF-8"),
])
def test_check_response_refuses(response: HttpResponse, fragment: str) -> None:
    with pytest.raises(PolicyFetchError, match=fragment):
        check_response(response)


def test_check_response_accepts_charset() -> None:
    ok = HttpResponse(200, "OK", (("content-type", "text/plain; charset=utf-8"),),
                      POLICY.encode())
    assert check_response(ok) == POLICY


# --- over real TLS on loopback -------------------------------------------------------------

async def _fetch_with(tmp_path: Path, answer: HttpAnswer, kind: CertKind = CertKind.VALID,
                      max_bytes: int = 65536) -> tuple[str | PolicyFetchError, PolicyHost]:
    pki = LabPKI(tmp_path / "pki")
    dns = DnsResponder()
    dns.a("mta-sts.victim.test", "127.0.0.1")
    host = PolicyHost(pki.server_context("mta-sts.victim.test", kind))
    host.answer = answer
    server = await dns.start()
    port = await host.start()
    try:
        resolver = Resolver(server, timeout=2.0)
        try:
            text: str | PolicyFetchError = await fetch_policy(
                "victim.test", resolver, port, pki.ca_file, timeout=10.0, max_bytes=max_bytes)
        except PolicyFetchError as exc:
            text = exc
        return text, host
    finally:
        await host.close()
        await dns.close()


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True])
def test_fetch_ok(tmp_path: Path, chunked: bool) -> None:
    answer = HttpAnswer(body=POLICY.encode(), chunked=chunked,
                        headers=[("Content-Type", "text/plain; charset=utf-8")])
    text, host = asyncio.run(_fetch_with(tmp_path, answer))
    assert text == POLICY
    request_line, headers = host.requests[0]
    assert request_line == "GET /.well-known/mta-sts.txt HTTP/1.1"
    assert headers["host"] == "mta-sts.victim.test"
    assert headers["connection"] == "close"


@pytest.mark.integration
def test_fetch_does_not_follow_redirect(tmp_path: Path) -> None:
    answer = HttpAnswer(301, "Moved Permanently",
                        [("Location", "https://mta-sts.victim.test/policy.txt")], b"")
    error, host = asyncio.run(_fetch_with(tmp_path, answer))
    assert isinstance(error, PolicyFetchError) and "301" in error.reason
    assert len(host.requests) == 1


@pytest.mark.integration
@pytest.mark.parametrize(("answer", "kind", "fragment", "result_type"), [
    (HttpAnswer(404, "Not Found", body=POLICY.encode()), CertKind.VALID, "404",
     "sts-policy-fetch-error"),
    (HttpAnswer(headers=[("Content-Type", "text/html")], body=POLICY.encode()),
     CertKind.VALID, "text/html", "sts-policy-invalid"),
    (HttpAnswer(body=POLICY.encode() * 10), CertKind.VALID, "larger than",
     "sts-policy-fetch-error"),
    (HttpAnswer(body=POLICY.encode()), CertKind.SELF_SIGNED, "certificate verify failed",
     "sts-webpki-invalid"),
    (HttpAnswer(body=POLICY.encode()), CertKind.WRONG_NAME, "certificate verify failed",
     "sts-webpki-invalid"),
    (HttpAnswer(body=POLICY.encode()), CertKind.EXPIRED, "certificate verify failed",
     "sts-webpki-invalid"),
])
def test_fetch_failures(tmp_path: Path, answer: HttpAnswer, kind: CertKind, fragment: str,
                        result_type: str) -> None:
    error, _ = asyncio.run(_fetch_with(tmp_path, answer, kind, max_bytes=200))
    assert isinstance(error, PolicyFetchError)
    assert fragment in error.reason
    assert error.result_type == result_type


@pytest.mark.integration
def test_fetch_bounded_by_timeout(tmp_path: Path) -> None:
    """A policy host that accepts and never answers: the fetch ends at the timeout."""
    async def scenario() -> PolicyFetchError:
        pki = LabPKI(tmp_path / "pki")
        dns = DnsResponder()
        dns.a("mta-sts.victim.test", "127.0.0.1")
        release = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            writer.close()

        server = await asyncio.start_server(
            mute, "127.0.0.1", 0, ssl=pki.server_context("mta-sts.victim.test"))
        port = server.sockets[0].getsockname()[1]
        dns_addr = await dns.start()
        try:
            with pytest.raises(PolicyFetchError) as info:
                await fetch_policy("victim.test", Resolver(dns_addr), port, pki.ca_file,
                                   timeout=0.5)
            return info.value
        finally:
            release.set()
            server.close()
            await server.wait_closed()
            await dns.close()

    error = asyncio.run(scenario())
    assert "longer than 0.5s" in error.reason
