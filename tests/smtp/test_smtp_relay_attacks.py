"""Byte transcripts of the relay core with the STARTTLS-class attacks, and the core features
they need: local refusals, abort at the 220 or at the ClientHello, cuts, TLS version caps and
response injection in the same write as the 220."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.attacks.abort_handshake import AbortHandshake
from lab.attacks.base import FlowView, SmtpAttack
from lab.attacks.inject_response import InjectResponse
from lab.attacks.legacy_tls_only import LegacyTlsOnly
from lab.attacks.passthrough import Passthrough
from lab.attacks.refuse_ehlo import RefuseEhlo
from lab.attacks.reject_starttls import RejectStarttls
from lab.attacks.reset_after_handshake import ResetAfterHandshake
from lab.pki import CertKind
from lab.smtp.actions import (
    Close,
    Hold,
    Notice,
    SendToClient,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.relay import Relay, State
from lab.smtp.types import TlsPlan

from .test_smtp_relay import (
    EHLO_REPLY,
    GREETING,
    HELLO,
    MX,
    TRANSACTION,
    Step,
    drive,
    events,
    io_only,
    relay_with,
    to_client,
    to_server,
)

READY = b"220 2.0.0 Ready to start TLS\r\n"
CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x00, 0x30, 0x01]) + bytes(0x30 - 1)
"""The start of a TLS record carrying a ClientHello (type 22, handshake type 1)."""


def fired(actions: list[Any]) -> list[tuple[str, str]]:
    return [(e["attack"], e["detail"]) for e in events(actions, "attack-fired")]


# ---------------------------------------------------------------- reject-starttls

@pytest.mark.parametrize(("code", "line"), [
    (454, b"454 4.7.0 TLS not available due to temporary reason\r\n"),
    (502, b"502 5.5.1 Command not implemented\r\n"),
    (530, b"530 5.7.0 Must issue a STARTTLS command first\r\n"),
])
def test_reject_starttls_answers_for_the_mx_and_the_session_goes_on(code: int,
                                                                     line: bytes) -> None:
    relay = relay_with(RejectStarttls(code=code))
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), *TRANSACTION])
    # STARTTLS stays advertised; the refusal comes from the proxy, the MX never sees STARTTLS
    assert to_client(out).startswith(GREETING + EHLO_REPLY + line + b"250 2.1.0 Ok\r\n")
    assert b"STARTTLS" not in to_server(out)
    assert to_server(out).startswith(b"EHLO sender.test\r\nMAIL FROM:")
    assert fired(out) == [("reject-starttls", f"answered STARTTLS with {line[:-2].decode()} "
                                              "(not forwarded)")]
    assert events(out, "message")[0]["client_leg"] == "plaintext"
    assert relay.state is State.RELAY and relay.client_tls == "none"
    proxy_lines = [e["text"] for e in relay.transcript.as_dicts() if e.get("note") == "proxy"]
    assert proxy_lines == [line[:-2].decode()]


def test_reject_starttls_custom_text_and_pipelined_commands_after_it() -> None:
    relay = relay_with(RejectStarttls(code=454, text="4.3.0 busy"))
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\nMAIL FROM:<a@sender.test>\r\n")])
    assert to_client(out).endswith(b"454 4.3.0 busy\r\n")
    assert to_server(out).endswith(b"EHLO sender.test\r\nMAIL FROM:<a@sender.test>\r\n")


# ---------------------------------------------------------------- refuse-ehlo

def test_refuse_ehlo_forces_helo_which_carries_no_starttls() -> None:
    relay = relay_with(RefuseEhlo())
    out = drive(relay, [("S", GREETING), ("C", b"EHLO sender.test\r\n"),
                        ("C", b"HELO sender.test\r\n"), ("S", b"250 mx1.victim.test\r\n"),
                        *TRANSACTION])
    assert to_client(out).startswith(GREETING + b"500 5.5.1 Command unrecognized\r\n"
                                     b"250 mx1.victim.test\r\n250 2.1.0 Ok\r\n")
    assert to_server(out).startswith(b"HELO sender.test\r\nMAIL FROM:")
    assert b"EHLO" not in to_server(out) and b"STARTTLS" not in to_client(out)
    assert fired(out) == [("refuse-ehlo", "answered EHLO with 500 (not forwarded)")]
    assert events(out, "message")[0]["client_leg"] == "plaintext"


# ---------------------------------------------------------------- abort-handshake



def test_abort_wait_without_a_hello_never_fires() -> None:
    # a sender that hangs up after the 220 was not cut by the attack: no evidence of firing
    relay = relay_with(AbortHandshake())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    out += relay.closed("client")
    assert fired(out) == [] and isinstance(io_only(out)[-1], Close)


# ---------------------------------------------------------------- reset-after-handshake

def _intercepted(relay: Relay) -> list[Any]:
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    assert io_only(out)[-1] == StartTlsToServer()
    out += relay.tls_ready("server")
    plan = TlsPlan("intercept", cert=CertKind.VALID, cert_name=MX)
    assert io_only(out)[-2:] == [SendToClient(READY), StartTlsToClient(plan)]
    return out + relay.tls_ready("client")


def test_reset_after_handshake_cuts_at_mail_inside_tls() -> None:
    relay = relay_with(ResetAfterHandshake())
    out = _intercepted(relay)
    assert fired(out) == []  # a valid certificate is no attack yet
    out = drive(relay, [("C", b"EHLO sender.test\r\n"), ("S", EHLO_REPLY),
                        ("C", b"MAIL FROM:<probe@sender.test>\r\nRCPT TO:<u@victim.test>\r\n")])
    assert to_server(out) == b"EHLO sender.test\r\n"  # MAIL and what follows: never relayed
    assert to_client(out) == EHLO_REPLY  # and no reply to MAIL
    assert io_only(out)[-1] == Close("both", "cut by the attack: reset at MAIL inside TLS")
    assert fired(out) == [("reset-after-handshake", "TLS was up; cut both legs at the "
                                                    "sender's MAIL (not relayed, no reply)")]
    assert events(out, "cut") == [{"conn": "c1", "mx": MX, "reason": "reset at MAIL inside TLS",
                                   "tls": "intercepted"}]
    assert relay.state is State.CLOSED


def test_reset_after_handshake_at_ehlo_and_never_in_plaintext() -> None:
    plain = relay_with(ResetAfterHandshake(at="EHLO"))
    out = drive(plain, [*HELLO, *TRANSACTION])  # no STARTTLS: nothing to reset
    assert fired(out) == [] and events(out, "message")[0]["client_leg"] == "plaintext"
    relay = relay_with(ResetAfterHandshake(at="EHLO"))
    _intercepted(relay)
    out = relay.client_data(b"EHLO sender.test\r\n")
    assert to_server(out) == b"" and to_client(out) == b""
    assert isinstance(io_only(out)[-1], Close) and len(fired(out)) == 1



# ---------------------------------------------------------------- legacy-tls-only

@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_legacy_tls_only_caps_the_client_leg(version: Literal["1.0", "1.1"]) -> None:
    relay = relay_with(LegacyTlsOnly(version=version))
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    assert fired(out) == [("legacy-tls-only", f"offered TLS {version} at most, with a valid "
                                              f"certificate for {MX}")]
    out = relay.tls_ready("server")
    plan = TlsPlan("intercept", cert=CertKind.VALID, cert_name=MX, tls_max=version)
    assert io_only(out) == [SendToClient(READY), StartTlsToClient(plan)]


# ---------------------------------------------------------------- inject-response

INJECTED = b"421 4.7.0 Service closing transmission channel (injected by the attacker)\r\n"


def test_inject_response_goes_out_in_the_same_write_as_the_220() -> None:
    relay = relay_with(InjectResponse())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    assert io_only(out)[-4:] == [Hold("client"), Hold("server"), SendToClient(READY + INJECTED),
                                 Tunnel()]
    (detail,) = [d for _, d in fired(out)]
    assert detail == (f"appended {len(INJECTED)} bytes of plaintext after the 220 to STARTTLS "
                      "(1 x '421 ...')")
    notes = [(e["text"], e.get("note", "")) for e in relay.transcript.as_dicts()
             if e["leg"] == "client" and e["dir"] == "out"][-3:]
    assert notes[0] == (READY[:-2].decode(), "")
    assert notes[1] == (INJECTED[:-2].decode(), "injected")


def test_injection_with_interception_is_one_write_after_tls_to_the_mx() -> None:
    class InterceptAndInject(SmtpAttack):
        def on_starttls(self, flow: FlowView) -> TlsPlan:
            return TlsPlan("intercept", inject=b"250 x\r\n250 y\r\n")

    relay = relay_with(InterceptAndInject())
    drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    out = relay.tls_ready("server")
    assert io_only(out)[0] == SendToClient(READY + b"250 x\r\n250 y\r\n")


def test_no_injection_sends_the_220_alone() -> None:
    out = drive(relay_with(Passthrough()), [*HELLO, ("C", b"STARTTLS\r\n"), ("S", READY)])
    assert SendToClient(READY) in io_only(out)


REFUSALS: list[Step] = [("S", GREETING), ("C", b"EHLO sender.test\r\nHELO sender.test\r\n"),
                        ("S", b"250 mx1.victim.test\r\n"), ("C", b"STARTTLS\r\n"),
                        *TRANSACTION]


@given(st.lists(st.integers(0, 200), max_size=40))
def test_refusals_do_not_depend_on_chunking(cuts: list[int]) -> None:
    def fresh() -> Relay:
        return relay_with(RefuseEhlo(), RejectStarttls(code=530))

    whole = drive(fresh(), REFUSALS)
    it = iter(cuts)
    chunked: list[Step] = []
    for who, data in REFUSALS:
        cut = next(it, 0) % (len(data) + 1)
        chunked += [(who, data[:cut]), (who, data[cut:])]
    pieces = drive(fresh(), [s for s in chunked if s[1]])
    assert to_client(pieces) == to_client(whole)
    assert to_server(pieces) == to_server(whole)
    assert [a for a in pieces if isinstance(a, Notice)] == [a for a in whole
                                                         if isinstance(a, Notice)]
    assert b"500 5.5.1" in to_client(whole) and b"530 5.7.0" in to_client(whole)
