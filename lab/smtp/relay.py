"""The sans-IO relay core of the MITM proxy: bytes and TLS news in, actions out.

One ``Relay`` per proxied connection. Every state change goes through ``_TRANSITIONS``
(h11 style). The attacks' hooks are called here; the shell (``lab.proxy``) does the I/O.

Flow: server greeting -> ``on_greeting`` -> client. Client command -> ``on_command`` (a
returned ``Reply`` is answered by the proxy, never forwarded) -> server. Server reply ->
``on_reply(command, reply)`` -> client; replies pair with forwarded commands through a FIFO
(pipelining). The reply to the end of message content is paired with ``END_OF_DATA_COMMAND``.

STARTTLS accepted by the MX (its 220): ``on_starttls`` of each attack, first plan wins
(default tunnel). Plaintext that either side sent after STARTTLS and before the switch is
trailing data: dropped, reported, never relayed into TLS (the CVE-2011-0411 class). A plan's
``inject`` bytes go out in the same write as the 220, so that the sender finds them already
buffered when it starts its handshake (the injection attack is the one place that breaks the
rule on purpose). An ``abort`` plan cuts the connection after the 220, or after the sender's
ClientHello (state ``ABORT_WAIT``; the cut is credited to the attack whose plan it was).

An attack may also ``cut`` the connection from any hook (a network fault: no reply, both
legs closed); the command or reply that triggered it is not relayed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from lab.attacks.base import SmtpAttack
from lab.smtp.actions import (
    Action,
    Close,
    Emit,
    Hold,
    SendToClient,
    SendToServer,
    Side,
    StartTlsToClient,
    StartTlsToServer,
    Tunnel,
)
from lab.smtp.codec import CommandParser, Item, MessageData, ReplyParser, SmtpSyntaxError
from lab.smtp.envelope import Transaction, envelope_address, message_id
from lab.smtp.transcript import Transcript
from lab.smtp.types import Command, Reply, TlsPlan

END_OF_DATA_COMMAND = Command(".")
"""What ``on_reply`` gets as the command for the reply to the end of message content."""

STARTTLS_REFUSED_INSIDE_TLS = Reply(503, ("5.5.1 TLS already active",))


class State(Enum):
    GREETING = "greeting"
    """Waiting for the MX's greeting."""
    RELAY = "relay"
    """Relaying commands and replies line by line (plaintext or intercepted TLS)."""
    UPGRADE_SERVER = "upgrade-server"
    """STARTTLS accepted, intercepting: waiting for TLS to the MX."""
    UPGRADE_CLIENT = "upgrade-client"
    """TLS to the MX is up: waiting for the sender's handshake with the forged certificate."""
    TUNNEL = "tunnel"
    """The shell copies raw bytes; the core sees none."""
    ABORT_WAIT = "abort-wait"
    """An abort plan waits for the sender's ClientHello to cut the connection mid-handshake."""
    CLOSED = "closed"


class Event(Enum):
    GREETED = "greeted"
    STARTTLS_TUNNEL = "starttls-tunnel"
    STARTTLS_INTERCEPT = "starttls-intercept"
    STARTTLS_ABORT_WAIT = "starttls-abort-wait"
    SERVER_TLS_UP = "server-tls-up"
    CLIENT_TLS_UP = "client-tls-up"
    CLOSE = "close"


_TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.GREETING, Event.GREETED): State.RELAY,
    (State.RELAY, Event.STARTTLS_TUNNEL): State.TUNNEL,
    (State.RELAY, Event.STARTTLS_INTERCEPT): State.UPGRADE_SERVER,
    (State.RELAY, Event.STARTTLS_ABORT_WAIT): State.ABORT_WAIT,
    (State.UPGRADE_SERVER, Event.SERVER_TLS_UP): State.UPGRADE_CLIENT,
    (State.UPGRADE_CLIENT, Event.CLIENT_TLS_UP): State.RELAY,
    **{(state, Event.CLOSE): State.CLOSED for state in State},
}

PARSING_STATES = frozenset({State.GREETING, State.RELAY})


class LocalProtocolError(Exception):
    """The core was driven out of order by its shell (a bug in the shell, not the peers)."""


@dataclass
class _Pending:
    """One answer the client is owed, in order."""

    command: Command
    kind: str  # "greeting", "command", "data"
    local: Reply | None = None
    """Set when the proxy answers itself (not forwarded)."""
    message: MessageData | None = None


class Relay:
    """One proxied SMTP connection, sans-IO. Also the ``FlowView`` the attacks see."""

    def __init__(self, attacks: Sequence[SmtpAttack], mx_name: str, conn_id: str,
                 clock: Callable[[], float] = lambda: 0.0) -> None:
        self.attacks = tuple(a for a in attacks if a.targets(mx_name))
        """The attacks aimed at this MX (an attack's ``mx`` option narrows it)."""
        self._mx_name = mx_name
        self.conn_id = conn_id
        self.state = State.GREETING
        self.transcript = Transcript(clock)
        self._client_tls = "none"
        self._server_tls = False
        self._commands = CommandParser()
        self._replies = ReplyParser()
        self._fifo: deque[_Pending] = deque([_Pending(Command(""), "greeting")])
        self._txn = Transaction()
        self._out: list[Action] = []
        self._plan = TlsPlan()
        self._plan_owner = ""
        self._cut: str | None = None
        self._starttls_reply = Reply(220, ("2.0.0 Ready to start TLS",))

    # -- FlowView ---------------------------------------------------------------------
    @property
    def mx_name(self) -> str:
        return self._mx_name

    @property
    def client_tls(self) -> str:
        return self._client_tls

    def fire(self, attack: str, detail: str) -> None:
        self._emit("attack-fired", attack=attack, detail=detail)

    def cut(self, reason: str) -> None:
        """Close both legs at once, answering nothing (what a hook calls to model a fault)."""
        self._cut = reason

    # -- inputs -------------------------------------------------------------------------
    def client_data(self, data: bytes) -> list[Action]:
        if self.state is State.ABORT_WAIT:
            self._abort_at_client_hello(data)
            return self._flush()
        if self.state not in PARSING_STATES:
            self._trailing("client", data)
            return self._flush()
        try:
            items = self._commands.feed(data)
        except SmtpSyntaxError as exc:
            self._client_items([i for i in exc.items if isinstance(i, Command | MessageData)])
            self._protocol_error("client", str(exc))
            return self._flush()
        self._client_items(items)
        return self._flush()

    def server_data(self, data: bytes) -> list[Action]:
        if self.state not in PARSING_STATES:
            self._trailing("server", data)
            return self._flush()
        try:
            replies = self._replies.feed(data)
        except SmtpSyntaxError as exc:
            self._server_replies([r for r in exc.items if isinstance(r, Reply)])
            self._protocol_error("server", str(exc))
            return self._flush()
        self._server_replies(replies)
        return self._flush()

    def tls_ready(self, side: Side) -> list[Action]:
        if side == "server":
            self._go(Event.SERVER_TLS_UP)
            self._server_tls = True
            self.transcript.add("server", "out", "tls", "[TLS to the MX established]")
            plan = self._plan
            self._to_client_then_inject(self._starttls_reply, plan)
            self._out.append(StartTlsToClient(plan))
        else:
            self._go(Event.CLIENT_TLS_UP)
            self._client_tls = "intercepted"
            self.transcript.add("client", "in", self._client_tls,
                                "[TLS with the sender established: intercepted]")
            # RFC 3207: everything learned before TLS is forgotten.
            self._commands = CommandParser()
            self._replies = ReplyParser()
            self._txn.reset()
        return self._flush()

    def tls_failed(self, side: Side, error: str) -> list[Action]:
        self.transcript.add(side, "in", self._leg_tls(side), f"[TLS handshake failed: {error}]")
        self._close(f"TLS with the {side} failed: {error}")
        return self._flush()

    def closed(self, side: Side, reason: str = "") -> list[Action]:
        """``side`` closed its connection (EOF, reset or timeout)."""
        if self.state is State.CLOSED:
            return []
        parser = self._replies if side == "server" else self._commands
        partial = parser.pending() if self.state in PARSING_STATES else b""
        note = f"[{side} closed{': ' + reason if reason else ''}]"
        if partial:
            self.transcript.add(side, "in", self._leg_tls(side), partial, note="incomplete")
            self._emit("incomplete", leg=side, bytes=len(partial))
        self.transcript.add(side, "in", self._leg_tls(side), note)
        self._close(f"{side} closed")
        return self._flush()

    def timed_out(self, seconds: float) -> list[Action]:
        """Neither side sent anything for ``seconds``."""
        if self.state is State.CLOSED:
            return []
        self._emit("timeout", seconds=seconds, state=self.state.value)
        self.transcript.add("client", "in", self._client_tls, f"[idle for {seconds:g} s]")
        self._close(f"idle for {seconds:g} s")
        return self._flush()

    # -- internals: client side ---------------------------------------------------------
    def _client_items(self, items: list[Item]) -> None:
        queue: deque[Item] = deque(items)
        while queue and self.state in PARSING_STATES:
            item = queue.popleft()
            if isinstance(item, MessageData):
                self._forward_message(item)
                continue
            queue.extend(self._client_command(item))

    def _client_command(self, command: Command) -> list[Item]:
        """Handle one command; returns items the parser yields if it resumes."""
        tls = self._client_tls
        self.transcript.add("client", "in", tls, command.encode())
        result: Command | Reply = command
        for attack in self.attacks:
            assert isinstance(result, Command)
            result = attack.on_command(self, result)
            if self._cut_requested() or isinstance(result, Reply):
                break
        if self._cut_requested():
            self._do_cut()
            return []
        if isinstance(result, Command) and command.verb == "STARTTLS" and tls != "none":
            result = STARTTLS_REFUSED_INSIDE_TLS
        if isinstance(result, Reply):
            self._fifo.append(_Pending(command, "command", local=result))
            self._send_ready_local()
            return self._commands.resume() if self._commands.held else []
        self._fifo.append(_Pending(result, "command"))
        self._to_server(result.encode())
        return []

    def _forward_message(self, message: MessageData) -> None:
        tls = self._client_tls
        note = f"[message content, {len(message.raw)} bytes]"
        self.transcript.add("client", "in", tls, note)
        self._fifo.append(_Pending(END_OF_DATA_COMMAND, "data", message=message))
        self.transcript.add("server", "out", self._leg_tls("server"), note)
        self._out.append(SendToServer(message.raw))

    # -- internals: server side ---------------------------------------------------------
    def _server_replies(self, replies: list[Reply]) -> None:
        for i, reply in enumerate(replies):
            if self.state not in PARSING_STATES:
                rest = b"".join(r.encode() for r in replies[i:]) + self._replies.discard_pending()
                self._trailing("server", rest)
                return
            self._server_reply(reply)

    def _server_reply(self, reply: Reply) -> None:
        self.transcript.add("server", "in", self._leg_tls("server"), reply.encode())
        if not self._fifo or self._fifo[0].local is not None:
            # Unsolicited (e.g. 421 before closing): relay as is.
            self._to_client(reply)
            return
        pending = self._fifo.popleft()
        if pending.kind == "greeting":
            for attack in self.attacks:
                reply = attack.on_greeting(self, reply)
            if self._cut_requested():
                self._do_cut()
                return
            self._go(Event.GREETED)
            self._to_client(reply)
        elif pending.kind == "data":
            self._data_reply(pending, reply)
        else:
            self._command_reply(pending.command, reply)
        self._send_ready_local()

    def _hooked_reply(self, command: Command, reply: Reply) -> Reply | None:
        """The reply as the attacks rewrote it; None when one of them cut the connection."""
        for attack in self.attacks:
            reply = attack.on_reply(self, command, reply)
            if self._cut_requested():
                self._do_cut()
                return None
        return reply

    def _command_reply(self, command: Command, reply: Reply) -> None:
        verb, ok = command.verb, 200 <= reply.code < 300
        if verb in ("EHLO", "HELO", "RSET") and ok:
            self._txn.reset()
        elif verb == "MAIL" and ok:
            self._txn.mail_from = envelope_address(command.arg)
        elif verb == "RCPT" and ok:
            self._txn.rcpt_to.append(envelope_address(command.arg))
        shown = self._hooked_reply(command, reply)
        if shown is None:
            return
        if verb == "STARTTLS" and reply.code == 220:
            self._starttls_accepted(shown)
            return
        self._to_client(shown)
        if verb == "DATA":
            more = self._commands.start_data() if reply.code == 354 else self._commands.resume()
            self._client_items(more)
        elif verb == "STARTTLS":
            self._client_items(self._commands.resume())

    def _data_reply(self, pending: _Pending, reply: Reply) -> None:
        shown = self._hooked_reply(END_OF_DATA_COMMAND, reply)
        if shown is None:
            return
        self._to_client(shown)
        if 200 <= reply.code < 300 and pending.message is not None:
            leg = "intercepted" if self._client_tls == "intercepted" else "plaintext"
            self._emit("message", message_id=message_id(pending.message.content()),
                       client_leg=leg, mail_from=self._txn.mail_from,
                       rcpt_to=list(self._txn.rcpt_to), mx=self._mx_name)
        self._txn.reset()

    def _starttls_accepted(self, shown: Reply) -> None:
        plan, owner = TlsPlan("tunnel"), ""
        for attack in self.attacks:
            chosen = attack.on_starttls(self)
            if chosen is not None:
                plan, owner = chosen, attack.name
                break
        self._plan, self._plan_owner, self._starttls_reply = plan, owner, shown
        dropped = self._commands.discard_pending()
        if dropped:
            self._trailing("client", dropped)
        wait_for_hello = plan.mode == "abort" and plan.abort_after == "client-hello"
        # Waiting for the ClientHello means reading the client on: no hold on that side.
        self._out += [Hold("server")] if wait_for_hello else [Hold("client"), Hold("server")]
        if plan.mode == "intercept":
            self._go(Event.STARTTLS_INTERCEPT)
            self.transcript.add("server", "out", "none", "[starting TLS to the MX]")
            self._out.append(StartTlsToServer())
            return
        self._to_client_then_inject(shown, plan)
        if wait_for_hello:
            self._go(Event.STARTTLS_ABORT_WAIT)
            self.transcript.add("client", "out", "none",
                                "[waiting for the sender's ClientHello to cut the handshake]")
            return
        if plan.mode == "abort":
            self.transcript.add("client", "out", "none", "[connection cut after the 220]")
            self._close("STARTTLS aborted by the attack")
            return
        self._go(Event.STARTTLS_TUNNEL)
        self._client_tls = "tunnel"
        self._server_tls = True
        self.transcript.add("client", "out", "tunnel", "[tunnel: TLS relayed untouched]")
        self._out.append(Tunnel())

    # -- helpers ------------------------------------------------------------------------
    def _go(self, event: Event) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(f"{event.value} is not allowed in state "
                                     f"{self.state.value}") from None

    def _leg_tls(self, side: Side) -> str:
        if side == "client":
            return self._client_tls
        return "tls" if self._server_tls else "none"

    def _to_client(self, reply: Reply, note: str = "") -> None:
        data = reply.encode()
        self.transcript.add("client", "out", self._client_tls, data, note=note)
        self._out.append(SendToClient(data))

    def _to_server(self, data: bytes) -> None:
        self.transcript.add("server", "out", self._leg_tls("server"), data)
        self._out.append(SendToServer(data))

    def _to_client_then_inject(self, reply: Reply, plan: TlsPlan) -> None:
        """The 220 to STARTTLS and any injected bytes, in one write (one TCP segment)."""
        data = reply.encode()
        self.transcript.add("client", "out", self._client_tls, data)
        if plan.inject:
            self.transcript.add("client", "out", self._client_tls, plan.inject, note="injected")
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

    def _cut_requested(self) -> bool:
        return self._cut is not None and self.state is not State.CLOSED

    def _do_cut(self) -> None:
        reason = self._cut or "cut"
        self.transcript.add("client", "out", self._client_tls,
                            f"[connection cut by the attack: {reason}]")
        self._emit("cut", reason=reason, tls=self._client_tls)
        self._close(f"cut by the attack: {reason}")

    def _send_ready_local(self) -> None:
        """Send the proxy's own answers once every earlier answer has gone out."""
        if self.state is State.CLOSED:
            return
        while self._fifo and self._fifo[0].local is not None:
            local = self._fifo.popleft().local
            assert local is not None
            self._to_client(local, note="proxy")

    def _trailing(self, side: Side, data: bytes) -> None:
        if not data or self.state is State.CLOSED:
            return
        self.transcript.add(side, "in", self._leg_tls(side), data, note="dropped")
        self._emit("trailing-data-dropped", leg=side, bytes=len(data),
                   text=data[:200].decode("utf-8", "replace"))

    def _protocol_error(self, side: Side, error: str) -> None:
        self._emit("protocol-error", leg=side, error=error)
        self._close(f"protocol error from the {side}: {error}")

    def _close(self, reason: str) -> None:
        if self.state is State.CLOSED:
            return
        self._go(Event.CLOSE)
        self._out.append(Close("both", reason))

    def _emit(self, kind: str, **data: Any) -> None:
        self._out.append(Emit(kind, {"conn": self.conn_id, "mx": self._mx_name, **data}))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out
