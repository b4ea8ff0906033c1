"""The reference sender end to end on loopback: real DNS, HTTPS and SMTP with STARTTLS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lab.pki import CertKind
from lab.senders import load_all
from lab.senders.base import Sender
from lab.senders.reference import ReferenceSender

from .lab_servers import HttpAnswer
from .mini_world import DOMAIN, MX1, MX2, MiniWorld, policy_text, run_sender

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(tmp_path: Path, body: Callable[[MiniWorld, ReferenceSender], Awaitable[None]],
        clock: Clock | None = None) -> None:
    run_sender(tmp_path, lambda: ReferenceSender(clock) if clock else ReferenceSender(), body)


def test_registered_as_positive_control() -> None:
    load_all()
    cls = Sender.registry.get("reference")
    assert cls is ReferenceSender
    assert cls.control == "positive" and cls.own_status


def test_enforce_delivers_over_verified_tls(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        status = await world.send(sender)
        assert status["status"] == "sent" and status["mx"] == MX1
        assert len(world.mx1.received) == 1 and world.mx1.received[0].tls
        assert world.mx1.sni == [MX1]  # T1
        assert world.policy_events() == [{"domain": DOMAIN, "source": "fetched", "id": "one",
                                          "mode": "enforce", "error": None}]
        attempts = world.events.of("attempt")
        assert [(a.get("tls"), a.get("result")) for a in attempts] == [("verified", "delivered")]
        assert world.events.lines()  # readable step-by-step log lines
    run(tmp_path, body)


@pytest.mark.parametrize(("kind", "words"), [
    (CertKind.SELF_SIGNED, "certificate-not-trusted"),
    (CertKind.WRONG_NAME, "certificate-host-mismatch"),
    (CertKind.EXPIRED, "certificate-expired"),
    (None, "does not offer STARTTLS"),
])
def test_enforce_defers_on_bad_mx(tmp_path: Path, kind: CertKind | None, words: str) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.cert(MX1, kind)
        status = await world.send(sender)
        assert status["status"] == "deferred"  # A2: never bounced
        reason = str(status["reason"])
        assert reason.startswith(f"4.7.5 {MX1}:") and words in reason
        assert world.mx1.received == []
    run(tmp_path, body)


def test_testing_mode_delivers_and_logs_what_would_fail(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.set_policy("testing")
        world.cert(MX1, CertKind.SELF_SIGNED)
        status = await world.send(sender)
        assert status["status"] == "sent"
        assert len(world.mx1.received) == 1
        assert any("testing mode: enforce would refuse" in line
                   for line in world.events.lines())
    run(tmp_path, body)


def test_redirect_is_not_followed(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.policy.answer = HttpAnswer(
            301, "Moved Permanently",
            [("Location", f"https://mta-sts.{DOMAIN}/elsewhere.txt"),
             ("Content-Type", "text/plain")], policy_text())
        world.cert(MX1, CertKind.SELF_SIGNED)
        status = await world.send(sender)
        [policy] = world.policy_events()
        assert policy["source"] == "none" and "301" in str(policy["error"])
        assert len(world.policy.requests) == 1
        assert status["status"] == "sent"  # no policy: opportunistic TLS
        assert [a.get("tls") for a in world.events.of("attempt")] == ["unverified"]
    run(tmp_path, body)


def test_cache_kept_across_injections_and_cleared_by_reset(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        await world.send(sender)
        await world.send(sender)
        assert [p["source"] for p in world.policy_events()] == ["fetched", "cached"]
        assert len(world.policy.requests) == 1
        await sender.reset()
        await world.send(sender)
        assert [p["source"] for p in world.policy_events()] == ["fetched", "cached", "fetched"]
        assert len(world.policy.requests) == 2
    run(tmp_path, body)


def test_cached_policy_applies_without_txt_but_not_when_unprimed(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        assert (await world.send(sender))["status"] == "sent"  # primes the cache
        world.set_txt()  # the attacker hides the TXT record (C1)
        world.cert(MX1, CertKind.SELF_SIGNED)
        assert (await world.send(sender))["status"] == "deferred"
        assert world.policy_events()[-1]["source"] == "cached"
        await sender.reset()  # not primed: the first-contact weakness (10.2)
        assert (await world.send(sender))["status"] == "sent"
        assert world.policy_events()[-1]["source"] == "none"
    run(tmp_path, body)


def test_new_id_with_broken_policy_host_keeps_the_old_policy(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        await world.send(sender)
        world.set_txt("v=STSv1; id=two;")
        world.policy.answer = HttpAnswer(500, "Internal Server Error", body=b"")
        world.cert(MX1, None)
        status = await world.send(sender)
        assert status["status"] == "deferred"
        last = world.policy_events()[-1]
        assert last["source"] == "cached" and last["id"] == "one" and "500" in str(last["error"])
    run(tmp_path, body)


def test_new_id_fetches_the_new_policy(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        await world.send(sender)
        world.set_txt("v=STSv1; id=two;")
        world.set_policy("none", ())
        world.cert(MX1, None)
        status = await world.send(sender)
        assert status["status"] == "sent" and not world.mx1.received[-1].tls
        assert world.policy_events()[-1]["source"] == "fetched"
        assert world.policy_events()[-1]["mode"] == "none"
    run(tmp_path, body)


def test_policy_expires_after_max_age(tmp_path: Path) -> None:
    clock = Clock()

    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.set_policy(max_age=5)
        await world.send(sender)
        world.set_txt()
        world.cert(MX1, None)
        clock.now = 4.9
        assert (await world.send(sender))["status"] == "deferred"
        clock.now = 5.0
        assert (await world.send(sender))["status"] == "sent"
        assert world.policy_events()[-1]["source"] == "none"
    run(tmp_path, body, clock)


def test_subdomain_never_uses_the_parent_policy(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.dns.mx(f"sub.{DOMAIN}", 10, MX1)
        await world.send(sender)  # the parent's enforce policy is cached
        world.cert(MX1, CertKind.SELF_SIGNED)
        status = await world.send(sender, f"user@sub.{DOMAIN}")
        assert status["status"] == "sent"
        last = world.policy_events()[-1]
        assert last["domain"] == f"sub.{DOMAIN}" and last["source"] == "none"
    run(tmp_path, body)


def test_failing_primary_skipped_backup_used(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.dns.mx(DOMAIN, 20, MX2)
        world.set_policy(mx=("*.victim.test",))
        world.cert(MX1, CertKind.WRONG_NAME)
        status = await world.send(sender)
        assert status["status"] == "sent" and status["mx"] == MX2  # A3
        assert world.mx1.received == [] and world.mx2.received[0].tls
        assert [a.get("result") for a in world.events.of("attempt")] == ["failed", "delivered"]
    run(tmp_path, body)


def test_mx_outside_the_policy_is_skipped(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.dns.remove(DOMAIN, "MX")
        world.dns.mx(DOMAIN, 10, MX2)  # valid certificate, but not an mx of the policy
        status = await world.send(sender)
        assert status["status"] == "deferred"
        assert "not an mx of the MTA-STS policy" in str(status["reason"])
        assert world.mx2.received == []
        assert [a.get("result") for a in world.events.of("attempt")] == ["skipped"]
    run(tmp_path, body)


def test_invalid_txt_means_no_policy(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        world.set_txt("v=STSv1; id=one;", "v=STSv1; id=two;")
        world.cert(MX1, CertKind.SELF_SIGNED)
        assert (await world.send(sender))["status"] == "sent"
        assert world.policy.requests == []
    run(tmp_path, body)


def test_close_cancels_outstanding_delivery(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: ReferenceSender) -> None:
        from lab.senders.base import OutgoingMessage
        world.dns.silent.add(DOMAIN)  # the MX lookup hangs until its timeout
        await sender.inject(OutgoingMessage.probe(f"user@{DOMAIN}"))
        await sender.close()
        assert world.events.of("status") == []
    run(tmp_path, body)
