"""Hostile peers against the relay core with the SMTP attacks on: both directions, pipelining,
over-long lines, garbage. Whatever arrives, the core never raises, and no plaintext either
peer sent before a TLS switch is ever relayed into TLS."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lab.attacks.abort_handshake import AbortHandshake
from lab.attacks.base import SmtpAttack
from lab.attacks.inject_response import InjectResponse
from lab.attacks.legacy_tls_only import LegacyTlsOnly
from lab.attacks.passthrough import Passthrough
from lab.attacks.refuse_ehlo import RefuseEhlo
from lab.attacks.reject_starttls import RejectStarttls
from lab.attacks.reset_after_handshake import ResetAfterHandshake
from lab.attacks.strip_starttls import StripStarttls
from lab.attacks.swap_certificate import SwapCertificate
from lab.smtp.actions import (
    Action,
    Close,
    SendToClient,
    SendToServer,
    Side,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.relay import Relay

MX = "mx1.victim.test"
MARK_C, MARK_S = b"CPLAIN", b"SPLAIN"
"""Carried by every plaintext chunk of the client (server) before its leg is in TLS."""

ATTACKS: list[SmtpAttack] = [
    Passthrough(), StripStarttls(), RejectStarttls(code=454), RejectStarttls(code=530),
    RefuseEhlo(), SwapCertificate(), AbortHandshake(), AbortHandshake(after="220"),
    ResetAfterHandshake(), ResetAfterHandshake(at="EHLO"), InjectResponse(repeat=3),
    LegacyTlsOnly(),
]
LONG = st.integers(4090, 4200).map(lambda n: b"A" * n)
COMMAND = st.sampled_from([b"EHLO s.test", b"HELO s.test", b"MAIL FROM:<a@s.test>",
                           b"RCPT TO:<u@victim.test>", b"DATA", b"STARTTLS", b"NOOP", b"RSET",
                           b"QUIT", b"VRFY x", b"", b"."])
REPLY = st.sampled_from([b"220 mx ESMTP", b"250 ok", b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS",
                         b"354 go", b"454 4.7.0 no", b"502 no", b"221 bye", b"421 closing",
                         b"220 2.0.0 Ready", b"550 5.1.1 no", b"HTTP/1.1 400 Bad", b"999 x",
                         b"250-a\r\n251 b"])
CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x00, 0x30, 0x01]) + bytes(47)


def _lines(pieces: st.SearchStrategy[bytes], mark: bytes) -> st.SearchStrategy[bytes]:
    """Pipelined lines, each tagged, sometimes with an over-long line or a bare fragment."""
    line = st.one_of(pieces.map(lambda p: p + b" " + mark + b"\r\n"),
                     LONG.map(lambda p: p + mark + b"\r\n"),
                     st.binary(max_size=40).map(lambda b: mark + b))
    return st.lists(line, min_size=1, max_size=5).map(b"".join)


client_chunks = st.one_of(_lines(COMMAND, MARK_C), st.just(CLIENT_HELLO),
                          st.just(b"Subject: x " + MARK_C + b"\r\n\r\nbody\r\n.\r\n"))
server_chunks = _lines(REPLY, MARK_S)


class HostileRelay(RuleBasedStateMachine):
    """A model shell: it feeds what the peers send and does what the core asks, no more."""

    def __init__(self) -> None:
        super().__init__()
        self.relay = Relay([], MX, "c1")
        self.tls_asked: list[Side] = []
        self.tls_up: set[Side] = set()
        self.tunnel = False
        self.closed = False
        self.leaks: list[Action] = []

    @initialize(attacks=st.lists(st.sampled_from(ATTACKS), max_size=3))
    def attacks(self, attacks: list[SmtpAttack]) -> None:
        self.relay = Relay(attacks, MX, "c1")

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            into_tls_server = isinstance(action, SendToServer) and "server" in self.tls_up
            into_tls_client = isinstance(action, SendToClient) and "client" in self.tls_up
            if (into_tls_server and MARK_C in action.data) or (
                    into_tls_client and MARK_S in action.data):
                self.leaks.append(action)
            if isinstance(action, SendToClient | SendToServer) and (self.tunnel or self.closed):
                self.leaks.append(action)
            if isinstance(action, StartTlsToServer):
                self.tls_asked.append("server")
            elif isinstance(action, StartTlsToClient):
                self.tls_asked.append("client")
            elif isinstance(action, Tunnel):
                self.tunnel = True
            elif isinstance(action, Close):
                self.closed = True

    @rule(data=client_chunks)
    def client_sends(self, data: bytes) -> None:
        if "client" in self.tls_up:
            data = data.replace(MARK_C, b"c-tls")
        self._run(self.relay.client_data(data))

    @rule(data=server_chunks)
    def server_sends(self, data: bytes) -> None:
        if "server" in self.tls_up:
            data = data.replace(MARK_S, b"s-tls")
        self._run(self.relay.server_data(data))

    @precondition(lambda self: bool(self.tls_asked) and not self.closed)
    @rule(ok=st.booleans())
    def handshake_done(self, ok: bool) -> None:
        side = self.tls_asked.pop(0)
        if ok:
            self.tls_up.add(side)
            self._run(self.relay.tls_ready(side))
        else:
            self._run(self.relay.tls_failed(side, "handshake failure"))

    @rule(side=st.sampled_from(["client", "server"]))
    def peer_closes(self, side: Side) -> None:
        self._run(self.relay.closed(side))

    @rule()
    def goes_idle(self) -> None:
        self._run(self.relay.timed_out(30.0))

    @invariant()
    def nothing_leaked(self) -> None:
        assert self.leaks == []


TestHostileRelay = HostileRelay.TestCase
TestHostileRelay.settings = settings(stateful_step_count=25)  # max_examples: the profile's
