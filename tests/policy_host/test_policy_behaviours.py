"""The policy host's misbehaviours, as the policy attacks configure them, against real TLS
clients: the reference sender's own fetch, and a plain client where the point is what a
non-compliant sender would get."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from policy_lab import DOMAIN, HOST, TIMEOUT, Lab, run_host

from lab.attacks.base import PolicyAttack
from lab.attacks.policy_certificate import PolicyCertificate
from lab.attacks.policy_http_cache import PolicyHttpCache
from lab.attacks.policy_media_type import PolicyMediaType
from lab.attacks.policy_oversize import PolicyOversize
from lab.attacks.policy_redirect import PolicyRedirect
from lab.attacks.policy_status import PolicyStatus
from lab.attacks.policy_trickle import PolicyTrickle
from lab.attacks.policy_unreachable import PolicyUnreachable
from lab.pki import CertKind
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import POLICY_PATH
from lab.senders.dnsclient import Resolver
from lab.senders.mtasts import parse_policy
from lab.senders.policy_fetch import PolicyFetchError, fetch_policy

pytestmark = pytest.mark.integration

POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmax_age: 86400\n"


class LoopbackResolver(Resolver):
    """Every name is 127.0.0.1 (the policy host under test)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 9))

    async def a(self, name: str) -> list[str]:
        return ["127.0.0.1"]


class BehaviourLab(Lab):
    """The harness plus the two clients these tests compare: compliant and plain."""

    async def fetch(self, timeout: float = TIMEOUT) -> str:
        """The reference sender's policy fetch (RFC 8461 3.3 rules, 64 KiB bound)."""
        return await fetch_policy(DOMAIN, LoopbackResolver(), self.port, self.pki.ca_file,
                                  timeout)

    async def get(self, path: str = POLICY_PATH, extra: str = "",
                  context: ssl.SSLContext | None = None) -> bytes:
        """A plain GET (what a sender that follows redirects or revalidates would send)."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=context or self.pki.client_context(),
            server_hostname=HOST)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{extra}"
                         "Connection: close\r\n\r\n".encode())
            async with asyncio.timeout(TIMEOUT):
                return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def run(attacks: list[PolicyAttack], body: Callable[[BehaviourLab], Awaitable[None]],
        tmp_path: Path) -> None:
    response = PolicyResponse(body=POLICY)
    for attack in attacks:
        response = attack.transform(response, DOMAIN)
    run_host({DOMAIN: response}, body, tmp_path, BehaviourLab)


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_honest_answer_is_fetched_and_carries_validators(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        assert parse_policy(await lab.fetch()).mode == "enforce"
        status, headers, _ = split(await lab.get())
        assert status == 200 and headers["ETag"].startswith('"') and headers["Last-Modified"]
        fetches = lab.events("fetch")
        assert [f["conditional"] for f in fetches] == [False, False]
        [handshake, _] = lab.events("handshake")
        assert handshake["applied"] == []

    run([], body, tmp_path)


def test_redirect_target_really_serves_the_policy_but_is_not_followed(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        with pytest.raises(PolicyFetchError, match=r"HTTP 301.*redirects are not followed"):
            await lab.fetch()
        status, headers, _ = split(await lab.get())
        location = f"https://{HOST}:{lab.port}/moved/mta-sts.txt"
        assert status == 301 and headers["Location"] == location
        # a sender that follows it gets the genuine policy there
        status, headers, moved = split(await lab.get("/moved/mta-sts.txt"))
        assert (status, headers["Content-Type"], moved) == (200, "text/plain", POLICY)
        paths = [(f["path"], f["status"], f["applied"]) for f in lab.events("fetch")]
        assert paths == [(POLICY_PATH, 301, ["policy-redirect"]),
                         (POLICY_PATH, 301, ["policy-redirect"]),
                         ("/moved/mta-sts.txt", 200, ["policy-redirect"])]

    run([PolicyRedirect()], body, tmp_path)


@pytest.mark.parametrize("status", [404, 500])
def test_non_200_with_a_valid_body_is_a_failed_fetch(tmp_path: Path, status: int) -> None:
    async def body(lab: BehaviourLab) -> None:
        with pytest.raises(PolicyFetchError, match=f"HTTP {status}"):
            await lab.fetch()
        got, _, text = split(await lab.get())
        assert got == status and text == POLICY  # the body is a valid policy all the same
        assert lab.events("fetch")[0]["applied"] == ["policy-status"]

    run([PolicyStatus(status=status)], body, tmp_path)


@pytest.mark.parametrize(("content_type", "accepted"), [
    ("text/html", False), (None, False), ("text/plain; charset=utf-8", True)])
def test_media_types(tmp_path: Path, content_type: str | None, accepted: bool) -> None:
    async def body(lab: BehaviourLab) -> None:
        if accepted:
            assert parse_policy(await lab.fetch()).mode == "enforce"
        else:
            with pytest.raises(PolicyFetchError, match="not text/plain") as caught:
                await lab.fetch()
            assert caught.value.result_type == "sts-policy-invalid"
        [fetch] = lab.events("fetch")
        assert fetch["content_type"] == content_type
        assert fetch["applied"] == ["policy-media-type"]

    run([PolicyMediaType(content_type=content_type)], body, tmp_path)


def test_oversize_body_is_refused_by_the_bounded_fetch(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        with pytest.raises(PolicyFetchError, match="larger than 65536"):
            await lab.fetch()
        status, _, whole = split(await lab.get())
        assert status == 200 and len(whole) == 100_000
        assert parse_policy(whole.decode()).mode == "enforce"

    run([PolicyOversize(size=100_000)], body, tmp_path)


def test_trickle_is_cut_off_by_the_fetch_bound(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        started = time.monotonic()
        with pytest.raises(PolicyFetchError, match=r"longer than 0\.5s"):
            await lab.fetch(timeout=0.5)
        assert time.monotonic() - started < 3.0
        [handshake] = lab.events("handshake")
        assert handshake["applied"] == ["policy-trickle"]
        [fetch] = await lab.wait("fetch")  # the host notices the sender gave up
        assert fetch["complete"] is False and fetch["bytes"] < len(POLICY)

    run([PolicyTrickle(bytes_per_s=8)], body, tmp_path)


@pytest.mark.parametrize("kind", [CertKind.ROGUE_CA, CertKind.WRONG_NAME, CertKind.EXPIRED,
                                  CertKind.SELF_SIGNED], ids=str)
def test_bad_certificate_fails_the_fetch_and_says_so(tmp_path: Path, kind: CertKind) -> None:
    async def body(lab: BehaviourLab) -> None:
        with pytest.raises(PolicyFetchError) as caught:
            await lab.fetch()
        assert caught.value.result_type == "sts-webpki-invalid"
        [failed] = await lab.wait("tls-failed")
        assert failed["applied"] == ["policy-certificate"] and failed["cert"] == kind.value
        assert lab.events("handshake")[0]["applied"] == ["policy-certificate"]

    run([PolicyCertificate(certificate=kind)], body, tmp_path)


def test_unreachable_host_refuses_with_the_attack_named(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        with pytest.raises(PolicyFetchError, match=r"cannot connect|mid-fetch"):
            await lab.fetch()
        [refused] = await lab.wait("refused")
        assert refused["applied"] == ["policy-unreachable"]

    run([PolicyUnreachable()], body, tmp_path)


def test_http_cache_answers_304_only_to_conditional_requests(tmp_path: Path) -> None:
    async def body(lab: BehaviourLab) -> None:
        assert parse_policy(await lab.fetch()).mode == "enforce"  # a plain GET: 200
        status, headers, text = split(await lab.get(extra='If-None-Match: "old"\r\n'))
        assert (status, text, headers["ETag"]) == (304, b"", '"mtasts-lab-policy"')
        status, _, _ = split(await lab.get(extra="If-Modified-Since: "
                                                 "Mon, 01 Jan 2024 00:00:00 GMT\r\n"))
        assert status == 304
        fetches = [(f["status"], f["conditional"]) for f in lab.events("fetch")]
        assert fetches == [(200, False), (304, True), (304, True)]

    run([PolicyHttpCache()], body, tmp_path)
