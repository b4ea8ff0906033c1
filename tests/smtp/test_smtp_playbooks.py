"""The relay core as playbooks: each test states the exact interleaved inputs and actions."""

from __future__ import annotations

import pytest

from lab.attacks.abort_handshake import AbortHandshake
from lab.attacks.base import FlowView, SmtpAttack
from lab.attacks.inject_response import InjectResponse
from lab.attacks.passthrough import Passthrough
from lab.attacks.reject_starttls import RejectStarttls
from lab.attacks.reset_after_handshake import ResetAfterHandshake
from lab.attacks.strip_starttls import StripStarttls
from lab.attacks.swap_certificate import SwapCertificate
from lab.certkind import CertKind
from lab.smtp.actions import (
    Close,
    Hold,
    SendToClient,
    SendToServer,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.inputs import ClientData, PeerClosed, ServerData, TimedOut, TlsFailed, TlsReady
from lab.smtp.relay import LocalProtocolError, Relay, State
from lab.smtp.types import Reply, TlsPlan

from .playbook import MX, Playbook, note

GREETING = b"220 mx1.victim.test ESMTP lab sink\r\n"
EHLO = b"EHLO sender.test\r\n"
EHLO_REPLY = b"250-mx1.victim.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
READY = b"220 2.0.0 Ready to start TLS\r\n"
STARTTLS = b"STARTTLS\r\n"
CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x00, 0x30, 0x01]) + bytes(0x30 - 1)


def relay_with(*attacks: SmtpAttack) -> Relay:
    return Relay(attacks, MX, "c1")


def hello(book: Playbook) -> Playbook:
    """Greeting and EHLO, relayed untouched."""
    return (book
            >> ServerData(GREETING)
            << SendToClient(GREETING)
            >> ClientData(EHLO)
            << SendToServer(EHLO)
            >> ServerData(EHLO_REPLY)
            << SendToClient(EHLO_REPLY))


def test_passthrough_tunnels_starttls_and_drops_what_comes_after() -> None:
    relay = relay_with(Passthrough())
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS)
            << SendToServer(STARTTLS)
            >> ServerData(READY)
            << Hold("client") << Hold("server") << SendToClient(READY) << Tunnel()
            >> ClientData(b"RSET\r\n")
            << note("trailing-data-dropped", leg="client", bytes=6, text="RSET\r\n"))
    assert relay.state is State.TUNNEL and relay.trailing_data["client"] == b"RSET\r\n"


def test_strip_starttls_edits_the_ehlo_reply_and_answers_starttls_itself() -> None:
    relay = relay_with(StripStarttls())
    stripped = b"250-mx1.victim.test\r\n250 PIPELINING\r\n"
    assert (Playbook(relay)
            >> ServerData(GREETING) << SendToClient(GREETING)
            >> ClientData(EHLO) << SendToServer(EHLO)
            >> ServerData(EHLO_REPLY)
            << note("attack-fired", attack="strip-starttls",
                    detail="removed STARTTLS from EHLO reply")
            << SendToClient(stripped)
            >> ClientData(STARTTLS)
            << note("attack-fired", attack="strip-starttls",
                    detail="answered STARTTLS with 502 (not forwarded)")
            << SendToClient(b"502 5.5.1 Command not implemented\r\n"))


def test_a_local_answer_waits_for_the_pipelined_replies_before_it() -> None:
    relay = relay_with(RejectStarttls(code=454))
    assert (hello(Playbook(relay, notices=False))
            >> ClientData(b"NOOP\r\nSTARTTLS\r\nNOOP\r\n")
            << SendToServer(b"NOOP\r\n") << SendToServer(b"NOOP\r\n")
            >> ServerData(b"250 ok 1\r\n")
            << SendToClient(b"250 ok 1\r\n")
            << SendToClient(b"454 4.7.0 TLS not available due to temporary reason\r\n")
            >> ServerData(b"250 ok 2\r\n")
            << SendToClient(b"250 ok 2\r\n"))


def test_swap_certificate_intercepts_tls_to_both_legs_in_order() -> None:
    relay = relay_with(SwapCertificate(certificate=CertKind.EXPIRED))
    plan = TlsPlan("intercept", cert=CertKind.EXPIRED, cert_name=MX)
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS + b"MAIL FROM:<evil@attacker.test>\r\n")
            << SendToServer(STARTTLS)
            >> ServerData(READY)
            << note("attack-fired", attack="swap-certificate",
                    detail=f"presented expired certificate for {MX}")
            << note("trailing-data-dropped", leg="client", bytes=32,
                    text="MAIL FROM:<evil@attacker.test>\r\n")
            << Hold("client") << Hold("server") << StartTlsToServer()
            >> TlsReady("server")
            << SendToClient(READY) << StartTlsToClient(plan)
            >> TlsReady("client")
            >> ClientData(EHLO)
            << SendToServer(EHLO))
    assert relay.client_tls == "intercepted"


def test_server_bytes_after_its_220_are_trailing_data() -> None:
    relay = relay_with(Passthrough())
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY + b"250 injected\r\n")
            << Hold("client") << Hold("server") << SendToClient(READY) << Tunnel()
            << note("trailing-data-dropped", leg="server", bytes=14,
                    text="250 injected\r\n"))


def test_starttls_refused_by_the_mx_resumes_the_commands_held_behind_it() -> None:
    relay = relay_with(Passthrough())
    refused = b"454 4.7.0 TLS not available\r\n"
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS + b"MAIL FROM:<a@sender.test>\r\n")
            << SendToServer(STARTTLS)
            >> ServerData(refused)
            << SendToClient(refused)
            << SendToServer(b"MAIL FROM:<a@sender.test>\r\n"))
    assert relay.state is State.RELAY


def test_the_mx_closing_mid_reply_closes_both_legs() -> None:
    relay = relay_with(Passthrough())
    partial = b"250-mx1.victim.test\r\n250-PIPEL"
    assert (Playbook(relay)
            >> ServerData(GREETING) << SendToClient(GREETING)
            >> ClientData(EHLO) << SendToServer(EHLO)
            >> ServerData(partial)
            >> PeerClosed("server")
            << note("incomplete", leg="server", bytes=len(partial))
            << Close("both", "server closed")
            >> ClientData(b"QUIT\r\n")
            >> PeerClosed("client"))


def test_abort_after_220_relays_the_genuine_220_and_closes() -> None:
    relay = relay_with(AbortHandshake(after="220"))
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY)
            << note("attack-fired", attack="abort-handshake",
                    detail="cut the connection right after the 220 to STARTTLS")
            << Hold("client") << Hold("server") << SendToClient(READY)
            << Close("both", "STARTTLS aborted by the attack"))


def test_abort_at_client_hello_reads_on_and_cuts_at_the_hello() -> None:
    relay = relay_with(AbortHandshake())
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY)
            << Hold("server") << SendToClient(READY)
            >> ClientData(b"NOOP\r\n")
            << note("trailing-data-dropped", leg="client", bytes=6, text="NOOP\r\n")
            >> ClientData(CLIENT_HELLO)
            << note("attack-fired", attack="abort-handshake",
                    detail=f"cut the connection after the sender's ClientHello "
                           f"({len(CLIENT_HELLO)} bytes), mid-handshake")
            << Close("both", "TLS handshake cut by the attack after the ClientHello")
            >> ClientData(CLIENT_HELLO))
    texts = [e["text"] for e in relay.transcript.as_dicts()]
    assert texts[-1] == f"[ClientHello, {len(CLIENT_HELLO)} bytes: cut here]"


def test_reset_after_handshake_cuts_at_mail_and_relays_nothing_of_it() -> None:
    relay = relay_with(ResetAfterHandshake())
    plan = TlsPlan("intercept", cert=CertKind.VALID, cert_name=MX)
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY)
            << Hold("client") << Hold("server") << StartTlsToServer()
            >> TlsReady("server") << SendToClient(READY) << StartTlsToClient(plan)
            >> TlsReady("client")
            >> ClientData(EHLO) << SendToServer(EHLO)
            >> ServerData(EHLO_REPLY) << SendToClient(EHLO_REPLY)
            >> ClientData(b"MAIL FROM:<p@sender.test>\r\nRCPT TO:<u@victim.test>\r\n")
            << note("attack-fired", attack="reset-after-handshake",
                    detail="TLS was up; cut both legs at the sender's MAIL (not relayed, "
                           "no reply)")
            << note("cut", reason="reset at MAIL inside TLS", tls="intercepted")
            << Close("both", "cut by the attack: reset at MAIL inside TLS"))


def test_a_cut_in_the_greeting_hook_relays_no_greeting() -> None:
    class CutGreeting(SmtpAttack):
        def on_greeting(self, flow: FlowView, reply: Reply) -> Reply:
            flow.cut("no greeting")
            return reply

    assert (Playbook(relay_with(CutGreeting()))
            >> ServerData(GREETING)
            << note("cut", reason="no greeting", tls="none")
            << Close("both", "cut by the attack: no greeting"))


def test_inject_response_rides_in_the_same_write_as_the_220() -> None:
    injected = (b"421 4.7.0 Service closing transmission channel (injected by the "
                b"attacker)\r\n")
    assert (hello(Playbook(relay_with(InjectResponse()), notices=False))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY)
            << Hold("client") << Hold("server") << SendToClient(READY + injected)
            << Tunnel())


def test_a_failed_handshake_and_an_idle_connection_close() -> None:
    relay = relay_with(SwapCertificate())
    assert (hello(Playbook(relay, notices=False))
            >> ClientData(STARTTLS) << SendToServer(STARTTLS)
            >> ServerData(READY) << Hold("client") << Hold("server") << StartTlsToServer()
            >> TlsFailed("server", "certificate verify failed")
            << Close("both", "TLS with the server failed: certificate verify failed")
            >> TimedOut(30.0))
    idle = relay_with(Passthrough())
    assert (Playbook(idle)
            >> TimedOut(30.0)
            << note("timeout", seconds=30.0, state="greeting")
            << Close("both", "idle for 30 s"))


# ---------------------------------------------------------------- protocol errors
LONG = b"A" * 5000


def test_issue_10_pipelined_starttls_and_a_long_line_then_a_refusal() -> None:
    # The reproduction: the refusal resumes the reader, which meets the over-long line.
    error = "command line longer than 4096 bytes"
    relay = Relay([], MX, "c1")
    assert (hello(Playbook(relay))
            >> ClientData(STARTTLS + LONG) << SendToServer(STARTTLS)
            >> ServerData(b"454 4.7.0 no\r\n")
            << SendToClient(b"454 4.7.0 no\r\n")
            << note("protocol-error", leg="client", error=error)
            << SendToClient(f"421 4.5.0 proxy closing: {error}\r\n".encode())
            << Close("both", f"protocol error from the client: {error}")
            >> ServerData(b"250 late\r\n"))
    assert relay.transcript.as_dicts()[-2]["text"] == f"[protocol error: {error}]"


def test_issue_10_with_the_attack_answering_locally() -> None:
    error = "command line longer than 4096 bytes"
    assert (hello(Playbook(relay_with(RejectStarttls(code=454)), notices=False))
            >> ClientData(STARTTLS + LONG)
            << SendToClient(b"454 4.7.0 TLS not available due to temporary reason\r\n")
            << SendToClient(f"421 4.5.0 proxy closing: {error}\r\n".encode())
            << Close("both", f"protocol error from the client: {error}"))


def test_issue_10_data_then_a_long_line_and_a_354() -> None:
    # After 354 the long line is message content, not a command: it is relayed whole.
    relay = relay_with(Passthrough())
    body = LONG + b"\r\n.\r\n"
    assert (hello(Playbook(relay, notices=False))
            >> ClientData(b"DATA\r\n" + body) << SendToServer(b"DATA\r\n")
            >> ServerData(b"354 go\r\n") << SendToClient(b"354 go\r\n")
            << SendToServer(body)
            >> ServerData(b"250 queued\r\n") << SendToClient(b"250 queued\r\n"))


def test_garbage_from_the_server_is_a_421_and_a_close() -> None:
    error = "not a reply line: 'HTTP/1.1 400 Bad\\r\\n'"
    assert (Playbook(relay_with(Passthrough()))
            >> ServerData(GREETING + b"HTTP/1.1 400 Bad\r\n")
            << SendToClient(GREETING)
            << note("protocol-error", leg="server", error=error)
            << SendToClient(f"421 4.5.0 proxy closing: {error}\r\n".encode())
            << Close("both", f"protocol error from the server: {error}"))


def test_a_playbook_reports_the_first_difference() -> None:
    book = (Playbook(relay_with(Passthrough()))
            >> ServerData(GREETING) << SendToClient(b"something else\r\n"))
    try:
        bool(book)
    except AssertionError as exc:
        assert "expected << SendToClient(data=b'something else" in str(exc)
        assert "actual   << SendToClient(data=b'220 mx1" in str(exc)
    else:
        raise AssertionError("a wrong playbook passed")




def test_the_shell_driving_the_core_out_of_order_is_a_local_error() -> None:
    # Only the shell can do this (the peers cannot): it is a bug, and it raises.
    relay = relay_with(Passthrough())
    with pytest.raises(LocalProtocolError, match="server-tls-up is not allowed in state "
                                                 "greeting"):
        relay.handle(TlsReady("server"))
