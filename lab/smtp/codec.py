"""Incremental SMTP parsers: bytes in, whole replies or commands out. Sans-IO.

Decisions:
- Lines end at LF; a CR before it is dropped from the text (bare LF is tolerated). The raw
  bytes are kept, so an untouched reply or command is relayed byte for byte.
- Text is decoded as UTF-8 with ``surrogateescape``: any byte string survives a round trip.
- Malformed input raises ``SmtpSyntaxError`` from ``feed``. The error carries the items that
  were complete before the bad line (``items``); the parser is then broken and every later
  ``feed`` raises again. The relay core catches it, reports it and closes the connection.
- The command parser stops after ``DATA`` and ``STARTTLS`` ("held"): the bytes that follow
  wait in ``pending()`` until the core knows the server's answer (``start_data`` after 354,
  ``resume`` otherwise, or ``discard_pending`` when TLS starts: trailing plaintext).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lab.smtp.types import Command, Reply

MAX_COMMAND_LINE = 4096
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 256
MAX_MESSAGE = 32 * 1024 * 1024

HOLD_VERBS = frozenset({"DATA", "STARTTLS"})
"""Commands after which the client's next bytes mean something else (content, or TLS)."""

END_OF_DATA = b"\r\n.\r\n"

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])(?:([ -])(.*))?$", re.S)


class SmtpSyntaxError(ValueError):
    """Input that is not SMTP. ``items`` holds what was parsed before the bad line."""

    def __init__(self, message: str, items: list[object] | None = None) -> None:
        super().__init__(message)
        self.items: list[object] = list(items or [])


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def printable(data: bytes) -> str:
    """For transcripts: text with undecodable bytes replaced."""
    return data.decode("utf-8", "replace")


def _split_line(buffer: bytearray, limit: int, what: str) -> bytes | None:
    """Take one LF-terminated line off ``buffer`` (LF included), or None if incomplete.

    A line may hold ``limit`` bytes plus its CRLF.
    """
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) >= limit + 2:
            raise SmtpSyntaxError(f"{what} line longer than {limit} bytes")
        return None
    if end + 1 > limit + 2:
        raise SmtpSyntaxError(f"{what} line longer than {limit} bytes")
    line = bytes(buffer[: end + 1])
    del buffer[: end + 1]
    return line


def _strip_eol(line: bytes) -> bytes:
    line = line[:-1] if line.endswith(b"\n") else line
    return line[:-1] if line.endswith(b"\r") else line


class ReplyParser:
    """Server bytes to complete ``Reply`` values (multi-line replies joined)."""

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._raw = bytearray()
        self._code = 0
        self._max_line = max_line
        self._max_lines = max_lines
        self._error: str | None = None

    def feed(self, data: bytes) -> list[Reply]:
        if self._error is not None:
            raise SmtpSyntaxError(self._error)
        self._buffer += data
        out: list[Reply] = []
        try:
            while (line := _split_line(self._buffer, self._max_line, "reply")) is not None:
                reply = self._take(line)
                if reply is not None:
                    out.append(reply)
        except SmtpSyntaxError as exc:
            self._error = str(exc)
            raise SmtpSyntaxError(str(exc), list(out)) from None
        return out

    def _take(self, line: bytes) -> Reply | None:
        match = _REPLY_LINE.match(_strip_eol(line))
        if match is None:
            raise SmtpSyntaxError(f"not a reply line: {printable(line[:80])!r}")
        code = int(match.group(1))
        if self._lines and code != self._code:
            raise SmtpSyntaxError(f"reply code changed inside a multi-line reply: "
                                  f"{self._code} then {code}")
        if len(self._lines) >= self._max_lines:
            raise SmtpSyntaxError(f"reply longer than {self._max_lines} lines")
        self._code = code
        self._lines.append(decode(match.group(3) or b""))
        self._raw += line
        if match.group(2) == b"-":
            return None
        reply = Reply(code, tuple(self._lines), raw=bytes(self._raw))
        self._lines, self._raw = [], bytearray()
        return reply

    def pending(self) -> bytes:
        """Bytes received but not yet part of a complete reply."""
        return bytes(self._raw) + bytes(self._buffer)

    def discard_pending(self) -> bytes:
        dropped = self.pending()
        self._buffer.clear()
        self._raw.clear()
        self._lines = []
        return dropped


@dataclass(frozen=True)
class MessageData:
    """The message content after a 354: ``raw`` ends with the CRLF.CRLF terminator."""

    raw: bytes

    def content(self) -> bytes:
        """The message without the terminator and with dot-stuffing undone."""
        body = self.raw[: -len(END_OF_DATA)] + b"\r\n" if self.raw != b".\r\n" else b""
        return re.sub(rb"(?m)^\.\.", b".", body)


Item = Command | MessageData
ParserState = Literal["command", "held", "data"]


class CommandParser:
    """Client bytes to ``Command`` values, and message content as one ``MessageData``."""

    def __init__(self, max_line: int = MAX_COMMAND_LINE, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._max_message = max_message
        self._error: str | None = None
        self.state: ParserState = "command"

    @property
    def held(self) -> bool:
        """True after DATA or STARTTLS until the core says how to go on."""
        return self.state == "held"

    def feed(self, data: bytes) -> list[Item]:
        if self._error is not None:
            raise SmtpSyntaxError(self._error)
        self._buffer += data
        return self._run()

    def start_data(self) -> list[Item]:
        """The server answered 354: what follows is message content."""
        self.state = "data"
        return self._run()

    def resume(self) -> list[Item]:
        """The held command was refused (or answered by the proxy): parse commands again."""
        self.state = "command"
        return self._run()

    def pending(self) -> bytes:
        return bytes(self._buffer)

    def discard_pending(self) -> bytes:
        dropped = bytes(self._buffer)
        self._buffer.clear()
        return dropped

    def _run(self) -> list[Item]:
        out: list[Item] = []
        try:
            while True:
                item = self._next()
                if item is None:
                    return out
                out.append(item)
        except SmtpSyntaxError as exc:
            self._error = str(exc)
            raise SmtpSyntaxError(str(exc), list(out)) from None

    def _next(self) -> Item | None:
        if self.state == "held":
            return None
        if self.state == "data":
            return self._data()
        line = _split_line(self._buffer, self._max_line, "command")
        if line is None:
            return None
        text = decode(_strip_eol(line))
        verb, _, arg = text.partition(" ")
        command = Command(verb.upper(), arg, raw=line)
        if command.verb in HOLD_VERBS:
            self.state = "held"
        return command

    def _data(self) -> MessageData | None:
        if self._buffer.startswith(b".\r\n"):
            end = 3
        else:
            found = self._buffer.find(END_OF_DATA)
            if found < 0:
                if len(self._buffer) >= self._max_message:
                    raise SmtpSyntaxError(f"message longer than {self._max_message} bytes")
                return None
            end = found + len(END_OF_DATA)
        if end > self._max_message:
            raise SmtpSyntaxError(f"message longer than {self._max_message} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        self.state = "command"
        return MessageData(raw)
