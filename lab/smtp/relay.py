"""The sans-IO relay core of the MITM proxy: typed inputs in, actions out.

One ``Relay`` per proxied connection. Its state lives in one place, ``lab.smtp.state``
(h11 style); the attacks' hooks (``lab.smtp.hooks``) are called here; the shell
(``lab.proxy``) does the I/O and hands over every byte it reads.

Flow: server greeting -> ``on_greeting`` -> client. Client command -> ``on_command`` (a
returned ``Reply`` is answered by the proxy, never forwarded) -> server. Server reply ->
``on_reply(command, reply)`` -> client; replies pair with forwarded commands in order
(pipelining). The reply to the end of message content is paired with ``END_OF_DATA_COMMAND``.

STARTTLS accepted by the MX (its 220): ``on_starttls`` of each attack, first plan wins
(default tunnel); see ``lab.smtp.starttls``. Plaintext that either side sent after STARTTLS
and before the switch is trailing data: dropped, reported, kept in ``trailing_data``, never
relayed into TLS (the CVE-2011-0411 class).

An attack may also ``cut`` the connection from any hook (a network fault: no reply, both
legs closed); the command or reply that triggered it is not relayed.

Nothing the peers send makes the core raise: a protocol error becomes a 421 to the sender,
a transcript line, a ``protocol-error`` notice and a close with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lab.smtp.actions import Action, Close, Notice, SendToClient, SendToServer, Side
from lab.smtp.codec import CommandParser, MessageData, ReplyParser, SmtpSyntaxError
from lab.smtp.envelope import Transaction, envelope_address, message_id
from lab.smtp.hooks import FlowView, SmtpHooks
from lab.smtp.inputs import ClientData, Input, PeerClosed, ServerData, TlsFailed, TlsReady
from lab.smtp.starttls import StartTls
from lab.smtp.state import (
    HOLD_VERBS,
    ConnectionState,
    LocalProtocolError,
    Owed,
    Pending,
    Reading,
    State,
    Trigger,
)
from lab.smtp.transcript import Transcript
from lab.smtp.types import Command, Reply

__all__ = ["END_OF_DATA_COMMAND", "LocalProtocolError", "Relay", "State", "Trigger"]

END_OF_DATA_COMMAND = Command(".")
"""What ``on_reply`` gets as the command for the reply to the end of message content."""

STARTTLS_REFUSED_INSIDE_TLS = Reply(503, ("5.5.1 TLS already active",))


def protocol_error_reply(error: str) -> Reply:
    return Reply(421, (f"4.5.0 proxy closing: {error}",))


class Relay(StartTls):
    """One proxied SMTP connection, sans-IO. Also the ``FlowView`` the attacks see."""

    def __init__(self, attacks: Sequence[SmtpHooks], mx_name: str, conn_id: str,
                 clock: Callable[[], float] = lambda: 0.0) -> None:
        self.attacks = tuple(a for a in attacks if a.targets(mx_name))
        """The attacks aimed at this MX (an attack's ``mx`` option narrows it)."""
        self._mx_name = mx_name
        self.conn_id = conn_id
        self.conn = ConnectionState()
        self.transcript = Transcript(clock)
        self._commands = CommandParser()
        self._replies = ReplyParser()
        self._txn = Transaction()
        self._out: list[Action] = []
        self._trailing_data: dict[Side, bytearray] = {"client": bytearray(),
                                                      "server": bytearray()}
        super().__init__()

    # -- FlowView ---------------------------------------------------------------------
    @property
    def mx_name(self) -> str:
        return self._mx_name

    @property
    def client_tls(self) -> str:
        return self.conn.client_tls

    def fire(self, attack: str, detail: str) -> None:
        self._notice("attack-fired", attack=attack, detail=detail)

    def _flow(self) -> FlowView:
        return self

    def cut(self, reason: str) -> None:
        """Close both legs at once, answering nothing (what a hook calls to model a fault)."""
        self.conn.cut_reason = reason

    # -- what the shell may read ----------------------------------------------------------
    @property
    def state(self) -> State:
        return self.conn.state

    @property
    def trailing_data(self) -> dict[Side, bytes]:
        """Bytes each side sent past a protocol switch (after STARTTLS, before TLS, or
        after the core stopped parsing): dropped, never relayed; the h11 idea."""
        return {side: bytes(data) for side, data in self._trailing_data.items()}

    # -- inputs -------------------------------------------------------------------------
    def handle(self, event: Input) -> list[Action]:
        """Any input as a value; the same as calling the matching method."""
        if isinstance(event, ClientData):
            return self.client_data(event.data)
        if isinstance(event, ServerData):
            return self.server_data(event.data)
        if isinstance(event, TlsReady):
            return self.tls_ready(event.side)
        if isinstance(event, TlsFailed):
            return self.tls_failed(event.side, event.error)
        if isinstance(event, PeerClosed):
            return self.closed(event.side, event.reason)
        return self.timed_out(event.seconds)

    def client_data(self, data: bytes) -> list[Action]:
        if self.conn.state is State.ABORT_WAIT:
            self._abort_at_client_hello(data)
        elif not self.conn.parsing:
            self._trailing("client", data)
        else:
            self._commands.feed(data)
            self._pump_client()
        return self._flush()

    def server_data(self, data: bytes) -> list[Action]:
        if not self.conn.parsing:
            self._trailing("server", data)
        else:
            self._replies.feed(data)
            self._pump_server()
        return self._flush()

    def tls_ready(self, side: Side) -> list[Action]:
        if side == "server":
            self._server_tls_up()
        else:
            self.conn.go(Trigger.CLIENT_TLS_UP)
            self.transcript.add("client", "in", self.conn.client_tls,
                                "[TLS with the sender established: intercepted]")
            self._commands = CommandParser()
            self._replies = ReplyParser()
            self._txn.reset()
        return self._flush()

    def tls_failed(self, side: Side, error: str) -> list[Action]:
        self.transcript.add(side, "in", self.conn.leg_tls(side),
                            f"[TLS handshake failed: {error}]")
        self._close(f"TLS with the {side} failed: {error}")
        return self._flush()

    def closed(self, side: Side, reason: str = "") -> list[Action]:
        """``side`` closed its connection (EOF, reset or timeout)."""
        if self.conn.closed:
            return []
        parser = self._replies if side == "server" else self._commands
        partial = parser.pending() if self.conn.parsing else b""
        note = f"[{side} closed{': ' + reason if reason else ''}]"
        if partial:
            self.transcript.add(side, "in", self.conn.leg_tls(side), partial, note="incomplete")
            self._notice("incomplete", leg=side, bytes=len(partial))
        self.transcript.add(side, "in", self.conn.leg_tls(side), note)
        self._close(f"{side} closed")
        return self._flush()

    def timed_out(self, seconds: float) -> list[Action]:
        """Neither side sent anything for ``seconds``."""
        if self.conn.closed:
            return []
        self._notice("timeout", seconds=seconds, state=self.conn.state.value)
        self.transcript.add("client", "in", self.conn.client_tls, f"[idle for {seconds:g} s]")
        self._close(f"idle for {seconds:g} s")
        return self._flush()

    # -- internals: client side ---------------------------------------------------------
    def _pump_client(self) -> None:
        """Parse and handle what the client sent, as far as the reader may go now."""
        while self.conn.parsing and self.conn.reading is not Reading.HELD:
            try:
                item: Command | MessageData | None = (
                    self._commands.next_message() if self.conn.reading is Reading.MESSAGE
                    else self._commands.next_command())
            except SmtpSyntaxError as exc:
                self._protocol_error("client", str(exc))
                return
            if item is None:
                return
            if isinstance(item, MessageData):
                self.conn.read(Trigger.MESSAGE_END)
                self._forward_message(item)
            else:
                if item.verb in HOLD_VERBS:
                    self.conn.read(Trigger.HOLD_VERB)
                self._client_command(item)

    def _client_command(self, command: Command) -> None:
        tls = self.conn.client_tls
        self.transcript.add("client", "in", tls, command.encode())
        result: Command | Reply = command
        for attack in self.attacks:
            assert isinstance(result, Command)
            result = attack.on_command(self, result)
            if self.conn.cut_requested or isinstance(result, Reply):
                break
        if self.conn.cut_requested:
            self._do_cut()
            return
        if isinstance(result, Command) and command.verb == "STARTTLS" and tls != "none":
            result = STARTTLS_REFUSED_INSIDE_TLS
        if isinstance(result, Reply):
            self.conn.owe(Pending(command, Owed.COMMAND, local=result))
            self._send_ready_local()
            if self.conn.reading is Reading.HELD:
                self.conn.read(Trigger.RESUME)
            return
        self.conn.owe(Pending(result, Owed.COMMAND))
        self._to_server(result.encode())

    def _forward_message(self, message: MessageData) -> None:
        note = f"[message content, {len(message.raw)} bytes]"
        self.transcript.add("client", "in", self.conn.client_tls, note)
        self.conn.owe(Pending(END_OF_DATA_COMMAND, Owed.MESSAGE, message=message))
        self.transcript.add("server", "out", self.conn.leg_tls("server"), note)
        self._out.append(SendToServer(message.raw))

    # -- internals: server side ---------------------------------------------------------
    def _pump_server(self) -> None:
        while self.conn.parsing:
            try:
                reply = self._replies.next_reply()
            except SmtpSyntaxError as exc:
                self._protocol_error("server", str(exc))
                return
            if reply is None:
                return
            self._server_reply(reply)
        # The state left parsing (a STARTTLS switch): the rest is trailing data.
        self._trailing("server", self._replies.discard_pending())

    def _server_reply(self, reply: Reply) -> None:
        self.transcript.add("server", "in", self.conn.leg_tls("server"), reply.encode())
        if self.conn.unsolicited:
            # Unsolicited (e.g. 421 before closing): relay as is.
            self._to_client(reply)
            return
        pending = self.conn.settle()
        if pending.kind is Owed.GREETING:
            for attack in self.attacks:
                reply = attack.on_greeting(self, reply)
            if self.conn.cut_requested:
                self._do_cut()
                return
            self.conn.go(Trigger.GREETED)
            self._to_client(reply)
        elif pending.kind is Owed.MESSAGE:
            self._data_reply(pending, reply)
        else:
            self._command_reply(pending.command, reply)
        self._send_ready_local()

    def _hooked_reply(self, command: Command, reply: Reply) -> Reply | None:
        """The reply as the attacks rewrote it; None when one of them cut the connection."""
        for attack in self.attacks:
            reply = attack.on_reply(self, command, reply)
            if self.conn.cut_requested:
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
        if verb in HOLD_VERBS and self.conn.reading is Reading.HELD:
            go_ahead = verb == "DATA" and reply.code == 354
            self.conn.read(Trigger.GO_AHEAD if go_ahead else Trigger.RESUME)
            self._pump_client()

    def _data_reply(self, pending: Pending, reply: Reply) -> None:
        shown = self._hooked_reply(END_OF_DATA_COMMAND, reply)
        if shown is None:
            return
        self._to_client(shown)
        if 200 <= reply.code < 300 and pending.message is not None:
            leg = "intercepted" if self.conn.client_tls == "intercepted" else "plaintext"
            self._notice("message", message_id=message_id(pending.message.content()),
                         client_leg=leg, mail_from=self._txn.mail_from,
                         rcpt_to=list(self._txn.rcpt_to), mx=self._mx_name)
        self._txn.reset()

    # -- helpers ------------------------------------------------------------------------
    def _to_client(self, reply: Reply, note: str = "") -> None:
        data = reply.encode()
        self.transcript.add("client", "out", self.conn.client_tls, data, note=note)
        self._out.append(SendToClient(data))

    def _to_server(self, data: bytes) -> None:
        self.transcript.add("server", "out", self.conn.leg_tls("server"), data)
        self._out.append(SendToServer(data))

    def _do_cut(self) -> None:
        reason = self.conn.cut_reason or "cut"
        self.transcript.add("client", "out", self.conn.client_tls,
                            f"[connection cut by the attack: {reason}]")
        self._notice("cut", reason=reason, tls=self.conn.client_tls)
        self._close(f"cut by the attack: {reason}")

    def _send_ready_local(self) -> None:
        """Send the proxy's own answers once every earlier answer has gone out."""
        while (local := self.conn.ready_local()) is not None:
            self._to_client(local, note="proxy")

    def _trailing(self, side: Side, data: bytes) -> None:
        if not data or self.conn.closed:
            return
        self._trailing_data[side] += data
        self.transcript.add(side, "in", self.conn.leg_tls(side), data, note="dropped")
        self._notice("trailing-data-dropped", leg=side, bytes=len(data),
                     text=data[:200].decode("utf-8", "replace"))

    def _protocol_error(self, side: Side, error: str) -> None:
        """Input from ``side`` that is not SMTP: tell the sender, record it, close."""
        self.transcript.add(side, "in", self.conn.leg_tls(side), f"[protocol error: {error}]")
        self._notice("protocol-error", leg=side, error=error)
        self._to_client(protocol_error_reply(error), note="proxy")
        self._close(f"protocol error from the {side}: {error}")

    def _close(self, reason: str) -> None:
        if self.conn.closed:
            return
        self.conn.go(Trigger.CLOSE)
        self._out.append(Close("both", reason))

    def _notice(self, kind: str, **data: Any) -> None:
        self._out.append(Notice(kind, {"conn": self.conn_id, "mx": self._mx_name, **data}))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out
