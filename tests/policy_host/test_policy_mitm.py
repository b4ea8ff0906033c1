"""The attacker's mitmproxy in front of the policy host (needs the ``mitm`` extra)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from lab.attacks.policy_mitm import PolicyMitm
from lab.events import EventLog
from lab.pki import LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import POLICY_PATH, PolicyHost
from lab.senders.mtasts import parse_policy

pytest.importorskip("mitmproxy", reason="the mitm extra: pip install mtasts-lab[mitm]")

with warnings.catch_warnings():
    # mitmproxy's add-ons import ldap3, passlib and pyasn1, which warn about their own
    # deprecated APIs on import: not ours to fix, and imported once here, not mid-test
    warnings.simplefilter("ignore", DeprecationWarning)
    import mitmproxy.addons
    import mitmproxy.master  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    # mitmproxy 11 hands pyOpenSSL objects that pyOpenSSL 24 deprecates: not ours to fix
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mitmproxy"),
]

DOMAIN = "victim.test"
HOST = f"mta-sts.{DOMAIN}"
POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmax_age: 86400\n"
TIMEOUT = 20.0


def lax() -> ssl.SSLContext:
    """A sender that checks no certificate on the policy fetch."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def get(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname=HOST)
    try:
        writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                     .encode())
        async with asyncio.timeout(TIMEOUT):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def test_mitm_presents_its_own_ca_and_rewrites_the_policy(tmp_path: Path) -> None:
    response = PolicyMitm(mode="none").transform(PolicyResponse(body=POLICY), DOMAIN)

    async def main() -> None:
        pki = LabPKI(tmp_path)
        log = EventLog()
        host = PolicyHost(pki, log.emit)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        await host.start(sock)
        host.configure({DOMAIN: response})
        port = sock.getsockname()[1]

        def events(kind: str) -> list[dict[str, Any]]:
            return [dict(e.data) for e in log.select(source="policy", kind=kind)]

        async def wait(kind: str) -> list[dict[str, Any]]:
            found = await log.wait_for(
                lambda evs: [e for e in evs if e.source == "policy" and e.kind == kind], 0,
                time.monotonic() + TIMEOUT)
            assert found, kind
            return events(kind)

        try:
            # a sender that trusts only the lab CA refuses the attacker's certificate
            with pytest.raises(ssl.SSLCertVerificationError):
                await get(port, pki.client_context())
            [failed] = await wait("mitm-handshake-failed")
            assert failed["applied"] == ["policy-mitm"] and failed["sni"] == HOST
            assert events("intercept")[0]["attacks"] == ["policy-mitm"]
            assert "applied" not in events("intercept")[0]
            assert events("fetch") == []  # nothing reached the genuine host
            # mitmproxy's last word on the connection, after its finding: what the oracle
            # waits for before judging (lab.waits.open_sessions)
            [closed] = await wait("mitm-closed")
            assert closed["via"] == events("intercept")[0]["via"] != ""
            kinds = [e.kind for e in log.select(source="policy")]
            assert kinds.index("mitm-handshake-failed") < kinds.index("mitm-closed")

            # one that checks nothing gets the attacker's policy, fetched from the real host
            answer = await get(port, lax())
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert parse_policy(body.decode()).mode == "none"
            [rewrite] = await wait("mitm-rewrite")
            assert rewrite["applied"] == ["policy-mitm"] and rewrite["genuine_status"] == 200
            [genuine] = await wait("fetch")
            assert genuine["status"] == 200 and genuine["sni"] == HOST
            assert genuine["applied"] == ["policy-mitm"]
            assert [e["via"] for e in events("connect")] == ["attacker"]

            # the certificate names the policy host but comes from the attacker's own CA
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=lax(),
                                                      server_hostname=HOST)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            cert = x509.load_der_x509_certificate(der)
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            assert HOST in names.value.get_values_for_type(x509.DNSName)
            assert "mtasts-lab" not in cert.issuer.rfc4514_string()
        finally:
            await asyncio.wait_for(host.close(), 15)

    asyncio.run(main())
