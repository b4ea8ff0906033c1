"""Incremental SMTP parsers: bytes in, whole replies or commands out. Sans-IO.

Decisions:
- Lines end at LF; a CR before it is dropped from the text (bare LF is tolerated). The raw
  bytes are kept, so an untouched reply or command is relayed byte for byte.
- Text is decoded as UTF-8 with ``surrogateescape``: any byte string survives a round trip.
- Pull style: ``feed`` only buffers; ``next_reply``, ``next_command`` and ``next_message``
  take one item off the buffer (None: incomplete). The parsers hold no protocol state: what
  the client's next bytes mean (a command, message content, or nothing yet after DATA and
  STARTTLS) is decided by the relay's state table (``lab.smtp.state``), which asks for the
  matching item.
- Malformed input raises ``SmtpSyntaxError``; the parser is then broken and every later
  call raises again. The relay core catches it and turns it into actions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.smtp.types import Command, Reply

MAX_COMMAND_LINE = 4096
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 256
MAX_MESSAGE = 32 * 1024 * 1024

END_OF_DATA = b"\r\n.\r\n"

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])(?:([ -])(.*))?$", re.S)


class SmtpSyntaxError(ValueError):
    """Input that is not SMTP (the parser that raised it is broken from then on)."""


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

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None until more bytes arrive."""
        if self._error is not None:
            raise SmtpSyntaxError(self._error)
        try:
            while (line := _split_line(self._buffer, self._max_line, "reply")) is not None:
                reply = self._take(line)
                if reply is not None:
                    return reply
        except SmtpSyntaxError as exc:
            self._error = str(exc)
            raise
        return None

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


class CommandParser:
    """Client bytes to ``Command`` values, and message content as one ``MessageData``."""

    def __init__(self, max_line: int = MAX_COMMAND_LINE, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._max_message = max_message
        self._error: str | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def pending(self) -> bytes:
        return bytes(self._buffer)

    def discard_pending(self) -> bytes:
        dropped = bytes(self._buffer)
        self._buffer.clear()
        return dropped

    def next_command(self) -> Command | None:
        """The next command line, or None until more bytes arrive."""
        self._check()
        try:
            line = _split_line(self._buffer, self._max_line, "command")
        except SmtpSyntaxError as exc:
            self._error = str(exc)
            raise
        if line is None:
            return None
        text = decode(_strip_eol(line))
        verb, _, arg = text.partition(" ")
        return Command(verb.upper(), arg, raw=line)

    def next_message(self) -> MessageData | None:
        """The message content up to and including CRLF.CRLF, or None until it is whole."""
        self._check()
        if self._buffer.startswith(b".\r\n"):
            end = 3
        else:
            found = self._buffer.find(END_OF_DATA)
            if found < 0 and len(self._buffer) < self._max_message:
                return None
            end = found + len(END_OF_DATA) if found >= 0 else len(self._buffer) + 1
        if end > self._max_message:
            self._error = f"message longer than {self._max_message} bytes"
            raise SmtpSyntaxError(self._error)
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        return MessageData(raw)

    def _check(self) -> None:
        if self._error is not None:
            raise SmtpSyntaxError(self._error)
