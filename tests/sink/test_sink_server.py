"""The MX sink over real sockets and real TLS on loopback, driven by smtplib in a thread."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from lab.events import EventLog
from lab.pki import LabPKI
from lab.sink import Sink

pytestmark = pytest.mark.integration

MX1, MX2 = "mx1.victim.test", "mx2.victim.test"
TIMEOUT = 10.0


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


class LoopbackSMTP(smtplib.SMTP):
    """smtplib that talks to 127.0.0.1 whatever host name it is given (the name is the SNI)."""

    _host: str
    """What ``starttls()`` sends as SNI (smtplib sets it only in ``__init__``)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout)


def probe(message_id: str, rcpt: str = "user@victim.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "probe@sender.test"
    msg["To"] = rcpt
    msg["Subject"] = "sink test"
    msg["Message-ID"] = message_id
    msg.set_content("hello\n")
    return msg


@dataclass
class Result:
    banner: str
    tls_version: str | None = None
    cipher: str | None = None
    peer_names: tuple[str, ...] = ()
    refused: dict[str, tuple[int, bytes]] | None = None


def deliver(port: int, ctx: ssl.SSLContext | None, sni: str | None, msg: EmailMessage,
            rcpts: list[str], *, send_sni: bool = True) -> Result:
    """One SMTP session: optional STARTTLS, then one message."""
    client = LoopbackSMTP(timeout=TIMEOUT)
    client._host = sni or MX1  # what starttls() sends as SNI
    try:
        _, banner = client.connect(client._host, port)
        result = Result(banner.decode())
        client.ehlo("sender.test")
        if ctx is not None:
            if send_sni:
                client.starttls(context=ctx)
            else:
                # STARTTLS by hand, without SNI (server_hostname=None)
                code, _ = client.docmd("STARTTLS")
                assert code == 220
                assert client.sock is not None
                client.sock = ctx.wrap_socket(client.sock)
                client.file = None
                client.helo_resp = client.ehlo_resp = None
                client.esmtp_features = {}
                client.does_esmtp = False
            tls_sock = client.sock
            assert isinstance(tls_sock, ssl.SSLSocket)
            result.tls_version = tls_sock.version()
            cipher = tls_sock.cipher()
            result.cipher = cipher[0] if cipher else None
            cert = tls_sock.getpeercert()
            assert cert is not None
            sans: Any = cert.get("subjectAltName", ())
            result.peer_names = tuple(str(v) for k, v in sans if k == "DNS")
            client.ehlo("sender.test")
        try:
            result.refused = client.sendmail(msg["From"], rcpts, msg.as_bytes())
        except smtplib.SMTPRecipientsRefused as exc:
            result.refused = exc.recipients
        return result
    finally:
        try:
            client.quit()
        except smtplib.SMTPServerDisconnected:
            client.close()


def run(body: Callable[[Sink, EventLog, int, LabPKI], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        pki = LabPKI(tmp_path)
        log = EventLog()
        sink = Sink(pki, log.emit)
        sink.configure([MX1, MX2], ["victim.test"])
        sock = listening_socket()
        port = sock.getsockname()[1]
        await sink.start(sock)
        try:
            await asyncio.wait_for(body(sink, log, port, pki), 30)
        finally:
            await asyncio.wait_for(sink.close(), 10)

    asyncio.run(main())


def only(log: EventLog, kind: str) -> dict[str, Any]:
    events = log.select(source="sink", kind=kind)
    assert len(events) == 1, events
    return dict(events[0].data)


def test_starttls_delivery_records_tls_facts(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        result = await asyncio.to_thread(deliver, port, pki.client_context(), MX2,
                                         probe("<one@sender.test>"), ["user@victim.test"])
        assert result.banner.startswith(MX1)
        assert result.refused == {}
        assert result.peer_names == (MX2,)
        assert result.tls_version in ("TLSv1.2", "TLSv1.3")
        message = only(log, "message")
        assert message["message_id"] == "<one@sender.test>"
        assert message["mail_from"] == "probe@sender.test"
        assert message["rcpt_tos"] == ["user@victim.test"]
        assert message["tls"] is True
        assert message["tls_version"] == result.tls_version
        assert message["cipher"] == result.cipher
        assert message["sni"] == MX2
        assert message["mx"] == MX2
        assert message["peer"].startswith("127.0.0.1:")
        assert message["size"] > 0
        assert sink.messages == [message]
        tls = only(log, "tls")
        assert (tls["sni"], tls["version"], tls["cipher"]) == (MX2, result.tls_version,
                                                               result.cipher)
        assert only(log, "connect")["peer"] == message["peer"]

    run(body, tmp_path)


def test_plaintext_delivery_is_recorded_without_tls(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        result = await asyncio.to_thread(deliver, port, None, MX1, probe("<plain@sender.test>"),
                                         ["user@VICTIM.test"])
        assert result.refused == {}
        message = only(log, "message")
        assert message["message_id"] == "<plain@sender.test>"
        assert message["tls"] is False
        assert message["tls_version"] is None and message["cipher"] is None
        assert message["sni"] is None
        assert message["mx"] == MX1
        assert log.select(source="sink", kind="tls") == []

    run(body, tmp_path)


def test_foreign_domain_is_rejected(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        result = await asyncio.to_thread(
            deliver, port, pki.client_context(), MX1, probe("<mixed@sender.test>"),
            ["user@victim.test", "user@other.test", "user@sub.victim.test"])
        assert result.refused is not None
        assert set(result.refused) == {"user@other.test", "user@sub.victim.test"}
        assert {code for code, _ in result.refused.values()} == {550}
        assert all(b"5.7.1" in text for _, text in result.refused.values())
        assert only(log, "message")["rcpt_tos"] == ["user@victim.test"]

        everything_refused = await asyncio.to_thread(
            deliver, port, None, MX1, probe("<none@sender.test>"), ["user@other.test"])
        assert everything_refused.refused is not None
        assert set(everything_refused.refused) == {"user@other.test"}
        assert len(sink.messages) == 1

    run(body, tmp_path)


@pytest.mark.parametrize("sni", ["unknown.victim.test", None])
def test_unknown_or_missing_sni_gets_first_mx_certificate(tmp_path: Path,
                                                          sni: str | None) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        ctx = pki.client_context()
        ctx.check_hostname = False  # still verifies the chain against the lab CA
        result = await asyncio.to_thread(deliver, port, ctx, sni or MX2,
                                          probe("<sni@sender.test>"), ["user@victim.test"],
                                          send_sni=sni is not None)
        assert result.peer_names == (MX1,)
        message = only(log, "message")
        assert message["sni"] == sni
        assert message["mx"] == MX1
        assert message["tls"] is True

    run(body, tmp_path)


def test_failed_handshake_is_reported(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        untrusting = ssl.create_default_context()  # does not trust the lab CA

        def attempt() -> None:
            with pytest.raises(ssl.SSLCertVerificationError):
                deliver(port, untrusting, MX2, probe("<x@sender.test>"), ["user@victim.test"])

        await asyncio.to_thread(attempt)

        def failed(events: Any) -> bool:
            return any(e.source == "sink" and e.kind == "tls-failed" for e in events)

        assert await log.wait_for(failed, 0, time.monotonic() + TIMEOUT)
        event = only(log, "tls-failed")
        assert event["sni"] == MX2 and event["mx"] == MX2 and event["error"]
        assert sink.messages == []

    run(body, tmp_path)


def test_configure_applies_to_new_connections(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        sink.configure(["mx.other.test"], ["other.test"])
        result = await asyncio.to_thread(deliver, port, pki.client_context(), "mx.other.test",
                                         probe("<re@sender.test>", "a@other.test"),
                                         ["a@other.test", "b@victim.test"])
        assert result.banner.startswith("mx.other.test")
        assert result.peer_names == ("mx.other.test",)
        assert result.refused is not None and set(result.refused) == {"b@victim.test"}
        assert only(log, "message")["mx"] == "mx.other.test"

    run(body, tmp_path)


def test_close_ends_open_connections(tmp_path: Path) -> None:
    async def body(sink: Sink, log: EventLog, port: int, pki: LabPKI) -> None:
        ctx = pki.client_context()

        def open_session() -> LoopbackSMTP:
            client = LoopbackSMTP(MX1, port, timeout=TIMEOUT)
            client.ehlo("sender.test")
            client.starttls(context=ctx)
            client.ehlo("sender.test")
            return client

        client = await asyncio.to_thread(open_session)
        try:
            assert len(log.select(source="sink", kind="tls")) == 1
            await asyncio.wait_for(sink.close(), 5)

            def noop_after_close() -> type[BaseException] | None:
                try:
                    client.noop()
                except (smtplib.SMTPServerDisconnected, OSError) as exc:
                    return type(exc)
                return None

            assert await asyncio.to_thread(noop_after_close) is not None
        finally:
            client.close()
        with pytest.raises(OSError):
            await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), TIMEOUT)

    run(body, tmp_path)


def test_start_requires_configure(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Sink(LabPKI(tmp_path), EventLog().emit)
        with listening_socket() as sock, pytest.raises(RuntimeError):
            await sink.start(sock)
        await sink.close()

    asyncio.run(main())
    with pytest.raises(ValueError):
        Sink(LabPKI(tmp_path / "b"), EventLog().emit).configure([], ["victim.test"])
