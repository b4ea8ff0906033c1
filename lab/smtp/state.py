"""The relay's state, all of it in one place (h11's rule): the session, both TLS legs, what
the client's next bytes mean, the answers the client is owed, and a pending cut.

Two tables drive it. ``SESSION`` moves the connection through greeting, relaying, the
STARTTLS switch and closing; each step also says what it does to the TLS legs and to the
client reader. ``READER`` says how the client's bytes are read: commands, nothing yet (after
DATA or STARTTLS, until the server's answer), or message content. The parsers in
``lab.smtp.codec`` keep no state of their own: the relay asks them for what ``reading`` says.
A move that is in neither table raises ``LocalProtocolError``: a bug in the core or its
shell, never the peers' doing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from lab.smtp.codec import MessageData
from lab.smtp.types import Command, Reply

ClientTls = Literal["none", "tunnel", "intercepted"]


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


class Reading(Enum):
    """What the client's next bytes are."""

    COMMANDS = "commands"
    HELD = "held"
    """After DATA or STARTTLS: nothing is parsed until the server has answered."""
    MESSAGE = "message"
    """After a 354: message content up to CRLF.CRLF."""


class Trigger(Enum):
    """What moves the state (named so as not to clash with ``lab.events``' log records)."""

    GREETED = "greeted"
    STARTTLS_TUNNEL = "starttls-tunnel"
    STARTTLS_INTERCEPT = "starttls-intercept"
    STARTTLS_ABORT_WAIT = "starttls-abort-wait"
    SERVER_TLS_UP = "server-tls-up"
    CLIENT_TLS_UP = "client-tls-up"
    CLOSE = "close"
    HOLD_VERB = "hold-verb"
    """The client sent DATA or STARTTLS."""
    GO_AHEAD = "go-ahead"
    """The server answered DATA with 354."""
    RESUME = "resume"
    """The held command was refused, or answered by the proxy."""
    MESSAGE_END = "message-end"


HOLD_VERBS = frozenset({"DATA", "STARTTLS"})
"""Commands after which the client's next bytes mean something else (content, or TLS)."""


@dataclass(frozen=True)
class Step:
    """One row of ``SESSION``: the next state and what it does to the legs and the reader."""

    to: State
    client_tls: ClientTls | None = None
    server_tls: bool | None = None
    reading: Reading | None = None


SESSION: dict[tuple[State, Trigger], Step] = {
    (State.GREETING, Trigger.GREETED): Step(State.RELAY),
    (State.RELAY, Trigger.STARTTLS_TUNNEL): Step(State.TUNNEL, client_tls="tunnel",
                                                 server_tls=True),
    (State.RELAY, Trigger.STARTTLS_INTERCEPT): Step(State.UPGRADE_SERVER),
    (State.RELAY, Trigger.STARTTLS_ABORT_WAIT): Step(State.ABORT_WAIT),
    (State.UPGRADE_SERVER, Trigger.SERVER_TLS_UP): Step(State.UPGRADE_CLIENT, server_tls=True),
    # RFC 3207: everything learned before TLS is forgotten; the reader starts afresh.
    (State.UPGRADE_CLIENT, Trigger.CLIENT_TLS_UP): Step(State.RELAY, client_tls="intercepted",
                                                        reading=Reading.COMMANDS),
    **{(state, Trigger.CLOSE): Step(State.CLOSED) for state in State},
}

READER: dict[tuple[Reading, Trigger], Reading] = {
    (Reading.COMMANDS, Trigger.HOLD_VERB): Reading.HELD,
    (Reading.HELD, Trigger.GO_AHEAD): Reading.MESSAGE,
    (Reading.HELD, Trigger.RESUME): Reading.COMMANDS,
    (Reading.MESSAGE, Trigger.MESSAGE_END): Reading.COMMANDS,
}

PARSING_STATES = frozenset({State.GREETING, State.RELAY})
"""States in which the core parses the bytes it gets (elsewhere they are trailing data)."""


class LocalProtocolError(Exception):
    """The core was driven out of order by its shell (a bug in the shell, not the peers)."""


class Owed(Enum):
    GREETING = "greeting"
    COMMAND = "command"
    MESSAGE = "message"
    """The reply to the end of message content."""


@dataclass
class Pending:
    """One answer the client is owed, in order."""

    command: Command
    kind: Owed
    local: Reply | None = None
    """Set when the proxy answers itself (not forwarded)."""
    message: MessageData | None = None


class ConnectionState:
    """Every fact the relay's decisions depend on; changed only through the tables above."""

    def __init__(self) -> None:
        self.state = State.GREETING
        self.reading = Reading.COMMANDS
        self.client_tls: ClientTls = "none"
        self.server_tls = False
        self.owed: deque[Pending] = deque([Pending(Command(""), Owed.GREETING)])
        self.cut_reason: str | None = None
        """Set by an attack's ``cut``; acted on as soon as its hook returns."""

    def go(self, trigger: Trigger) -> None:
        try:
            step = SESSION[(self.state, trigger)]
        except KeyError:
            raise LocalProtocolError(f"{trigger.value} is not allowed in state "
                                     f"{self.state.value}") from None
        self.state = step.to
        if step.client_tls is not None:
            self.client_tls = step.client_tls
        if step.server_tls is not None:
            self.server_tls = step.server_tls
        if step.reading is not None:
            self.reading = step.reading

    def read(self, trigger: Trigger) -> None:
        try:
            self.reading = READER[(self.reading, trigger)]
        except KeyError:
            raise LocalProtocolError(f"{trigger.value} is not allowed while reading "
                                     f"{self.reading.value}") from None

    @property
    def parsing(self) -> bool:
        return self.state in PARSING_STATES

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def cut_requested(self) -> bool:
        return self.cut_reason is not None and self.state is not State.CLOSED

    @property
    def unsolicited(self) -> bool:
        """True when a server reply now would answer nothing the client asked for."""
        return not self.owed or self.owed[0].local is not None

    def owe(self, pending: Pending) -> None:
        self.owed.append(pending)

    def settle(self) -> Pending:
        return self.owed.popleft()

    def ready_local(self) -> Reply | None:
        """The proxy's own answer at the head of the queue, taken off; None if none is."""
        if self.closed or not self.owed or self.owed[0].local is None:
            return None
        return self.owed.popleft().local

    def leg_tls(self, side: Literal["client", "server"]) -> str:
        if side == "client":
            return self.client_tls
        return "tls" if self.server_tls else "none"
