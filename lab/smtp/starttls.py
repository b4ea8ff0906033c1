"""The relay core at the STARTTLS switch: the plan, the holds, TLS to each leg, the abort.

A mixin of ``Relay`` (its own concern, kept apart to keep each file short). When the MX
accepts STARTTLS, each attack's ``on_starttls`` is asked, first plan wins (default tunnel).
A plan's ``inject`` bytes go out in the same write as the 220, so that the sender finds them
already buffered when it starts its handshake (the injection attack is the one place that
breaks the trailing-data rule on purpose). An ``abort`` plan cuts the connection after the
220, or after the sender's ClientHello (state ``ABORT_WAIT``; the cut is credited to the
attack whose plan it was).
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.smtp.actions import (
    Action,
    Hold,
    SendToClient,
    Side,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.codec import CommandParser
from lab.smtp.hooks import FlowView, SmtpHooks
from lab.smtp.state import ConnectionState, Trigger
from lab.smtp.transcript import Transcript
from lab.smtp.types import Reply, TlsPlan


class StartTls:
    # Provided by Relay.
    attacks: Sequence[SmtpHooks]
    conn: ConnectionState
    transcript: Transcript
    _commands: CommandParser
    _out: list[Action]

    def __init__(self) -> None:
        self._plan = TlsPlan()
        self._plan_owner = ""
        self._starttls_reply = Reply(220, ("2.0.0 Ready to start TLS",))

    def _flow(self) -> FlowView:
        raise NotImplementedError

    def _starttls_accepted(self, shown: Reply) -> None:
        plan, owner = TlsPlan("tunnel"), ""
        for attack in self.attacks:
            chosen = attack.on_starttls(self._flow())
            if chosen is not None:
                plan, owner = chosen, attack.name
                break
        self._plan, self._plan_owner, self._starttls_reply = plan, owner, shown
        self._trailing("client", self._commands.discard_pending())
        wait_for_hello = plan.mode == "abort" and plan.abort_after == "client-hello"
        # Waiting for the ClientHello means reading the client on: no hold on that side.
        self._out += [Hold("server")] if wait_for_hello else [Hold("client"), Hold("server")]
        if plan.mode == "intercept":
            self.conn.go(Trigger.STARTTLS_INTERCEPT)
            self.transcript.add("server", "out", "none", "[starting TLS to the MX]")
            self._out.append(StartTlsToServer())
            return
        self._to_client_then_inject(shown, plan)
        if wait_for_hello:
            self.conn.go(Trigger.STARTTLS_ABORT_WAIT)
            self.transcript.add("client", "out", "none",
                                "[waiting for the sender's ClientHello to cut the handshake]")
            return
        if plan.mode == "abort":
            self.transcript.add("client", "out", "none", "[connection cut after the 220]")
            self._close("STARTTLS aborted by the attack")
            return
        self.conn.go(Trigger.STARTTLS_TUNNEL)
        self.transcript.add("client", "out", "tunnel", "[tunnel: TLS relayed untouched]")
        self._out.append(Tunnel())

    def _server_tls_up(self) -> None:
        self.conn.go(Trigger.SERVER_TLS_UP)
        self.transcript.add("server", "out", "tls", "[TLS to the MX established]")
        self._to_client_then_inject(self._starttls_reply, self._plan)
        self._out.append(StartTlsToClient(self._plan))

    def _to_client_then_inject(self, reply: Reply, plan: TlsPlan) -> None:
        """The 220 to STARTTLS and any injected bytes, in one write (one TCP segment)."""
        data = reply.encode()
        self.transcript.add("client", "out", self.conn.client_tls, data)
        if plan.inject:
            self.transcript.add("client", "out", self.conn.client_tls, plan.inject,
                                note="injected")
        self._out.append(SendToClient(data + plan.inject))

    def _abort_at_client_hello(self, data: bytes) -> None:
        """ABORT_WAIT: bytes from the sender. A TLS handshake record is cut; plaintext the
        sender sent before it saw the 220 is trailing data (dropped) and the wait goes on."""
        if not data:
            return
        if data[0] != 0x16:  # TLS record type 22: handshake
            self._trailing("client", data)
            return
        hello = len(data) > 5 and data[5] == 0x01  # handshake type 1: ClientHello
        what = "ClientHello" if hello else "TLS handshake record"
        self.transcript.add("client", "in", "none", f"[{what}, {len(data)} bytes: cut here]")
        if self._plan_owner:
            self.fire(self._plan_owner, f"cut the connection after the sender's {what} "
                                        f"({len(data)} bytes), mid-handshake")
        self._close(f"TLS handshake cut by the attack after the {what}")

    # Provided by Relay.
    def _trailing(self, side: Side, data: bytes) -> None:
        raise NotImplementedError

    def _close(self, reason: str) -> None:
        raise NotImplementedError

    def fire(self, attack: str, detail: str) -> None:
        raise NotImplementedError
