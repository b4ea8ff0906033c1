"""The MX sink: the genuine receiving MX (aiosmtpd) behind the on-path proxy.

It offers STARTTLS with a lab certificate chosen by SNI among its MX names, accepts mail
only for its own domains, and records every message with how it arrived (TLS or not,
version, cipher, SNI). It is the TLS-RPT report mailbox too: a message to the report domain
(``lab.tlsrpt.names``) or of type ``multipart/report; report-type=tlsrpt`` is also examined
as a report (``lab.tlsrpt.examine``) and recorded as a ``("collector", "tlsrpt-report")``
event. Runs in the caller's event loop on a socket the backend provides.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from lab.addresses import address_text
from lab.events import COLLECTOR, SINK, Emit
from lab.pki import LabPKI
from lab.tlsrpt import REPORT_DOMAIN, examine

IDENT = "mtasts-lab sink"
TIMEOUT_S = 60.0
"""Idle timeout per SMTP connection."""


@dataclass(frozen=True)
class SinkConfig:
    mx_names: tuple[str, ...]
    accept_domains: frozenset[str]

    @property
    def hostname(self) -> str:
        return self.mx_names[0]


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _peer(session: Session) -> str:
    return address_text(session.peer)


def _domain_of(address: str) -> str:
    return _norm(address.rpartition("@")[2]) if "@" in address else ""


def _message_id(content: bytes) -> str | None:
    value = BytesHeaderParser().parsebytes(content).get("Message-ID")
    return str(value).strip() if value is not None else None


def is_report(content: bytes, rcpt_tos: Sequence[str]) -> bool:
    """A TLS report: addressed to the report domain, or ``multipart/report;
    report-type=tlsrpt`` wherever it went (RFC 8460 5.3.1)."""
    if any(_domain_of(r) == REPORT_DOMAIN for r in rcpt_tos):
        return True
    try:
        head = BytesHeaderParser().parsebytes(content)
        return head.get_content_type() == "multipart/report" and str(
            head.get_param("report-type") or "").lower() == "tlsrpt"
    except Exception:  # a header the email package chokes on is not a report's
        return False


class _TlsChoice:
    """What the SNI callback decided for one TLS connection."""

    def __init__(self, sni: str | None, mx: str) -> None:
        self.sni = sni
        self.mx = mx


class Sink:
    """The genuine MX. ``configure`` before ``start``; changes apply to new connections."""

    def __init__(self, pki: LabPKI, emit: Emit) -> None:
        self.pki = pki
        self.emit = emit
        self.messages: list[dict[str, Any]] = []
        self._config: SinkConfig | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_SinkSMTP] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._choices: weakref.WeakKeyDictionary[Any, _TlsChoice] = weakref.WeakKeyDictionary()

    def configure(self, mx_names: Sequence[str], accept_domains: Sequence[str]) -> None:
        if not mx_names:
            raise ValueError("the sink needs at least one MX name")
        config = SinkConfig(tuple(_norm(n) for n in mx_names),
                            frozenset(_norm(d) for d in accept_domains))
        self._tls_context = self._make_tls_context(config)
        self._config = config

    def _make_tls_context(self, config: SinkConfig) -> ssl.SSLContext:
        """A context presenting the first MX's certificate, switching by SNI."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = self.pki.write_leaf(config.hostname)
        ctx.load_cert_chain(cert, key)
        names = set(config.mx_names)

        def choose(ssl_obj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            sni = _norm(server_name) if server_name else None
            mx = sni if sni in names else config.hostname
            if sni in names and sni != config.hostname:
                ssl_obj.context = self.pki.server_context(mx)
            self._choices[ssl_obj] = _TlsChoice(server_name, mx)

        ctx.sni_callback = choose
        return ctx

    async def start(self, sock: socket.socket) -> None:
        if self._config is None:
            raise RuntimeError("Sink.configure() must be called before start()")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_protocol, sock=sock)

    def _new_protocol(self) -> _SinkSMTP:
        assert self._config is not None and self._tls_context is not None
        return _SinkSMTP(self, self._config, self._tls_context)

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # Called by the protocol

    def tls_info(self, session: Session) -> dict[str, Any]:
        """TLS facts of a session (all None for plaintext)."""
        info = session.ssl
        if not info:
            return {"tls": False, "tls_version": None, "cipher": None, "sni": None, "mx": None}
        ssl_obj = info.get("ssl_object")
        choice = self._choices.get(ssl_obj) if ssl_obj is not None else None
        cipher = info.get("cipher")
        return {
            "tls": True,
            "tls_version": ssl_obj.version() if ssl_obj is not None else None,
            "cipher": cipher[0] if cipher else None,
            "sni": choice.sni if choice else None,
            "mx": choice.mx if choice else None,
        }


class _Handler:
    """aiosmtpd hooks: accept only our domains, record messages."""

    def __init__(self, sink: Sink, config: SinkConfig) -> None:
        self.sink = sink
        self.config = config

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if _domain_of(address) not in self.config.accept_domains:
            return "550 5.7.1 Relaying denied: not a domain of this MX"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: bytes = envelope.original_content or b""
        tls = self.sink.tls_info(session)
        record: dict[str, Any] = {
            "message_id": _message_id(content),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            **tls,
            "mx": tls["mx"] or self.config.hostname,
            "peer": _peer(session),
            "size": len(content),
        }
        self.sink.messages.append(record)
        self.sink.emit(SINK, "message", record)
        if is_report(content, envelope.rcpt_tos):
            report = examine("mailto", content).event()
            report.update(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                          message_id=record["message_id"], tls=tls["tls"], mx=record["mx"])
            self.sink.emit(COLLECTOR, "tlsrpt-report", report)
        return "250 2.0.0 OK: queued by mtasts-lab sink"

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        tls = self.sink.tls_info(session)
        self.sink.emit(SINK, "tls", {"sni": tls["sni"], "version": tls["tls_version"],
                                     "cipher": tls["cipher"], "mx": tls["mx"],
                                     "peer": _peer(session)})
        return True


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP protocol, tracked by the sink so ``close()`` can end it."""

    def __init__(self, sink: Sink, config: SinkConfig, tls_context: ssl.SSLContext) -> None:
        super().__init__(
            _Handler(sink, config),
            hostname=config.hostname,
            ident=IDENT,
            tls_context=tls_context,
            timeout=TIMEOUT_S,
            enable_SMTPUTF8=True,
            loop=asyncio.get_running_loop(),
        )
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            assert self.session is not None
            self._sink._conns.add(self)
            self._sink.emit(SINK, "connect", {"peer": _peer(self.session),
                                              "mx": self.hostname})

    def connection_lost(self, error: Exception | None) -> None:
        self._sink._conns.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sink._tasks.add(task)
        try:
            await super()._handle_client()
        finally:
            self._sink._tasks.discard(task)

    async def handle_exception(self, error: Exception) -> str:
        """Report instead of logging a traceback: a failed handshake is evidence."""
        assert self.session is not None
        peer = _peer(self.session)
        if isinstance(error, TLSSetupException):
            cause = error.__cause__ or error
            # asyncio keeps the SSLObject private; best effort for the SNI it saw
            ssl_obj = getattr(self._tls_protocol, "_sslobj", None)
            choice = self._sink._choices.get(ssl_obj) if ssl_obj is not None else None
            self._sink.emit(SINK, "tls-failed", {
                "sni": choice.sni if choice else None, "mx": choice.mx if choice else None,
                "error": str(cause) or type(cause).__name__, "peer": peer})
            return "421 4.7.0 TLS handshake failed"
        self._sink.emit(SINK, "error", {"error": repr(error), "peer": peer})
        return f"451 4.3.0 Error: {type(error).__name__}"

    def abort(self) -> None:
        transport = self.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        elif transport is not None:
            transport.close()
