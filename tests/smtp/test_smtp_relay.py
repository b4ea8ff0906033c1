"""Byte-transcript tests of the sans-IO relay core: bytes in from each side, actions out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lab.attacks.base import SmtpAttack
from lab.attacks.passthrough import Passthrough
from lab.attacks.strip_starttls import StripStarttls
from lab.attacks.swap_certificate import SwapCertificate
from lab.pki import CertKind
from lab.smtp.actions import (
    Action,
    Hold,
    Notice,
    SendToClient,
    SendToServer,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.relay import Relay, State
from lab.smtp.types import TlsPlan

MX = "mx1.victim.test"
GREETING = b"220 mx1.victim.test ESMTP lab sink\r\n"
EHLO_REPLY = b"250-mx1.victim.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 STARTTLS\r\n"
MESSAGE = (b"From: probe@sender.test\r\nMessage-ID:\r\n <abc123@sender.test>\r\n"
           b"Subject: t\r\n\r\n..leading dot\r\n.\r\n")
Step = tuple[str, bytes]


def relay_with(*attacks: SmtpAttack) -> Relay:
    ticks = iter(range(10_000))
    return Relay(attacks, MX, "c1", clock=lambda: float(next(ticks)))


def drive(relay: Relay, steps: Sequence[Step]) -> list[Action]:
    """'C': bytes from the client, 'S': from the server, 'tls-S'/'tls-C': handshake done."""
    out: list[Action] = []
    for who, data in steps:
        if who == "C":
            out += relay.client_data(data)
        elif who == "S":
            out += relay.server_data(data)
        elif who == "tls-S":
            out += relay.tls_ready("server")
        elif who == "tls-C":
            out += relay.tls_ready("client")
        elif who == "eof-S":
            out += relay.closed("server")
        else:
            raise AssertionError(who)
    return out


def to_client(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, SendToClient))


def to_server(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, SendToServer))


def events(actions: list[Action], kind: str) -> list[dict[str, Any]]:
    return [dict(a.data) for a in actions if isinstance(a, Notice) and a.kind == kind]


def io_only(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Notice)]


HELLO: list[Step] = [("S", GREETING), ("C", b"EHLO sender.test\r\n"), ("S", EHLO_REPLY)]
TRANSACTION: list[Step] = [
    ("C", b"MAIL FROM:<probe@sender.test> SIZE=100\r\n"), ("S", b"250 2.1.0 Ok\r\n"),
    ("C", b"RCPT TO:<user@victim.test>\r\n"), ("S", b"250 2.1.5 Ok\r\n"),
    ("C", b"DATA\r\n"), ("S", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    ("C", MESSAGE[:30]), ("C", MESSAGE[30:]), ("S", b"250 2.0.0 queued\r\n"),
    ("C", b"QUIT\r\n"), ("S", b"221 2.0.0 Bye\r\n"),
]


def test_passthrough_relays_every_byte_and_tunnels_starttls() -> None:
    relay = relay_with(Passthrough())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", b"220 2.0.0 Ready\r\n")])
    assert to_client(out) == GREETING + EHLO_REPLY + b"220 2.0.0 Ready\r\n"
    assert to_server(out) == b"EHLO sender.test\r\nSTARTTLS\r\n"
    assert io_only(out)[-4:] == [Hold("client"), Hold("server"),
                                 SendToClient(b"220 2.0.0 Ready\r\n"), Tunnel()]
    assert relay.state is State.TUNNEL and relay.client_tls == "tunnel"
    assert events(out, "attack-fired") == []
    # Bytes the shell drained from its buffers at the switch are trailing data: dropped.
    late = relay.client_data(b"RSET\r\n")
    assert io_only(late) == [] and events(late, "trailing-data-dropped")[0]["bytes"] == 6


def test_passthrough_plaintext_transaction_reports_the_message() -> None:
    relay = relay_with(Passthrough())
    out = drive(relay, [*HELLO, *TRANSACTION])
    expected_server = b"".join(d for who, d in [*HELLO, *TRANSACTION] if who == "C")
    assert to_server(out) == expected_server
    assert to_client(out) == b"".join(d for who, d in [*HELLO, *TRANSACTION] if who == "S")
    (message,) = events(out, "message")
    assert message == {"conn": "c1", "mx": MX, "message_id": "<abc123@sender.test>",
                       "client_leg": "plaintext", "mail_from": "probe@sender.test",
                       "rcpt_to": ["user@victim.test"]}
    texts = [(e["leg"], e["dir"], e["text"]) for e in relay.transcript.as_dicts()]
    assert texts[:3] == [("server", "in", "220 mx1.victim.test ESMTP lab sink"),
                         ("client", "out", "220 mx1.victim.test ESMTP lab sink"),
                         ("client", "in", "EHLO sender.test")]
    assert [e["t"] for e in relay.transcript.as_dicts()] == sorted(
        e["t"] for e in relay.transcript.as_dicts())


def test_strip_starttls_hides_the_extension_and_refuses_the_verb() -> None:
    relay = relay_with(StripStarttls())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), *TRANSACTION])
    client_bytes = to_client(out)
    assert client_bytes.startswith(GREETING + b"250-mx1.victim.test\r\n250-PIPELINING\r\n"
                                   b"250 SIZE 1000000\r\n502 5.5.1 Command not implemented\r\n")
    assert b"STARTTLS" not in to_server(out)
    fired = events(out, "attack-fired")
    assert [f["detail"] for f in fired] == ["removed STARTTLS from EHLO reply",
                                            "answered STARTTLS with 502 (not forwarded)"]
    assert fired[0]["attack"] == "strip-starttls" and fired[0]["mx"] == MX
    assert events(out, "message")[0]["client_leg"] == "plaintext"



def test_swap_certificate_intercepts_and_relays_the_decrypted_session() -> None:
    relay = relay_with(SwapCertificate(certificate=CertKind.EXPIRED))
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"), ("S", b"220 2.0.0 Ready\r\n")])
    assert io_only(out)[-3:] == [Hold("client"), Hold("server"), StartTlsToServer()]
    assert b"220 2.0.0" not in to_client(out)  # not before TLS to the MX is up
    (fired,) = events(out, "attack-fired")
    assert fired["detail"] == f"presented expired certificate for {MX}"
    out = relay.tls_ready("server")
    plan = TlsPlan("intercept", cert=CertKind.EXPIRED, cert_name=MX)
    assert io_only(out) == [SendToClient(b"220 2.0.0 Ready\r\n"), StartTlsToClient(plan)]
    out = drive(relay, [("tls-C", b""), ("C", b"EHLO sender.test\r\n"), ("S", EHLO_REPLY),
                        *TRANSACTION])
    assert relay.client_tls == "intercepted"
    assert to_server(out).startswith(b"EHLO sender.test\r\nMAIL FROM:")
    (message,) = events(out, "message")
    assert message["client_leg"] == "intercepted"
    assert message["message_id"] == "<abc123@sender.test>"
    tls_states = {e["tls"] for e in relay.transcript.as_dicts() if e["leg"] == "client"}
    assert tls_states == {"none", "intercepted"}


def test_trailing_plaintext_after_starttls_is_dropped_not_forwarded() -> None:
    relay = relay_with(SwapCertificate())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\n"),
                        ("S", b"220 2.0.0 Ready\r\n"), ("tls-S", b""), ("tls-C", b""),
                        ("C", b"EHLO sender.test\r\n")])
    assert b"evil" not in to_server(out)
    assert to_server(out).endswith(b"STARTTLS\r\nEHLO sender.test\r\n")
    (dropped,) = events(out, "trailing-data-dropped")
    assert dropped["leg"] == "client" and dropped["bytes"] == 32
    notes = [e for e in relay.transcript.as_dicts() if e.get("note") == "dropped"]
    assert notes[0]["text"] == "MAIL FROM:<evil@attacker.test>"



def test_starttls_refused_with_454_is_relayed_and_the_session_goes_on() -> None:
    relay = relay_with(Passthrough())
    out = drive(relay, [*HELLO, ("C", b"STARTTLS\r\n"),
                        ("S", b"454 4.7.0 TLS not available due to temporary reason\r\n"),
                        *TRANSACTION])
    assert b"454 4.7.0 TLS not available due to temporary reason\r\n" in to_client(out)
    assert relay.state is State.RELAY
    assert events(out, "message")[0]["client_leg"] == "plaintext"


def test_pipelined_commands_pair_with_their_replies() -> None:
    relay = relay_with(Passthrough())
    out = drive(relay, [*HELLO, ("C", b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@victim.test>"
                                      b"\r\nRCPT TO:<c@victim.test>\r\nDATA\r\n")])
    assert to_server(out).endswith(b"RCPT TO:<c@victim.test>\r\nDATA\r\n")
    out = drive(relay, [("S", b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n"),
                        ("C", b"Message-ID: <p@sender.test>\r\n\r\nhi\r\n.\r\n"),
                        ("S", b"250 queued\r\n")])
    assert to_client(out) == (b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n"
                              b"250 queued\r\n")
    assert to_server(out) == b"Message-ID: <p@sender.test>\r\n\r\nhi\r\n.\r\n"
    (message,) = events(out, "message")
    assert message["rcpt_to"] == ["b@victim.test"] and message["mail_from"] == "a@sender.test"


def test_rejected_message_is_not_reported() -> None:
    relay = relay_with(Passthrough())
    steps = [s if s != ("S", b"250 2.0.0 queued\r\n") else ("S", b"554 5.7.1 no\r\n")
             for s in TRANSACTION]
    assert events(drive(relay, [*HELLO, *steps]), "message") == []






CONVERSATION: list[Step] = [*HELLO, ("C", b"NOOP\r\nSTARTTLS\r\n"), ("S", b"250 ok\r\n"),
                            ("S", b"454 4.7.0 later\r\n"), *TRANSACTION]


@given(st.lists(st.integers(0, 200), max_size=40))
def test_relay_output_does_not_depend_on_chunking(cuts: list[int]) -> None:
    whole = drive(relay_with(StripStarttls()), CONVERSATION)
    chunked: list[Step] = []
    it = iter(cuts)
    for who, data in CONVERSATION:
        cut = next(it, 0) % (len(data) + 1)
        chunked += [(who, data[:cut]), (who, data[cut:])]
    pieces = drive(relay_with(StripStarttls()), [s for s in chunked if s[1]])
    assert to_client(pieces) == to_client(whole)
    assert to_server(pieces) == to_server(whole)
    assert [a for a in pieces if isinstance(a, Notice)] == [a for a in whole
                                                         if isinstance(a, Notice)]


def test_attacks_aimed_at_another_mx_stay_quiet() -> None:
    relay = Relay([StripStarttls(mx="mx2.victim.test"), StripStarttls(mx="MX1.victim.test.")],
                  MX, "c1")
    assert len(relay.attacks) == 1
    out = drive(Relay([StripStarttls(mx="mx2.victim.test")], MX, "c1"), HELLO)
    assert to_client(out) == GREETING + EHLO_REPLY and events(out, "attack-fired") == []
