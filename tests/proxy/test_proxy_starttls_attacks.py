"""The STARTTLS-class attacks through the real proxy: loopback sockets, real TLS, a real
aiosmtpd MX, and both a test client and the lab senders' own SMTP client."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from pathlib import Path
from typing import Literal

import pytest

from lab.attacks.abort_handshake import AbortHandshake
from lab.attacks.base import SmtpAttack
from lab.attacks.inject_response import InjectResponse
from lab.attacks.legacy_tls_only import LegacyTlsOnly
from lab.attacks.passthrough import Passthrough
from lab.attacks.reject_starttls import RejectStarttls
from lab.attacks.reset_after_handshake import ResetAfterHandshake
from lab.senders.base import OutgoingMessage
from lab.senders.smtp_client import deliver
from lab.senders.smtp_outcome import (
    DeliveryResult,
    TlsPolicyError,
    TlsRequirement,
    TransientSmtpError,
)

from .kit import MX, Client, Lab, run, start_lab
from .kit import deliver as kit_deliver

pytestmark = pytest.mark.integration


def probe() -> OutgoingMessage:
    return OutgoingMessage.probe("user@victim.test", "starttls-attacks")


async def lab_client(lab: Lab, tls: TlsRequirement,
                     message: OutgoingMessage | None = None) -> DeliveryResult:
    """The lab senders' SMTP client (the one the reference sender uses) through the proxy."""
    message = message or probe()
    return await deliver("127.0.0.1", lab.port, MX, message.as_bytes(), message.mail_from,
                         message.rcpt_to, tls, lab.pki.ca_file, lab.log.emit, timeout=10.0)


async def with_lab(tmp: Path, attack: SmtpAttack) -> Lab:
    lab = await start_lab(tmp)
    lab.proxy.configure(MX, [attack])
    return lab


# ---------------------------------------------------------------- reject-starttls

def test_reject_starttls_keeps_the_offer_and_refuses_the_verb(tmp_path: Path) -> None:
    message = probe()

    async def main() -> None:
        lab = await with_lab(tmp_path, RejectStarttls(code=454))
        try:
            with pytest.raises(TlsPolicyError) as info:
                await lab_client(lab, "verify")
            await lab.wait("close")
            client = await Client.connect(lab.port)
            await client.reply()
            ehlo = await client.command(b"EHLO sender.test")
            assert ehlo.has_keyword("STARTTLS")  # still advertised
            refusal = await client.command(b"STARTTLS")
            assert (refusal.code, refusal.lines) == (454, ("4.7.0 TLS not available due to "
                                                           "temporary reason",))
            assert (await kit_deliver(client, message.as_bytes(), ehlo)).code == 250
            await client.close()
            await lab.wait("close", 2)
        finally:
            await lab.close()
        assert info.value.stage == "starttls" and info.value.code == 454
        assert info.value.result_type == "starttls-not-supported"
        assert [(m.tls, m.mail_from) for m in lab.sink.messages] == [(False,
                                                                      "probe@sender.test")]
        assert len(lab.events("attack-fired")) == 2
        for close in lab.events("close"):
            assert not any(e["text"] == "STARTTLS" for e in close["transcript"]
                           if e["leg"] == "server")
    run(main)


# ---------------------------------------------------------------- abort-handshake

@pytest.mark.parametrize("after", ["client-hello", "220"])
def test_abort_handshake_cuts_the_tls_handshake(tmp_path: Path,
                                               after: Literal["client-hello", "220"]) -> None:
    async def main() -> None:
        lab = await with_lab(tmp_path, AbortHandshake(after=after))
        try:
            with pytest.raises(TlsPolicyError) as info:
                await lab_client(lab, "verify")
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        assert info.value.stage == "handshake"
        assert lab.sink.messages == []
        (fired,) = lab.events("attack-fired")
        if after == "220":
            assert fired["detail"] == "cut the connection right after the 220 to STARTTLS"
        else:
            assert fired["detail"].startswith("cut the connection after the sender's "
                                              "ClientHello (")
            assert close["reason"] == "TLS handshake cut by the attack after the ClientHello"
        # the MX itself accepted STARTTLS: the 220 on the client leg is the genuine one
        assert any(e["leg"] == "server" and e["dir"] == "in" and e["text"].startswith("220 ")
                   and "TLS" in e["text"] for e in close["transcript"])
    run(main)


def test_abort_handshake_without_policy_checks_still_breaks_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await with_lab(tmp_path, AbortHandshake())
        try:
            with pytest.raises(TransientSmtpError) as info:
                await lab_client(lab, "opportunistic")
            await lab.wait("close")
        finally:
            await lab.close()
        # what an opportunistic sender sees, and (in the catalogue) answers with plaintext
        assert info.value.stage == "handshake" and lab.sink.messages == []
    run(main)


# ---------------------------------------------------------------- legacy-tls-only

def legacy_client_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying client that still allows TLS 1.0 and 1.1 (a lax, old-fashioned sender)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca_file))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


@pytest.mark.parametrize(("version", "negotiated"), [("1.0", "TLSv1"), ("1.1", "TLSv1.1")])
def test_legacy_tls_only_really_negotiates_the_old_version(
        tmp_path: Path, version: Literal["1.0", "1.1"], negotiated: str) -> None:
    message = probe()

    async def main() -> None:
        lab = await with_lab(tmp_path, LegacyTlsOnly(version=version))
        try:
            client = await Client.connect(lab.port)
            await client.reply()
            await client.command(b"EHLO sender.test")
            assert (await client.command(b"STARTTLS")).code == 220
            await client.starttls(legacy_client_context(lab.pki.ca_file))
            sslobj = client.writer.get_extra_info("ssl_object")
            assert sslobj is not None and sslobj.version() == negotiated
            assert (await kit_deliver(client, message.as_bytes())).code == 250
            await client.close()
            await lab.wait("close")
        finally:
            await lab.close()
        legs = {e["leg"]: e for e in lab.events("tls")}
        assert legs["client"]["ok"] and legs["client"]["version"] == negotiated
        assert legs["client"]["cert"] == "valid" and legs["client"]["sni"] == MX
        assert legs["server"]["version"] in ("TLSv1.2", "TLSv1.3")  # the MX leg is modern
        assert [m.tls for m in lab.sink.messages] == [True]
    run(main)


def test_legacy_tls_only_is_refused_by_a_tls12_sender(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await with_lab(tmp_path, LegacyTlsOnly(version="1.1"))
        try:
            with pytest.raises(TlsPolicyError) as info:
                await lab_client(lab, "verify")
            await lab.wait("close")
            client = await Client.connect(lab.port)
            await client.reply()
            await client.command(b"EHLO sender.test")
            await client.command(b"STARTTLS")
            with pytest.raises(OSError):  # an SSL error or a reset, as OpenSSL sees fit
                await client.starttls(lab.pki.client_context())  # TLS 1.2 minimum
            await lab.wait("close", 2)
        finally:
            await lab.close()
        assert info.value.stage == "handshake" and lab.sink.messages == []
        client_legs = [e for e in lab.events("tls") if e["leg"] == "client"]
        assert len(client_legs) == 2 and not any(e["ok"] for e in client_legs)
        assert all("protocol" in e["error"].lower() for e in client_legs)
    run(main)


# ---------------------------------------------------------------- reset-after-handshake

@pytest.mark.parametrize(("at", "stage"), [("MAIL", "mail"), ("EHLO", "ehlo")])
def test_reset_after_handshake_breaks_a_verified_session(
        tmp_path: Path, at: Literal["MAIL", "EHLO"], stage: str) -> None:
    async def main() -> None:
        lab = await with_lab(tmp_path, ResetAfterHandshake(at=at))
        try:
            with pytest.raises(TransientSmtpError) as info:
                await lab_client(lab, "verify")
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        # TLS was verified (the certificate is valid), then the session died without a reply:
        # the facts the opportunistic control keys its plaintext retry on
        assert (info.value.stage, info.value.tls, info.value.code) == (stage, "verified", None)
        assert lab.sink.messages == []
        legs = {e["leg"]: e for e in lab.events("tls")}
        assert legs["client"]["ok"] and legs["client"]["cert"] == "valid"
        (fired,) = lab.events("attack-fired")
        assert fired["detail"].startswith(f"TLS was up; cut both legs at the sender's {at}")
        assert not any(e["text"].startswith("MAIL") for e in close["transcript"]
                       if e["leg"] == "server")
    run(main)


# ---------------------------------------------------------------- inject-response

class VulnerableClient:
    """A deliberately vulnerable sender: it keeps whatever was buffered when TLS started
    (asyncio's StreamWriter.start_tls keeps the reader's buffer) and reads it as replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def send(cls, port: int, ca_file: Path, message: bytes) -> str:
        """Deliver over STARTTLS; return how it ended: 'delivered' or the reply it gave up on."""
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        try:
            return await client.converse(ca_file, message)
        finally:
            client.writer.close()
            with contextlib.suppress(OSError):
                await client.writer.wait_closed()

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await self.reader.readline()).decode()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def command(self, line: str) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()

    async def converse(self, ca_file: Path, message: bytes) -> str:
        await self.reply()
        await self.command("EHLO sender.test")
        code, text = await self.command("STARTTLS")
        assert code == 220, text
        ctx = ssl.create_default_context(cafile=str(ca_file))
        await self.writer.start_tls(ctx, server_hostname=MX)  # the buffer is NOT discarded
        for line, ok in [("EHLO sender.test", 250), ("MAIL FROM:<probe@sender.test>", 250),
                         ("RCPT TO:<user@victim.test>", 250), ("DATA", 354)]:
            code, text = await self.command(line)
            if code != ok:
                await self.command("QUIT")
                return f"gave up: {text}"
        code, text = await self.command(message.decode() + "\r\n.")
        return "delivered" if code == 250 else f"gave up: {text}"


MESSAGE = b"From: probe@sender.test\r\nMessage-ID: <vuln@sender.test>\r\n\r\nhello"


def test_vulnerable_client_delivers_without_injection(tmp_path: Path) -> None:
    # the control: the vulnerable client is a working sender when nobody injects anything
    async def main() -> str:
        lab = await with_lab(tmp_path, Passthrough())
        try:
            return await VulnerableClient.send(lab.port, lab.pki.ca_file, MESSAGE)
        finally:
            await lab.close()
    assert run(main) == "delivered"


def test_injection_makes_a_vulnerable_client_give_up_but_not_the_lab_client(
        tmp_path: Path) -> None:
    attack = InjectResponse()

    async def main() -> tuple[str, DeliveryResult]:
        lab = await with_lab(tmp_path, attack)
        try:
            vulnerable = await VulnerableClient.send(lab.port, lab.pki.ca_file, MESSAGE)
            assert lab.sink.messages == []
            result = await lab_client(lab, "verify")
            await lab.wait("close", 2)
        finally:
            await lab.close()
        return vulnerable, result

    vulnerable, result = run(main)
    # the vulnerable client read the injected 421 as the MX's answer to its EHLO inside TLS
    assert vulnerable == ("gave up: 421 4.7.0 Service closing transmission channel "
                          "(injected by the attacker)")
    # the lab's client dropped exactly the injected bytes and delivered over verified TLS
    assert result.discarded_plaintext == len(attack.injected)
    assert result.tls == "verified"
