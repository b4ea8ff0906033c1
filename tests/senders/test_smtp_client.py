"""The SMTP client against real loopback servers: aiosmtpd and a scripted MX."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from lab.pki import CertKind, LabPKI
from lab.senders.smtp_client import deliver
from lab.senders.smtp_outcome import (
    DeliveryResult,
    PermanentSmtpError,
    SmtpError,
    TlsPolicyError,
    TlsRequirement,
    TransientSmtpError,
)

from .lab_servers import MxServer, Recorder, ScriptedMx

T = TypeVar("T")
pytestmark = pytest.mark.integration
MX = "mx1.victim.test"
MESSAGE = b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"


async def send(port: int, tls: TlsRequirement, ca: Path,
               emit: Recorder | None = None) -> DeliveryResult:
    return await deliver("127.0.0.1", port, MX, MESSAGE, "a@sender.test", "b@victim.test",
                         tls, ca, emit or Recorder(), timeout=10.0)


def with_mx(server: MxServer | ScriptedMx, body: Callable[[int], Awaitable[T]]) -> T:
    async def main() -> T:
        port = await server.start()
        try:
            return await body(port)
        finally:
            await server.close()
    return asyncio.run(main())


def test_verified_delivery_sends_sni_and_dot_stuffs(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = MxServer(pki.server_context(MX))
    result = with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert result.tls == "verified" and result.tls_version in ("TLSv1.2", "TLSv1.3")
    assert result.reply.startswith("250")
    assert mx.sni == [MX]
    assert len(mx.received) == 1 and mx.received[0].tls
    assert b"\r\n.leading dot\r\n" in mx.received[0].content


@pytest.mark.parametrize(("kind", "result_type"), [
    (CertKind.SELF_SIGNED, "certificate-not-trusted"),
    (CertKind.ROGUE_CA, "certificate-not-trusted"),
    (CertKind.WRONG_NAME, "certificate-host-mismatch"),
    (CertKind.EXPIRED, "certificate-expired"),
    (CertKind.NOT_YET_VALID, "validation-failure"),
])
def test_verify_refuses_bad_certificates(tmp_path: Path, kind: CertKind,
                                         result_type: str) -> None:
    pki = LabPKI(tmp_path)
    mx = MxServer(pki.server_context(MX, kind))
    with pytest.raises(TlsPolicyError) as info:
        with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert info.value.result_type == result_type
    assert info.value.stage == "handshake"
    assert "certificate verify failed" in info.value.reason
    assert mx.received == []


def test_verify_refuses_tls_below_1_2(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    with warnings.catch_warnings():  # lab.pki sets TLSv1 as the floor: deprecated in ssl
        warnings.simplefilter("ignore", DeprecationWarning)
        mx = MxServer(pki.server_context(MX, tls_max="1.1"))
    with pytest.raises(TlsPolicyError) as info:
        with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert info.value.result_type == "validation-failure"
    assert mx.received == []


def test_verify_requires_starttls(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = MxServer(None)
    with pytest.raises(TlsPolicyError) as info:
        with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert info.value.result_type == "starttls-not-supported"
    assert mx.received == []


@pytest.mark.parametrize("reply", ["454 4.7.0 TLS not available", "502 5.5.1 no", "530 x"])
def test_starttls_refused(tmp_path: Path, reply: str) -> None:
    pki = LabPKI(tmp_path)
    mx = ScriptedMx(pki.server_context(MX), starttls_reply=reply)
    with pytest.raises(TlsPolicyError) as info:
        with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert info.value.result_type == "starttls-not-supported"
    assert info.value.code == int(reply[:3])
    # opportunistic goes on in plaintext on the same session
    mx2 = ScriptedMx(pki.server_context(MX), starttls_reply=reply)
    result = with_mx(mx2, lambda port: send(port, "opportunistic", pki.ca_file))
    assert result.tls == "none" and mx2.received[0][1] is False


def test_opportunistic_accepts_any_certificate_and_sends_sni(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = MxServer(pki.server_context(MX, CertKind.SELF_SIGNED))
    result = with_mx(mx, lambda port: send(port, "opportunistic", pki.ca_file))
    assert result.tls == "unverified"
    assert mx.sni == [MX] and mx.received[0].tls


def test_none_never_starts_tls(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = MxServer(pki.server_context(MX))
    result = with_mx(mx, lambda port: send(port, "none", pki.ca_file))
    assert result.tls == "none" and mx.sni == [] and not mx.received[0].tls


def test_helo_fallback_when_ehlo_refused(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = ScriptedMx(pki.server_context(MX), refuse_ehlo=True)
    log = Recorder()
    result = with_mx(mx, lambda port: send(port, "opportunistic", pki.ca_file, log))
    assert result.tls == "none"  # HELO: no extensions, so no STARTTLS
    assert mx.commands[0][:2] == ["EHLO", "HELO"]
    assert any("falling back to HELO" in line for line in log.lines())
    mx2 = ScriptedMx(pki.server_context(MX), refuse_ehlo=True)
    with pytest.raises(TlsPolicyError):
        with_mx(mx2, lambda port: send(port, "verify", pki.ca_file))


def test_injected_plaintext_after_220_is_dropped(tmp_path: Path) -> None:
    """I1: replies appended to '220 ready' must not be taken as answers inside TLS."""
    pki = LabPKI(tmp_path)
    injected = b"250-mx.victim.test\r\n250 AUTH PLAIN\r\n250 2.1.0 injected\r\n"
    mx = ScriptedMx(pki.server_context(MX), inject=injected)
    log = Recorder()
    result = with_mx(mx, lambda port: send(port, "verify", pki.ca_file, log))
    assert result.discarded_plaintext == len(injected)
    assert result.tls == "verified"
    # EHLO again inside TLS, and every later command was answered by the real server
    assert mx.commands[0] == ["EHLO", "STARTTLS", "EHLO (tls)", "MAIL (tls)", "RCPT (tls)",
                              "DATA (tls)", "QUIT (tls)"]
    assert any("dropped" in line for line in log.lines())


def test_handshake_failure_is_typed(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    mx = ScriptedMx(pki.server_context(MX), break_handshake=True)
    with pytest.raises(TransientSmtpError) as info:
        with_mx(mx, lambda port: send(port, "opportunistic", pki.ca_file))
    assert info.value.stage == "handshake"
    mx2 = ScriptedMx(pki.server_context(MX), break_handshake=True)
    with pytest.raises(TlsPolicyError) as policy_info:
        with_mx(mx2, lambda port: send(port, "verify", pki.ca_file))
    assert policy_info.value.result_type == "validation-failure"


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)

    async def main() -> SmtpError:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(SmtpError) as info:
            await send(port, "verify", pki.ca_file)
        return info.value

    error = asyncio.run(main())
    assert isinstance(error, TransientSmtpError) and error.stage == "connect"


def test_permanent_reply_to_rcpt(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)

    class Refusing(MxServer):
        async def handle_RCPT(self, server: object, session: object, envelope: object,
                              address: str, options: list[str]) -> str:
            return "550 5.1.1 no such user"

    mx = Refusing(pki.server_context(MX))
    with pytest.raises(PermanentSmtpError) as info:
        with_mx(mx, lambda port: send(port, "verify", pki.ca_file))
    assert info.value.code == 550 and info.value.stage == "rcpt"
    assert info.value.tls == "verified"


def test_timeout_bounds_a_silent_server(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)

    async def main() -> SmtpError:
        release = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(SmtpError) as info:
                await deliver("127.0.0.1", port, MX, MESSAGE, "a@sender.test",
                              "b@victim.test", "verify", pki.ca_file, Recorder(), timeout=0.3)
            return info.value
        finally:
            release.set()
            server.close()
            await server.wait_closed()

    error = asyncio.run(main())
    assert isinstance(error, TransientSmtpError) and error.stage == "timeout"
