"""Test kit for the proxy: a genuine MX (aiosmtpd on the test's loop) and a small client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from lab.events import EventLog
from lab.pki import LabPKI
from lab.proxy import SmtpProxy
from lab.smtp.codec import ReplyParser
from lab.smtp.types import Reply

MX = "mx1.victim.test"
DEADLINE = 20.0
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run one test body with an overall deadline, so that no test can hang."""
    async def bounded() -> T:
        return await asyncio.wait_for(main(), DEADLINE)
    return asyncio.run(bounded())


def listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    content: bytes
    tls: bool


@dataclass
class Sink:
    """aiosmtpd handler: records every message and whether it came over TLS."""

    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), content,
                                      session.ssl is not None))
        return "250 2.0.0 Ok: queued"


@dataclass
class Lab:
    pki: LabPKI
    log: EventLog
    sink: Sink
    proxy: SmtpProxy
    port: int
    mx_server: asyncio.Server

    async def close(self) -> None:
        await self.proxy.close()
        self.mx_server.close()
        await self.mx_server.wait_closed()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.log.select(source="proxy", kind=kind)]

    async def wait(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        found = await self.log.wait_for(
            lambda evs: len([e for e in evs if e.kind == kind]) >= count, 0,
            loop.time() + DEADLINE / 2)
        assert found, f"no {kind!r} event from the proxy in time"
        return self.events(kind)


async def start_lab(tmp: Path, *, mx_tls: bool = True, **proxy_options: Any) -> Lab:
    """A proxy in front of an aiosmtpd MX (without STARTTLS when ``mx_tls`` is false)."""
    pki = LabPKI(tmp / "pki")
    sink = Sink()
    loop = asyncio.get_running_loop()
    tls = pki.server_context(MX) if mx_tls else None
    mx_server = await loop.create_server(
        lambda: SMTP(sink, hostname=MX, tls_context=tls, require_starttls=False),
        sock=listener())
    mx_port = mx_server.sockets[0].getsockname()[1]
    log = EventLog()

    async def upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", mx_port)

    proxy = SmtpProxy(pki, log.emit, upstream, **proxy_options)
    sock = listener()
    await proxy.start(sock)
    return Lab(pki, log, sink, proxy, sock.getsockname()[1], mx_server)


TlsChoice = Literal["never", "verify", "no-verify"]


class Client:
    """A minimal SMTP client that does exactly what a test says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = ReplyParser()
        self.replies: list[Reply] = []

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def reply(self) -> Reply:
        while not self.replies:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.parser.feed(data)
            while (reply := self.parser.next_reply()) is not None:
                self.replies.append(reply)
        return self.replies.pop(0)

    async def command(self, line: bytes) -> Reply:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def starttls(self, ctx: ssl.SSLContext, name: str = MX) -> None:
        await self.writer.start_tls(ctx, server_hostname=name)
        self.parser = ReplyParser()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def no_verify_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def deliver(client: Client, message: bytes, ehlo: Reply | None = None) -> Reply:
    """MAIL, RCPT, DATA, content, QUIT. Returns the reply to the end of data."""
    if ehlo is None:
        assert (await client.command(b"EHLO sender.test")).code == 250
    assert (await client.command(b"MAIL FROM:<probe@sender.test>")).code == 250
    assert (await client.command(b"RCPT TO:<user@victim.test>")).code == 250
    assert (await client.command(b"DATA")).code == 354
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    final = await client.command(stuffed + b".")
    await client.command(b"QUIT")
    return final
