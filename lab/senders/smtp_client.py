"""A small asyncio SMTP client for the lab's own senders: one delivery, one session.

TLS requirement per session (RFC 8461 4.2, 5, 7; RFC 3207):
- ``verify``: STARTTLS required; the certificate must chain to the CA, be in date and name
  the MX host (SNI is the MX host name too); TLS 1.2 or newer.
- ``opportunistic``: STARTTLS when offered, no certificate checks (SNI still sent).
- ``none``: plaintext.

After STARTTLS everything learned before is discarded and EHLO is sent again. Plaintext
bytes that arrived together with the ``220`` to STARTTLS are never read as replies (the
response-injection class, CVE-2011-0411): they are counted, logged and dropped.

What a delivery ends in is ``lab.senders.smtp_outcome``; the TLS context and the certificate
checks after the handshake are ``lab.senders.smtp_tls``.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from lab.events import SENDER, Emit
from lab.senders.smtp_outcome import (
    DeliveryResult,
    PermanentSmtpError,
    SmtpError,
    TlsPolicyError,
    TlsRequirement,
    TlsState,
    TransientSmtpError,
)
from lab.senders.smtp_tls import (
    PLAIN_CHECKS,
    TlsChecks,
    check_certificate,
    client_context,
    verify_failure_type,
)

MAX_LINE = 4096
MAX_REPLY_LINES = 200


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class _Wire(asyncio.Protocol):
    """The client's socket protocol: a byte buffer the client can inspect (I1)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def readline(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) > MAX_LINE:
                raise ConnectionError("reply line too long")
            if self.closed:
                raise ConnectionError("connection closed by the server")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


class _Session:
    def __init__(self, wire: _Wire, mx_host: str, emit: Emit, log_prefix: str) -> None:
        self.wire = wire
        self.mx_host = mx_host
        self.emit = emit
        self.prefix = log_prefix
        self.tls: TlsState = "none"

    def log(self, line: str) -> None:
        self.emit(SENDER, "log", {"line": f"{self.prefix}{line}"})

    def send(self, line: str) -> None:
        assert self.wire.transport is not None
        self.wire.transport.write(line.encode("ascii", "strict") + b"\r\n")

    async def reply(self, stage: str) -> Reply:
        lines: list[str] = []
        code = 0
        while True:
            try:
                raw = await self.wire.readline()
            except ConnectionError as exc:
                raise TransientSmtpError(f"{exc} (waiting for the {stage} reply)",
                                         stage=stage, tls=self.tls) from None
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
                raise TransientSmtpError(f"malformed reply {text[:80]!r}", stage=stage,
                                         tls=self.tls)
            line_code = int(text[:3])
            if lines and line_code != code:
                raise TransientSmtpError("reply code changed inside a multi-line reply",
                                         stage=stage, tls=self.tls)
            code = line_code
            lines.append(text[4:])
            if text[3:4] != "-":
                return Reply(code, tuple(lines))
            if len(lines) > MAX_REPLY_LINES:
                raise TransientSmtpError("reply too long", stage=stage, tls=self.tls)

    async def command(self, line: str, stage: str, expect: tuple[int, ...]) -> Reply:
        self.send(line)
        reply = await self.reply(stage)
        if reply.code not in expect:
            self.fail(reply, stage, line.split(" ")[0].split(":")[0])
        return reply

    def fail(self, reply: Reply, stage: str, what: str) -> None:
        reason = f"{self.mx_host} said {reply} to {what}"
        cls = PermanentSmtpError if 500 <= reply.code < 600 else TransientSmtpError
        raise cls(reason, stage=stage, code=reply.code, tls=self.tls)

    async def hello(self, helo_name: str) -> set[str]:
        """EHLO, or HELO when EHLO is refused with 5xx. Returns the extension keywords."""
        self.send(f"EHLO {helo_name}")
        reply = await self.reply("ehlo")
        if reply.code == 250:
            return {line.split(" ")[0].upper() for line in reply.lines[1:] if line}
        if 500 <= reply.code < 600:
            self.log(f"EHLO refused ({reply}); falling back to HELO: no extensions")
            await self.command(f"HELO {helo_name}", "ehlo", (250,))
            return set()
        self.fail(reply, "ehlo", "EHLO")
        return set()


async def deliver(address: str, port: int, mx_host: str, message_bytes: bytes,
                  mail_from: str, rcpt_to: str, tls: TlsRequirement,
                  ca_file: Path | str | None, emit: Emit, timeout: float = 30.0, *,
                  helo_name: str = "sender.test",
                  checks: TlsChecks = PLAIN_CHECKS) -> DeliveryResult:
    """Deliver one message to one MX address; raise an ``SmtpError`` subclass on failure."""
    loop = asyncio.get_running_loop()
    wire = _Wire()
    session = _Session(wire, mx_host, emit, f"{mx_host} [{address}]: ")
    try:
        async with asyncio.timeout(timeout):
            try:
                await loop.create_connection(lambda: wire, address, port)
            except OSError as exc:
                raise TransientSmtpError(f"cannot connect to {address}:{port}: "
                                         f"{exc.strerror or exc}", stage="connect") from None
            return await _converse(session, loop, address, message_bytes, mail_from,
                                   rcpt_to, tls, ca_file, helo_name, checks)
    except TimeoutError:
        raise TransientSmtpError(f"no answer from {mx_host} within {timeout:g}s",
                                 stage="timeout", tls=session.tls) from None
    finally:
        if wire.transport is not None:
            wire.transport.abort()


async def _converse(session: _Session, loop: asyncio.AbstractEventLoop, address: str,
                    message_bytes: bytes, mail_from: str, rcpt_to: str,
                    tls: TlsRequirement, ca_file: Path | str | None,
                    helo_name: str, checks: TlsChecks) -> DeliveryResult:
    greeting = await session.reply("greeting")
    if greeting.code != 220:
        session.fail(greeting, "greeting", "the connection")
    session.log(f"connected, greeting {greeting}")
    extensions = await session.hello(helo_name)
    discarded = 0
    version: str | None = None
    cipher: str | None = None
    if tls != "none":
        if "STARTTLS" not in extensions:
            if tls == "verify":
                raise TlsPolicyError(f"{session.mx_host} does not offer STARTTLS",
                                     stage="starttls", result_type="starttls-not-supported")
            session.log("STARTTLS not offered: continuing in plaintext")
        else:
            session.send("STARTTLS")
            reply = await session.reply("starttls")
            if reply.code != 220:
                if tls == "verify":
                    raise TlsPolicyError(f"{session.mx_host} answered {reply} to STARTTLS",
                                         stage="starttls", code=reply.code,
                                         result_type="starttls-not-supported")
                session.log(f"STARTTLS answered {reply}: continuing in plaintext")
            else:
                discarded = len(session.wire.buffer)
                if checks.profile.read_injected:
                    discarded = 0  # the reads-injected-replies mutant keeps them
                if discarded:
                    session.log(f"dropped {discarded} plaintext bytes that came after "
                                "'220' to STARTTLS (possible response injection)")
                    session.wire.buffer.clear()
                version, cipher = await _handshake(session, loop, tls, ca_file, checks)
                extensions = await session.hello(helo_name)  # RFC 3207: start afresh
    await session.command(f"MAIL FROM:<{mail_from}>", "mail", (250,))
    await session.command(f"RCPT TO:<{rcpt_to}>", "rcpt", (250, 251))
    await session.command("DATA", "data", (354,))
    assert session.wire.transport is not None
    session.wire.transport.write(_dot_stuff(message_bytes) + b".\r\n")
    final = await session.reply("data")
    if final.code != 250:
        session.fail(final, "data", "the message")
    session.log(f"message accepted: {final}")
    session.send("QUIT")
    try:
        async with asyncio.timeout(1.0):
            await session.reply("quit")
    except (TimeoutError, SmtpError):
        pass
    return DeliveryResult(session.mx_host, address, session.tls, version, cipher, str(final),
                          discarded)


async def _handshake(session: _Session, loop: asyncio.AbstractEventLoop,
                     tls: TlsRequirement, ca_file: Path | str | None,
                     checks: TlsChecks) -> tuple[str | None, str | None]:
    wire = session.wire
    assert wire.transport is not None
    ctx = client_context(tls, ca_file, checks)
    sni = None if checks.profile.no_sni else session.mx_host
    try:
        transport = await loop.start_tls(wire.transport, wire, ctx, server_hostname=sni)
    except ssl.SSLCertVerificationError as exc:
        result_type = verify_failure_type(exc)
        raise TlsPolicyError(f"certificate verify failed: {exc.verify_message} "
                             f"({result_type})", stage="handshake",
                             result_type=result_type) from None
    except (ssl.SSLError, OSError, ConnectionError) as exc:
        reason = f"TLS handshake failed: {str(exc) or type(exc).__name__}"
        if tls == "verify":
            raise TlsPolicyError(reason, stage="handshake",
                                 result_type="validation-failure") from None
        raise TransientSmtpError(reason, stage="handshake") from None
    if transport is None:
        raise TransientSmtpError("TLS handshake failed: connection lost", stage="handshake")
    wire.transport = transport
    if not checks.profile.read_injected:
        wire.buffer.clear()
    ssl_object = transport.get_extra_info("ssl_object")
    if tls == "verify":
        check_certificate(ssl_object, session.mx_host, checks, session.log)
    version = ssl_object.version() if ssl_object is not None else None
    cipher_info = ssl_object.cipher() if ssl_object is not None else None
    cipher = cipher_info[0] if cipher_info else None
    session.tls = "verified" if tls == "verify" else "unverified"
    how = (f"certificate verified for {session.mx_host}" if tls == "verify"
           else "certificate not checked")
    session.log(f"TLS established ({version}, {cipher}); {how}")
    return version, cipher


def _dot_stuff(message: bytes) -> bytes:
    """CRLF line ends, leading dots doubled, ending in CRLF (RFC 5321 4.5.2)."""
    text = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    lines = text.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
