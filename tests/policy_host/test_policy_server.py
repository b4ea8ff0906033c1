"""The policy host over real sockets and real TLS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from policy_lab import DOMAIN, HOST, TIMEOUT, Lab, run_host

from lab.events import Event
from lab.pki import WRONG_NAME, CertKind, LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import (
    FALLBACK_HOST,
    POLICY_PATH,
    trickle_chunks,
    trickle_plan,
)

pytestmark = pytest.mark.integration

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.victim.test\r\nmax_age: 86400\r\n"


def run(responses: dict[str, PolicyResponse], body: Callable[[Lab], Awaitable[None]],
        tmp_path: Path, **options: float) -> None:
    run_host(responses, body, tmp_path, Lab, **options)


class LoopbackHTTPS(http.client.HTTPSConnection):
    """http.client that connects to 127.0.0.1 but uses the host name for SNI and Host."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=TIMEOUT, context=context)
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1
        return values[0] if values else None


def get(port: int, context: ssl.SSLContext, host: str = HOST, path: str = POLICY_PATH,
        method: str = "GET") -> Reply:
    conn = LoopbackHTTPS(host, port, context)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return Reply(response.status, response.reason, response.getheaders(), response.read())
    finally:
        conn.close()


async def aget(lab: Lab, **kwargs: Any) -> Reply:
    return await asyncio.to_thread(get, lab.port, kwargs.pop("context", lab.pki.client_context()),
                                   **kwargs)


async def raw(lab: Lab, data: bytes, *, sni: str = HOST,
              context: ssl.SSLContext | None = None) -> bytes:
    """Send raw bytes over TLS and read the answer up to EOF."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", lab.port, ssl=context or lab.pki.client_context(), server_hostname=sni)
    try:
        writer.write(data)
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def leaf_der(pki: LabPKI, name: str, kind: CertKind) -> bytes:
    pem = pki.leaf(name, kind).cert_chain_pem
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def lax_context() -> ssl.SSLContext:
    """A client that checks nothing (a sender that ignores certificate errors)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_serves_the_policy(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        reply = await aget(lab)
        assert (reply.status, reply.reason) == (200, "OK")
        assert reply.header("Content-Type") == "text/plain"
        assert reply.header("Content-Length") == str(len(POLICY))
        assert reply.header("Connection") == "close"
        assert reply.body == POLICY
        [handshake] = lab.events("handshake")
        assert handshake["sni"] == HOST and handshake["cert"] == "valid"
        [fetch] = lab.events("fetch")
        assert fetch["domain"] == DOMAIN
        assert fetch["host"] == f"{HOST}:{lab.port}"
        assert fetch["path"] == POLICY_PATH
        assert fetch["status"] == 200
        assert fetch["bytes"] == len(POLICY)
        assert fetch["applied"] == ["honest"]
        assert fetch["sni"] == HOST
        assert fetch["content_type"] == "text/plain"
        assert lab.events("tls-failed") == []

    run({DOMAIN: PolicyResponse(body=POLICY, applied=("honest",))}, body, tmp_path)


def test_redirect_is_returned_as_configured(tmp_path: Path) -> None:
    location = "https://mta-sts.attacker.test/.well-known/mta-sts.txt"
    response = PolicyResponse(301, "Moved Permanently", body=b"moved\n",
                              headers=(("Location", location),), applied=("policy-redirect",))

    async def body(lab: Lab) -> None:
        reply = await aget(lab)
        assert (reply.status, reply.reason) == (301, "Moved Permanently")
        assert reply.header("Location") == location
        assert reply.body == b"moved\n"
        [fetch] = lab.events("fetch")
        assert fetch["status"] == 301 and fetch["applied"] == ["policy-redirect"]

    run({DOMAIN: response}, body, tmp_path)


@pytest.mark.parametrize("content_type", [
    "text/plain; charset=utf-8", "text/html", "application/json", "TEXT/PLAIN", None])
def test_content_type_variants(tmp_path: Path, content_type: str | None) -> None:
    async def body(lab: Lab) -> None:
        reply = await aget(lab)
        assert reply.status == 200
        assert reply.header("Content-Type") == content_type
        assert reply.body == POLICY
        assert lab.events("fetch")[0]["content_type"] == content_type

    run({DOMAIN: PolicyResponse(content_type=content_type, body=POLICY)}, body, tmp_path)


def test_configured_headers_replace_the_hosts_own(tmp_path: Path) -> None:
    response = PolicyResponse(body=POLICY, headers=(("Content-Length", str(len(POLICY) + 5)),
                                                    ("Cache-Control", "no-store")))

    async def body(lab: Lab) -> None:
        answer = await raw(lab, f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.count(b"Content-Length:") == 1
        assert f"Content-Length: {len(POLICY) + 5}".encode() in head
        assert b"Cache-Control: no-store" in head
        assert rest == POLICY

    run({DOMAIN: response}, body, tmp_path)


BAD_CERTS = [CertKind.SELF_SIGNED, CertKind.EXPIRED, CertKind.ROGUE_CA, CertKind.WRONG_NAME,
             CertKind.NOT_YET_VALID]


@pytest.mark.parametrize("kind", BAD_CERTS, ids=[k.value for k in BAD_CERTS])
def test_bad_certificate_fails_a_verifying_client(tmp_path: Path, kind: CertKind) -> None:
    async def body(lab: Lab) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await aget(lab)
        [handshake] = lab.events("handshake")
        assert handshake["cert"] == kind.value and handshake["sni"] == HOST
        [failed] = await lab.wait("tls-failed")
        assert failed["sni"] == HOST and failed["cert"] == kind.value and failed["error"]
        assert lab.events("fetch") == []

        # a client that checks nothing is served, and sees exactly that certificate
        def peer_der() -> bytes | None:
            conn = LoopbackHTTPS(HOST, lab.port, lax_context())
            try:
                conn.connect()
                assert isinstance(conn.sock, ssl.SSLSocket)
                return conn.sock.getpeercert(binary_form=True)
            finally:
                conn.close()

        assert await asyncio.to_thread(peer_der) == leaf_der(lab.pki, HOST, kind)
        reply = await aget(lab, context=lax_context())
        assert reply.status == 200 and reply.body == POLICY
        fetch = (await lab.wait("fetch"))[0]
        assert fetch["cert"] == kind.value

    run({DOMAIN: PolicyResponse(body=POLICY, cert=kind)}, body, tmp_path)


def test_wrong_name_certificate_names_the_attacker(tmp_path: Path) -> None:
    pem = LabPKI(tmp_path).leaf(HOST, CertKind.WRONG_NAME).cert_chain_pem
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [WRONG_NAME]


def test_trickle_sends_the_whole_body_in_paced_chunks(tmp_path: Path) -> None:
    rate = 100.0
    chunk, pause = trickle_plan(rate)
    expected_chunks = trickle_chunks(len(POLICY), rate)
    assert expected_chunks > 3 and chunk < len(POLICY)

    async def body(lab: Lab) -> None:
        started = time.monotonic()
        reply = await aget(lab)
        elapsed = time.monotonic() - started
        assert reply.status == 200 and reply.body == POLICY
        [fetch] = lab.events("fetch")
        assert fetch["chunks"] == expected_chunks
        assert fetch["complete"] is True and fetch["bytes"] == len(POLICY)
        # a lower bound only: the pauses between chunks cannot be skipped
        assert elapsed >= 0.5 * (expected_chunks - 1) * pause

    run({DOMAIN: PolicyResponse(body=POLICY, trickle_bytes_per_s=rate)}, body, tmp_path)


def test_client_giving_up_on_a_trickle_is_recorded(tmp_path: Path) -> None:
    slow = PolicyResponse(body=POLICY * 4, trickle_bytes_per_s=20.0)  # about 15 s in all

    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", lab.port, ssl=lab.pki.client_context(), server_hostname=HOST)
        try:
            writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            await reader.readexactly(1)
        finally:
            writer.transport.abort()  # the client gives up
        [fetch] = await lab.wait("fetch")
        assert fetch["complete"] is False and fetch["aborted"]
        assert 0 < fetch["bytes"] < len(slow.body)
        assert fetch["chunks"] < trickle_chunks(len(slow.body), 20.0)

    run({DOMAIN: slow}, body, tmp_path)


def test_unsendable_configured_response_becomes_500(tmp_path: Path) -> None:
    broken = PolicyResponse(body=POLICY, headers=(("X-Split", "a\r\nInjected: yes"),))

    async def body(lab: Lab) -> None:
        reply = await aget(lab)
        assert reply.status == 500 and reply.header("Injected") is None
        [fetch] = lab.events("fetch")
        assert fetch["status"] == 500 and "bad configured response" in fetch["error"]

    run({DOMAIN: broken}, body, tmp_path)


def test_untrickled_body_goes_in_one_write(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert (await aget(lab)).body == POLICY
        assert lab.events("fetch")[0]["chunks"] == 1

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path)


def test_unreachable_domain_resets_before_the_handshake(tmp_path: Path) -> None:
    responses = {DOMAIN: PolicyResponse(body=POLICY, reachable=False),
                 "up.test": PolicyResponse(body=b"up")}

    async def body(lab: Lab) -> None:
        with pytest.raises(OSError) as caught:
            await aget(lab)
        assert not isinstance(caught.value, ssl.SSLCertVerificationError)
        [refused] = await lab.wait("refused")
        assert refused["sni"] == HOST and refused["domain"] == DOMAIN
        assert lab.events("handshake") == [] and lab.events("fetch") == []
        # the other domain on the same host still answers
        assert (await aget(lab, host="mta-sts.up.test")).body == b"up"

    run(responses, body, tmp_path)


def test_unknown_path_method_and_host(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert (await aget(lab, path="/")).status == 404
        assert (await aget(lab, path=POLICY_PATH + "?x=1")).status == 404
        assert (await aget(lab, path="/.well-known/mta-sts.txt/")).status == 404
        post = await aget(lab, method="POST")
        assert post.status == 405 and post.header("Allow") == "GET"
        assert (await aget(lab, method="HEAD")).status == 405
        other_host = await raw(lab, f"GET {POLICY_PATH} HTTP/1.1\r\nHost: mta-sts.up.test\r\n\r\n"
                               .encode())
        assert status_of(other_host) == 421
        no_host = await raw(lab, f"GET {POLICY_PATH} HTTP/1.0\r\n\r\n".encode())
        assert status_of(no_host) == 200 and no_host.endswith(POLICY)
        statuses = [f["status"] for f in lab.events("fetch")]
        assert statuses == [404, 404, 404, 405, 405, 421, 200]
        assert all(f["applied"] == [] for f in lab.events("fetch")[:6])

    run({DOMAIN: PolicyResponse(body=POLICY, applied=("x",)),
         "up.test": PolicyResponse(body=b"up")}, body, tmp_path)


@pytest.mark.parametrize("sni", ["mta-sts.unknown.test", ""], ids=["unknown-sni", "no-sni"])
def test_unknown_or_missing_sni_gets_fallback_certificate_and_404(tmp_path: Path,
                                                                  sni: str) -> None:
    async def body(lab: Lab) -> None:
        context = lab.pki.client_context()
        context.check_hostname = False  # the chain is still verified
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port, ssl=context,
                                                       server_hostname=sni)
        try:
            ssl_obj = writer.get_extra_info("ssl_object")
            assert ssl_obj.getpeercert(binary_form=True) == leaf_der(lab.pki, FALLBACK_HOST,
                                                                     CertKind.VALID)
            writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert status_of(await reader.read()) == 404
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        [handshake] = lab.events("handshake")
        assert handshake["sni"] == (sni or None) and handshake["host"] == FALLBACK_HOST
        [fetch] = lab.events("fetch")
        assert fetch["status"] == 404 and fetch["domain"] is None

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path)


def test_configure_while_running_applies_to_new_connections(tmp_path: Path) -> None:
    first = PolicyResponse(body=POLICY)
    second = replace(first, body=b"version: STSv1\r\nmode: none\r\nmax_age: 60\r\n",
                     applied=("downgrade",))

    async def body(lab: Lab) -> None:
        assert (await aget(lab)).body == first.body
        # a connection opened before configure() keeps the answer it started with
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", lab.port, ssl=lab.pki.client_context(), server_hostname=HOST)
        try:
            lab.host.configure({DOMAIN: second})
            writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert (await reader.read()).endswith(first.body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        reply = await aget(lab)
        assert reply.body == second.body
        assert lab.events("fetch")[-1]["applied"] == ["downgrade"]
        lab.host.configure({DOMAIN: replace(second, cert=CertKind.SELF_SIGNED)})
        with pytest.raises(ssl.SSLCertVerificationError):
            await aget(lab)

    run({DOMAIN: first}, body, tmp_path)


def test_malformed_request_gets_400(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert status_of(await raw(lab, b"GET  /x HTTP/1.1\r\nHost: a\r\n\r\n")) == 400
        assert status_of(await raw(lab, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000)) == 431
        bad = await lab.wait("bad-request", 2)
        assert [e["status"] for e in bad] == [400, 431]
        assert lab.events("fetch") == []

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path)


def test_silent_client_times_out_with_408(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert status_of(await raw(lab, b"GET / HT")) == 408
        [bad] = lab.events("bad-request")
        assert bad["status"] == 408

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path, read_timeout=0.2)


def test_close_ends_open_connections(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", lab.port, ssl=lab.pki.client_context(), server_hostname=HOST)
        try:
            await asyncio.wait_for(lab.host.close(), 5)
            with contextlib.suppress(OSError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", lab.port)

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path)


def test_events_are_plain_data(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        await aget(lab)
        events: list[Event] = lab.log.select(source="policy")
        assert [e.kind for e in events] == ["connect", "handshake", "fetch"]
        for event in events:
            assert all(isinstance(v, str | int | bool | list | None)
                       for v in event.data.values())

    run({DOMAIN: PolicyResponse(body=POLICY)}, body, tmp_path)
