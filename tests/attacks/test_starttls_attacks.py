"""The STARTTLS-class SMTP attacks: registration, typed options, and their hooks in isolation
(each fires exactly when it acts; the byte transcripts are in tests/smtp)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import pytest

from lab.attacks.abort_handshake import AbortHandshake
from lab.attacks.base import Attack, SmtpAttack
from lab.attacks.inject_response import InjectResponse
from lab.attacks.legacy_tls_only import LegacyTlsOnly
from lab.attacks.refuse_ehlo import RefuseEhlo
from lab.attacks.reject_starttls import RejectStarttls
from lab.attacks.reset_after_handshake import ResetAfterHandshake
from lab.pki import CertKind
from lab.scenario import ScenarioError, load_text
from lab.smtp.types import Command, Reply, TlsPlan

NEW: list[type[SmtpAttack]] = [RejectStarttls, RefuseEhlo, AbortHandshake, ResetAfterHandshake,
                               LegacyTlsOnly, InjectResponse]
EHLO = Reply(250, ("mx1.victim.test", "PIPELINING", "STARTTLS"))


@dataclass
class Flow:
    mx_name: str = "mx1.victim.test"
    client_tls: str = "none"
    fired: list[tuple[str, str]] = field(default_factory=list)
    cuts: list[str] = field(default_factory=list)

    def fire(self, attack: str, detail: str) -> None:
        self.fired.append((attack, detail))

    def cut(self, reason: str) -> None:
        self.cuts.append(reason)


@pytest.mark.parametrize("cls", NEW, ids=lambda c: c.name)
def test_registered_with_plain_typed_options(cls: type[SmtpAttack]) -> None:
    assert Attack.registry.get(cls.name) is cls
    assert cls.summary and cls.place == "smtp"
    assert cls.__module__ == "lab.attacks." + cls.name.replace("-", "_")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        assert tp in (str, int, bool, str | None) or typing.get_origin(tp) is typing.Literal
        assert f.default is not dataclasses.MISSING


def test_only_injection_is_harmless_under_enforce() -> None:
    assert [c.name for c in NEW if not c.enforce_breaking] == ["inject-response"]


def test_reject_starttls_refuses_only_starttls_in_plaintext() -> None:
    flow, attack = Flow(), RejectStarttls()
    ehlo = Command("EHLO", "sender.test")
    assert attack.on_command(flow, ehlo) is ehlo
    assert attack.on_reply(flow, ehlo, EHLO) is EHLO  # STARTTLS stays advertised
    assert flow.fired == []
    refusal = attack.on_command(flow, Command("STARTTLS"))
    assert refusal == Reply(454, ("4.7.0 TLS not available due to temporary reason",))
    assert flow.fired == [("reject-starttls", "answered STARTTLS with 454 4.7.0 TLS not "
                                              "available due to temporary reason (not "
                                              "forwarded)")]
    inside = Flow(client_tls="intercepted")
    assert attack.on_command(inside, Command("STARTTLS")) == Command("STARTTLS")
    assert inside.fired == []


def test_reject_starttls_unknown_code_has_a_generic_text() -> None:
    assert RejectStarttls(code=421).reply == Reply(421, ("TLS refused",))
    assert RejectStarttls(code=502, text="5.5.1 no").reply == Reply(502, ("5.5.1 no",))


def test_refuse_ehlo_answers_ehlo_and_lets_helo_through() -> None:
    flow, attack = Flow(), RefuseEhlo(code=502, text="5.5.2 what?")
    helo = Command("HELO", "sender.test")
    assert attack.on_command(flow, helo) is helo and flow.fired == []
    assert attack.on_command(flow, Command("EHLO", "sender.test")) == Reply(502,
                                                                            ("5.5.2 what?",))
    assert flow.fired == [("refuse-ehlo", "answered EHLO with 502 (not forwarded)")]


def test_abort_handshake_plans() -> None:
    flow = Flow()
    assert AbortHandshake().on_starttls(flow) == TlsPlan("abort", abort_after="client-hello")
    assert flow.fired == []  # the relay credits the cut when the ClientHello comes
    assert AbortHandshake(after="220").on_starttls(flow) == TlsPlan("abort", abort_after="220")
    assert flow.fired == [("abort-handshake",
                           "cut the connection right after the 220 to STARTTLS")]


def test_reset_after_handshake_uses_a_valid_certificate_and_cuts_inside_tls_only() -> None:
    flow, attack = Flow(), ResetAfterHandshake()
    assert attack.on_starttls(flow) == TlsPlan("intercept", cert=CertKind.VALID,
                                               cert_name="mx1.victim.test")
    mail = Command("MAIL", "FROM:<a@sender.test>")
    assert attack.on_command(flow, mail) is mail and flow.cuts == []  # plaintext: untouched
    inside = Flow(client_tls="intercepted")
    assert attack.on_command(inside, Command("EHLO", "x")) == Command("EHLO", "x")
    assert inside.cuts == [] and inside.fired == []
    attack.on_command(inside, mail)
    assert inside.cuts == ["reset at MAIL inside TLS"] and len(inside.fired) == 1


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_legacy_tls_only_plans_a_capped_interception(version: typing.Literal["1.0",
                                                                             "1.1"]) -> None:
    flow = Flow()
    plan = LegacyTlsOnly(version=version).on_starttls(flow)
    assert plan == TlsPlan("intercept", cert=CertKind.VALID, cert_name="mx1.victim.test",
                           tls_max=version)
    assert flow.fired[0][1].startswith(f"offered TLS {version} at most")


def test_inject_response_bytes() -> None:
    attack = InjectResponse(code=250, text="2.0.0 ok", repeat=3)
    assert attack.injected == b"250 2.0.0 ok\r\n" * 3
    plan = InjectResponse().on_starttls(Flow())
    assert plan is not None and plan.mode == "tunnel"
    assert plan.inject.startswith(b"421 4.7.0 ") and plan.inject.endswith(b"\r\n")


SCENARIO = """
summary: s
refs: ["RFC 3207 4"]
teach: t
world: {{policy: {{mode: enforce}}}}
phases:
  - attacks: [{attack}]
    expect: {{outcome: not-delivered}}
"""


@pytest.mark.parametrize(("attack", "complaint"), [
    ("{reject-starttls: {code: 220}}", "code must be a 4xx or 5xx"),
    ("{refuse-ehlo: {code: 250}}", "code must be a 4xx or 5xx"),
    ("{reject-starttls: {text: \"a\\r\\nb\"}}", "text must be one line"),
    ("{abort-handshake: {after: server-hello}}", "must be one of 220, client-hello"),
    ("{legacy-tls-only: {version: \"1.2\"}}", "must be one of 1.0, 1.1"),
    ("{reset-after-handshake: {at: RCPT}}", "must be one of MAIL, EHLO"),
    ("{inject-response: {repeat: 0}}", "repeat must be between 1 and 20"),
    ("{inject-response: {code: 99}}", "code must be an SMTP reply code"),
])
def test_bad_options_are_named_in_the_scenario_error(attack: str, complaint: str) -> None:
    with pytest.raises(ScenarioError, match=complaint) as info:
        load_text(SCENARIO.format(attack=attack), "x.yaml", "x")
    assert info.value.field.startswith("phases[0].attacks[0].")


def test_good_options_load_from_yaml() -> None:
    scenario = load_text(SCENARIO.format(attack="{legacy-tls-only: {version: \"1.1\"}}"),
                         "x.yaml", "x")
    (attack,) = scenario.phases[0].attacks
    assert attack == LegacyTlsOnly(version="1.1")
