"""The MITM proxy on real loopback sockets with real TLS, in front of a real aiosmtpd MX."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from lab.attacks.passthrough import Passthrough
from lab.attacks.strip_starttls import StripStarttls
from lab.attacks.swap_certificate import SwapCertificate
from lab.pki import CertKind
from lab.senders.base import OutgoingMessage

from .kit import MX, Client, deliver, no_verify_context, run, start_lab

pytestmark = pytest.mark.integration


def probe() -> OutgoingMessage:
    return OutgoingMessage.probe("user@victim.test", "proxy-test")


def test_passthrough_tunnels_genuine_tls_to_the_mx(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [Passthrough()])
        try:
            client = await Client.connect(lab.port)
            assert (await client.reply()).code == 220
            ehlo = await client.command(b"EHLO sender.test")
            assert ehlo.has_keyword("STARTTLS")
            assert (await client.command(b"STARTTLS")).code == 220
            await client.starttls(lab.pki.client_context())  # verifies the lab CA and name
            final = await deliver(client, probe().as_bytes())
            assert final.code == 250
            await client.close()
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        assert [m.tls for m in lab.sink.messages] == [True]
        assert close["tunnel_bytes"]["client"] > 0 and close["mx"] == MX
        assert lab.events("attack-fired") == [] and lab.events("message") == []
        assert lab.events("connect")[0]["peer"].startswith("127.0.0.1:")
        assert any("tunnel" in e["text"] for e in close["transcript"])
    run(main)


def test_strip_starttls_downgrades_to_plaintext(tmp_path: Path) -> None:
    message = probe()

    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [StripStarttls()])
        try:
            client = await Client.connect(lab.port)
            await client.reply()
            ehlo = await client.command(b"EHLO sender.test")
            assert not ehlo.has_keyword("STARTTLS")
            assert (await client.command(b"STARTTLS")).code == 502
            assert (await deliver(client, message.as_bytes(), ehlo)).code == 250
            await client.close()
            await lab.wait("close")
        finally:
            await lab.close()
        assert [m.tls for m in lab.sink.messages] == [False]
        fired = lab.events("attack-fired")
        assert {f["attack"] for f in fired} == {"strip-starttls"} and len(fired) == 2
        (seen,) = lab.events("message")
        assert seen["message_id"] == message.message_id
        assert seen["client_leg"] == "plaintext" and seen["rcpt_to"] == ["user@victim.test"]
    run(main)


async def _starttls_through(lab_port: int, ctx: ssl.SSLContext) -> Client:
    client = await Client.connect(lab_port)
    await client.reply()
    assert (await client.command(b"EHLO sender.test")).has_keyword("STARTTLS")
    assert (await client.command(b"STARTTLS")).code == 220
    await client.starttls(ctx)
    return client


@pytest.mark.parametrize("kind", [CertKind.SELF_SIGNED, CertKind.EXPIRED, CertKind.ROGUE_CA,
                                  CertKind.WRONG_NAME, CertKind.NOT_YET_VALID])
def test_forged_certificate_is_rejected_by_a_verifying_client(tmp_path: Path,
                                                              kind: CertKind) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [SwapCertificate(certificate=kind)])
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await _starttls_through(lab.port, lab.pki.client_context())
            await lab.wait("close")
        finally:
            await lab.close()
        assert lab.sink.messages == []
        client_tls = [e for e in lab.events("tls") if e["leg"] == "client"]
        assert len(client_tls) == 1
        assert client_tls[0]["ok"] is False and client_tls[0]["error"]
        assert client_tls[0]["sni"] == MX and client_tls[0]["cert"] == kind.value
        (fired,) = lab.events("attack-fired")
        assert fired["detail"] == f"presented {kind.value} certificate for {MX}"
    run(main)


@pytest.mark.parametrize("kind", [CertKind.SELF_SIGNED, CertKind.VALID])
def test_completed_interception_delivers_and_reports(tmp_path: Path, kind: CertKind) -> None:
    message = probe()

    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [SwapCertificate(certificate=kind)])
        try:
            # A valid lab certificate passes even full verification: the sanity case.
            ctx = lab.pki.client_context() if kind is CertKind.VALID else no_verify_context()
            client = await _starttls_through(lab.port, ctx)
            assert (await deliver(client, message.as_bytes())).code == 250
            await client.close()
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        assert [m.tls for m in lab.sink.messages] == [True]
        (seen,) = lab.events("message")
        assert seen["client_leg"] == "intercepted" and seen["message_id"] == message.message_id
        legs = {e["leg"]: e for e in lab.events("tls")}
        assert legs["server"]["ok"] and legs["client"]["ok"]
        assert legs["client"]["sni"] == MX
        assert legs["client"]["version"] in ("TLSv1.2", "TLSv1.3") and legs["client"]["cipher"]
        inside = [e for e in close["transcript"] if e["tls"] == "intercepted"]
        assert any(e["text"].startswith("MAIL FROM:") for e in inside)
    run(main)


def test_sni_is_recorded_as_the_sender_sent_it(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [SwapCertificate()])
        try:
            client = await Client.connect(lab.port)
            await client.reply()
            await client.command(b"EHLO sender.test")
            await client.command(b"STARTTLS")
            await client.starttls(no_verify_context(), name="other.victim.test")
            await client.command(b"QUIT")
            await client.close()
            await lab.wait("close")
        finally:
            await lab.close()
        (client_tls,) = [e for e in lab.events("tls") if e["leg"] == "client"]
        assert client_tls["sni"] == "other.victim.test"
    run(main)


def test_trailing_plaintext_never_reaches_the_mx(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [SwapCertificate()])
        try:
            client = await Client.connect(lab.port)
            await client.reply()
            await client.command(b"EHLO sender.test")
            reply = await client.command(b"STARTTLS\r\nMAIL FROM:<evil@attacker.test>")
            assert reply.code == 220
            await client.starttls(no_verify_context())
            assert (await deliver(client, probe().as_bytes())).code == 250
            await client.close()
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        (dropped,) = lab.events("trailing-data-dropped")
        assert dropped["leg"] == "client"
        assert [m.mail_from for m in lab.sink.messages] == ["probe@sender.test"]
        assert not any("evil" in e["text"] for e in close["transcript"]
                       if e["leg"] == "server")
    run(main)


def test_idle_connection_times_out_and_close_ends_everything(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path, read_timeout=0.3)
        lab.proxy.configure(MX, [Passthrough()])
        try:
            client = await Client.connect(lab.port)
            await client.reply()
            (close,) = await lab.wait("close")
            assert "idle" in close["reason"]
            assert lab.events("timeout")
            await client.close()
            lab.proxy.configure(MX, [Passthrough()])
            second = await Client.connect(lab.port)
            await second.reply()
        finally:
            await lab.close()
        closes = lab.events("close")
        assert len(closes) == 2 and lab.proxy.connections == 0
        await second.close()
    run(main)
