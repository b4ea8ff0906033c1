"""The three SMTP attacks of the proxy: registration, options and hooks."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import pytest

from lab.attacks.base import Attack, SmtpAttack
from lab.attacks.passthrough import Passthrough
from lab.attacks.strip_starttls import StripStarttls
from lab.attacks.swap_certificate import SwapCertificate
from lab.pki import CertKind
from lab.smtp.types import Command, Reply, TlsPlan


@dataclass
class Flow:
    mx_name: str = "mx1.victim.test"
    client_tls: str = "none"
    fired: list[tuple[str, str]] = field(default_factory=list)

    def fire(self, attack: str, detail: str) -> None:
        self.fired.append((attack, detail))

    def cut(self, reason: str) -> None:
        raise AssertionError(f"no attack here cuts connections ({reason})")


EHLO = Reply(250, ("mx1.victim.test", "PIPELINING", "STARTTLS", "8BITMIME"))


@pytest.mark.parametrize("cls", [Passthrough, StripStarttls, SwapCertificate])
def test_registered_with_plain_typed_options(cls: type[SmtpAttack]) -> None:
    assert Attack.registry.get(cls.name) is cls
    assert cls.summary and cls.place == "smtp"
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        assert hints[f.name] in (str, int, float, bool, CertKind, str | None)
        assert f.default is not dataclasses.MISSING


def test_passthrough_never_fires() -> None:
    flow, attack = Flow(), Passthrough()
    assert not Passthrough.enforce_breaking
    assert attack.on_greeting(flow, EHLO) is EHLO
    assert attack.on_command(flow, Command("STARTTLS")) == Command("STARTTLS")
    assert attack.on_reply(flow, Command("EHLO", "x"), EHLO) is EHLO
    assert attack.on_starttls(flow) is None
    assert flow.fired == []


def test_strip_starttls() -> None:
    flow, attack = Flow(), StripStarttls()
    assert StripStarttls.enforce_breaking
    stripped = attack.on_reply(flow, Command("EHLO", "x"), EHLO)
    assert stripped == Reply(250, ("mx1.victim.test", "PIPELINING", "8BITMIME"))
    assert attack.on_reply(flow, Command("EHLO", "x"), stripped) is stripped
    assert attack.on_reply(flow, Command("HELO", "x"), EHLO) is EHLO
    refusal = attack.on_command(flow, Command("STARTTLS"))
    assert isinstance(refusal, Reply) and refusal.code == 502
    assert [d for _, d in flow.fired] == ["removed STARTTLS from EHLO reply",
                                          "answered STARTTLS with 502 (not forwarded)"]


@pytest.mark.parametrize("kind", list(CertKind))
def test_swap_certificate_plans_interception(kind: CertKind) -> None:
    flow = Flow()
    plan = SwapCertificate(certificate=kind).on_starttls(flow)
    assert plan == TlsPlan("intercept", cert=kind, cert_name="mx1.victim.test")
    assert flow.fired == [("swap-certificate",
                           f"presented {kind.value} certificate for mx1.victim.test")]


def test_swap_certificate_identity_and_default() -> None:
    assert SwapCertificate().certificate is CertKind.SELF_SIGNED
    plan = SwapCertificate(identity="mx2.victim.test").on_starttls(Flow())
    assert plan is not None and plan.cert_name == "mx2.victim.test"
