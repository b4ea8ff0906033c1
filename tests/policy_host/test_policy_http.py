"""Property tests for the policy host's HTTP request parser and response writer."""

from __future__ import annotations

import asyncio
import http.client
import io
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.policy_host.http import (
    MAX_HEAD,
    MAX_HEADERS,
    MAX_TARGET,
    HttpError,
    Request,
    find_head_end,
    host_name,
    parse_request_head,
    response_head,
)
from lab.policy_host.server import read_head

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
VCHARS = "".join(chr(c) for c in range(0x21, 0x7F))

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=16)
targets = st.text(VCHARS, max_size=120).map(lambda t: "/" + t)
values = st.one_of(
    st.just(""),
    st.builds(lambda a, mid, b: a + mid + b, st.sampled_from(VCHARS),
              st.text(VCHARS + " \t", max_size=40), st.sampled_from(VCHARS)),
)
header_names = tokens.filter(lambda n: n.lower() != "host")


@st.composite
def requests(draw: st.DrawFn) -> Request:
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    headers = draw(st.lists(st.tuples(header_names, values), max_size=10))
    if version == "HTTP/1.1" or draw(st.booleans()):
        host = draw(st.sampled_from(["Host", "host", "HOST"]))
        headers.insert(draw(st.integers(0, len(headers))), (host, draw(values)))
    return Request(draw(tokens), draw(targets), version, tuple(headers))


def encode(request: Request, eol: bytes = b"\r\n") -> bytes:
    lines = [f"{request.method} {request.target} {request.version}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in request.headers]
    return eol.join(lines) + eol + eol


@given(requests(), st.sampled_from([b"\r\n", b"\n"]))
def test_round_trip(request: Request, eol: bytes) -> None:
    assert parse_request_head(encode(request, eol)) == request


@given(requests(), st.binary(max_size=200))
def test_head_end_ignores_what_follows(request: Request, body: bytes) -> None:
    head = encode(request)
    assert find_head_end(head + body) == len(head)
    assert find_head_end(head[:-2]) is None


@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_http_error(data: bytes) -> None:
    try:
        request = parse_request_head(data)
    except HttpError as exc:
        assert exc.status in (400, 414, 431, 505)
    else:
        assert " " not in request.method and request.target and request.version


@given(st.integers(MAX_HEAD, MAX_HEAD + 500), st.sampled_from(VCHARS))
def test_oversize_head_is_431(size: int, fill: str) -> None:
    with pytest.raises(HttpError) as caught:
        parse_request_head(f"GET / HTTP/1.1\r\nHost: a\r\nX: {fill * size}\r\n\r\n".encode())
    assert caught.value.status == 431


@given(st.integers(MAX_HEADERS, MAX_HEADERS + 20))
def test_too_many_headers_is_431(count: int) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * count + b"\r\n"
    with pytest.raises(HttpError) as caught:
        parse_request_head(head)
    assert caught.value.status == 431


@given(st.integers(MAX_TARGET, MAX_HEAD // 2), st.text(VCHARS, min_size=1, max_size=10))
def test_long_target_is_414(size: int, pattern: str) -> None:
    target = (pattern * size)[:size]
    with pytest.raises(HttpError) as caught:
        parse_request_head(f"GET /{target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert caught.value.status == 414


@given(requests(), st.sampled_from([b"\x00", b"\r", b"\x7f", b"\x1b"]))
def test_control_characters_in_values_are_rejected(request: Request, bad: bytes) -> None:
    head = encode(request)[:-2] + b"X-Evil: a" + bad + b"b\r\n\r\n"
    with pytest.raises(HttpError) as caught:
        parse_request_head(head)
    assert caught.value.status == 400


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\n\r\n",                          # no Host in HTTP/1.1
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",    # two Hosts
    b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",    # obsolete line folding
    b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",              # double space
    b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",               # method not a token
    b"GET / HTTP/1.1\r\nBad Name: a\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
    b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\n",
])
def test_malformed_heads_are_400(head: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        parse_request_head(head)
    assert caught.value.status == 400


def test_http2_is_505() -> None:
    with pytest.raises(HttpError) as caught:
        parse_request_head(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    assert caught.value.status == 505


@given(requests(), st.binary(max_size=100), st.lists(st.integers(1, 64), min_size=1))
def test_read_head_reassembles_any_split(request: Request, body: bytes,
                                         cuts: list[int]) -> None:
    data = encode(request) + body

    async def main() -> bytes:
        reader = asyncio.StreamReader()
        pos, i = 0, 0
        while pos < len(data):
            step = cuts[i % len(cuts)]
            reader.feed_data(data[pos:pos + step])
            pos, i = pos + step, i + 1
        reader.feed_eof()
        return await read_head(reader)

    assert asyncio.run(main()) == encode(request)


@given(st.integers(MAX_HEAD + 1, 3 * MAX_HEAD), st.booleans())
def test_read_head_limits_size(size: int, terminated: bool) -> None:
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * size + (b"\r\n\r\n" if terminated else b"")

    async def main() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_head(reader)

    with pytest.raises(HttpError) as caught:
        asyncio.run(main())
    assert caught.value.status == 431


@given(st.binary(max_size=100).filter(lambda b: find_head_end(b) is None))
def test_read_head_eof_before_end_is_400(data: bytes) -> None:
    async def main() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_head(reader)

    with pytest.raises(HttpError) as caught:
        asyncio.run(main())
    assert caught.value.status == 400


class _FakeSocket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


@given(st.integers(200, 999), st.text(VCHARS + " ", max_size=30).map(str.strip),
       st.lists(st.tuples(tokens, values), max_size=10))
def test_response_head_parses_back(status: int, reason: str,
                                   headers: list[tuple[str, str]]) -> None:
    head = response_head(status, reason, headers)
    response = http.client.HTTPResponse(_FakeSocket(head))  # type: ignore[arg-type]
    response.begin()
    assert response.status == status
    assert response.reason.strip() == reason
    assert [(k, v) for k, v in response.getheaders()] == headers


@pytest.mark.parametrize(("name", "value"), [("X", "a\r\nInjected: 1"), ("Bad Name", "x")])
def test_response_head_refuses_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        response_head(200, "OK", [(name, value)])


@given(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True),
       st.integers(0, 65535), st.booleans())
def test_host_name_drops_port_and_case(host: str, port: int, with_port: bool) -> None:
    value = f"{host.upper()}:{port}" if with_port else f"{host.upper()}."
    assert host_name(value) == host.rstrip(".")
