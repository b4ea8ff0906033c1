"""The whole receiving side on a backend: a world publishes TLS-RPT, a client finds the
record and the report host through the lab's DNS, POSTs a report to the collector and mails
one through the report MX's proxy (where an attack may stand), and each arrives as one
``("collector", "tlsrpt-report")`` event. Real sockets, real TLS, real DNS."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import dnslib
import pytest

from lab.backends.loopback import LoopbackBackend
from lab.control import RemoteServices
from lab.events import COLLECTOR, PROXY, EventLog
from lab.pki import LabPKI
from lab.scenario import load_text
from lab.tlsrpt import GZIP_TYPE, REPORT_MAILBOX, discover
from lab.world import Topology
from lab.world_setup import publish, service_config
from tests.test_control import _lab
from tests.tlsrpt.kit import body, mail

pytestmark = pytest.mark.integration
TIMEOUT = 20.0
SCENARIO = """summary: s
refs: [RFC 8460]
teach: t
world:
  policy: {mode: enforce}
  tlsrpt: {rua: [https, mailto], https_fails: 1}
phases:
  - attacks: [{strip-starttls: {mx: mx.reports.test}}]
    expect: {outcome: [delivered-tls]}
"""


GARBAGE = (b"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: application/tlsrpt+gzip\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n--b")


def query(dns: tuple[str, int], name: str, qtype: str) -> list[str]:
    reply = dnslib.DNSRecord.parse(dnslib.DNSRecord.question(name, qtype).send(
        dns[0], dns[1], False, 5))
    if qtype == "TXT":
        return [b"".join(r.rdata.data).decode() for r in reply.rr]
    return [str(r.rdata) for r in reply.rr]


def post(address: tuple[str, int], host: str, path: str, ca: Path, data: bytes) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(address, TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {GZIP_TYPE}\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def send_mail(address: tuple[str, int], message: bytes) -> bool:
    """Deliver to the report MX as a sender would; True when STARTTLS was offered."""
    with smtplib.SMTP(address[0], address[1], timeout=TIMEOUT) as client:
        client.ehlo("sender.test")
        offered = client.has_extn("starttls")
        client.sendmail("tlsrpt@sender.test", [REPORT_MAILBOX], message)
    return offered


def reports(log: EventLog) -> list[dict[str, Any]]:
    return [dict(e.data) for e in log.select(source=COLLECTOR)]


def test_reports_reach_the_collector_and_the_mailbox_on_loopback(tmp_path: Path) -> None:
    phase = load_text(SCENARIO, "t.yaml", "t").phases[0]

    async def main() -> None:
        pki, log, backend = LabPKI(tmp_path), EventLog(check=True), LoopbackBackend()
        topo = await backend.up(tmp_path, pki, log)
        try:
            publish(backend.services, service_config(phase.world, topo, phase.attacks))
            dns = (topo.dns, topo.dns_port)
            record = discover([[t] for t in await asyncio.to_thread(
                query, dns, "_smtp._tls.victim.test", "TXT")])
            assert record is not None
            https, mailto = record.destinations
            # https://tlsrpt.reports.test:<port>/v1/tlsrpt (loopback ports are not 443)
            host, _, rest = https.removeprefix("https://").partition(":")
            port, path = int(rest.partition("/")[0]), "/" + rest.partition("/")[2]
            [address] = await asyncio.to_thread(query, dns, host, "A")
            statuses = [await asyncio.to_thread(post, (address, port), host, path,
                                                pki.ca_file, body(gz=True)) for _ in range(2)]
            assert statuses == [500, 200]  # https_fails: 1
            [mx] = await asyncio.to_thread(query, dns, mailto.partition("@")[2], "MX")
            [mx_address] = await asyncio.to_thread(query, dns, mx.split()[1], "A")
            big = b"X-Pad: 1\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1200  # over 1 MiB
            for message in (mail(), GARBAGE, big, mail()):
                offered = await asyncio.to_thread(send_mail, (mx_address, topo.smtp_port),
                                                  message)
                assert not offered  # strip-starttls stands on the path to the report mailbox

            def six(events: Any) -> bool:
                return sum(1 for e in events if e.source == COLLECTOR) >= 6
            assert await log.wait_for(six, 0, time.monotonic() + TIMEOUT)
        finally:
            await backend.down()
        failed, ok, by_mail, garbage, large, again = reports(log)
        assert {f["section"] for f in garbage["findings"]} == {
            "RFC 8460 3", "RFC 8460 5.3.1", "RFC 8460 5.2", "RFC 8460 5.1"}
        assert [f["section"] for f in large["findings"]] == ["lab limit"]
        assert again["findings"] == []  # the mailbox keeps serving
        assert (failed["status"], failed["failed_on_purpose"]) == (500, True)
        assert (ok["status"], ok["findings"], ok["policy_domains"]) == (200, [], ["victim.test"])
        assert by_mail["transport"] == "mailto" and by_mail["findings"] == []
        assert (by_mail["tls"], by_mail["mx"]) == (False, "mx.reports.test")
        assert by_mail["tls_report_domain"] == "victim.test"
        fired = [e for e in log.select(source=PROXY, kind="attack-fired")]
        assert {e.get("mx") for e in fired} == {"mx.reports.test"}
        assert log.undeclared == []

    asyncio.run(main())


def test_the_collector_runs_in_the_policy_role_over_the_control_api(tmp_path: Path) -> None:
    """What the compose backend does: RemoteServices tells the policy container to serve the
    collector; the report arrives as an event in that container's buffer."""
    phase = load_text(SCENARIO, "t.yaml", "t").phases[0]

    async def main() -> None:
        servers, clients, runner_pki = await _lab(tmp_path)
        by = {s.label: s for s in servers}
        try:
            policy = by["policy"].address
            assert policy is not None
            topo = Topology(dns="127.0.0.1", policy=policy[0], mx_fronts=("127.0.0.11",) * 2,
                            mx_backs=("127.0.0.21",) * 2, attacker="127.0.0.30",
                            https_port=policy[1])
            config = service_config(phase.world, topo, ())
            await asyncio.to_thread(publish, RemoteServices(clients), config)
            host = "tlsrpt.reports.test"
            statuses = [await asyncio.to_thread(post, policy, host, "/v1/tlsrpt",
                                                runner_pki.ca_file, body(gz=True))
                        for _ in range(2)]
            assert statuses == [500, 200]
            events = (await clients["policy"].request("GET", "/events?since=0"))["events"]
            got = [e["data"]["status"] for e in events if e["source"] == COLLECTOR]
            assert got == [500, 200]
        finally:
            for server in servers:
                await server.close()

    asyncio.run(main())
