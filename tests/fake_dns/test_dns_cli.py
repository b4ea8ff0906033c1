"""``python -m fake_dns`` as a real subprocess: serving, logging, reload, signals, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dns_helpers import run, tcp_query, udp_query
from dnslib import QTYPE, DNSRecord

import fake_dns
from fake_dns import bind_pair
from fake_dns.__main__ import UsageError, format_entry, parse_listen
from fake_dns.server import QueryLogEntry

pytestmark = pytest.mark.integration
REPO = Path(fake_dns.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
LINE_DEADLINE = 10.0
ZONE = """\
victim.test. 300 IN MX 10 mx1.victim.test.
mx1.victim.test. IN A 127.0.0.11
_mta-sts.victim.test. TXT "v=STSv1; id=1;"
"""


@contextlib.asynccontextmanager
async def fake_dns_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The CLI as a child process; killed by its PID if still running at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fake_dns", *args, cwd=REPO, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def read_line(stream: asyncio.StreamReader | None, pattern: str = "") -> str:
    """The next line containing ``pattern`` (deadline-bound)."""
    assert stream is not None
    async with asyncio.timeout(LINE_DEADLINE):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"stream ended before a line with {pattern!r}")
            line = raw.decode().rstrip("\n")
            if pattern in line:
                return line


async def listening_port(proc: asyncio.subprocess.Process) -> int:
    line = await read_line(proc.stdout, "listening")
    match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(udp\+tcp\)", line)
    assert match, line
    return int(match.group(1))


def answers(reply: DNSRecord | None) -> list[str]:
    assert reply is not None
    return [f"{QTYPE.get(rr.rtype)} {rr.rdata}" for rr in reply.rr]


def test_serves_logs_reloads_and_stops_on_sigterm(tmp_path: Path) -> None:
    zone_file = tmp_path / "victim.zone"
    zone_file.write_text(ZONE)

    async def body() -> None:
        async with fake_dns_process("--zone", str(zone_file), "--listen", "127.0.0.1:0",
                                    "--log") as proc:
            addr = ("127.0.0.1", await listening_port(proc))
            mx = await udp_query(addr, DNSRecord.question("victim.test", "MX"))
            assert answers(mx) == ["MX 10 mx1.victim.test."]
            logged = await read_line(proc.stdout, "victim.test")
            assert logged.startswith("udp 127.0.0.1:") and " MX NOERROR " in logged
            a = await tcp_query(addr, DNSRecord.question("mx1.victim.test"))
            assert answers(a) == ["A 127.0.0.11"]
            assert (await read_line(proc.stdout, "mx1.victim.test")).startswith("tcp ")

            # a broken file on SIGHUP keeps the old zone
            zone_file.write_text(ZONE + "broken.test. A 999.1.1.1\n")
            proc.send_signal(signal.SIGHUP)
            err = await read_line(proc.stderr, "reload failed")
            assert f"{zone_file}:4:" in err
            assert answers(await udp_query(addr, DNSRecord.question("mx1.victim.test"))) == [
                "A 127.0.0.11"]

            zone_file.write_text(ZONE.replace("127.0.0.11", "127.6.6.6") + "$FAIL x.test. "
                                 "servfail\n")
            proc.send_signal(signal.SIGHUP)
            await read_line(proc.stdout, "reloaded")
            assert answers(await udp_query(addr, DNSRecord.question("mx1.victim.test"))) == [
                "A 127.6.6.6"]
            failed = await udp_query(addr, DNSRecord.question("x.test"))
            assert failed is not None and failed.header.rcode == 2
            assert "failure=servfail" in await read_line(proc.stdout, "x.test")

            proc.terminate()
            async with asyncio.timeout(LINE_DEADLINE):
                assert await proc.wait() == 0

    run(body())


def test_sigint_stops_it_cleanly(tmp_path: Path) -> None:
    zone_file = tmp_path / "z.zone"
    zone_file.write_text(ZONE)

    async def body() -> None:
        async with fake_dns_process("--zone", str(zone_file), "--listen",
                                    "127.0.0.1:0") as proc:
            addr = ("127.0.0.1", await listening_port(proc))
            assert answers(await udp_query(addr, DNSRecord.question("mx1.victim.test")))
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(LINE_DEADLINE):
                assert await proc.wait() == 0
            _, stderr = await proc.communicate()
            assert stderr == b""

    run(body())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fake_dns", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=30, check=False)


def test_bad_zone_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    zone_file = tmp_path / "bad.zone"
    zone_file.write_text(ZONE + '_mta-sts.victim.test. TXT "unterminated\n')
    done = run_cli("--zone", str(zone_file), "--listen", "127.0.0.1:0")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert f"{zone_file}:4: unterminated quoted string" in done.stderr
    assert done.stdout == ""


def test_missing_zone_file_exits_2(tmp_path: Path) -> None:
    done = run_cli("--zone", str(tmp_path / "absent.zone"), "--listen", "127.0.0.1:0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot read zone file" in done.stderr


@pytest.mark.parametrize(("listen", "fragment"), [
    ("nonsense", "expected ADDR:PORT"),
    ("127.0.0.1", "expected ADDR:PORT"),
    ("127.0.0.1:99999", "bad port"),
    ("127.0.0.1:http", "bad port"),
    ("localhost:53", "not an IP address"),
    ("192.0.2.1:5353", "not a loopback address"),
    ("[2001:db8::1]:5353", "not a loopback address"),
])
def test_bad_listen_exits_2(tmp_path: Path, listen: str, fragment: str) -> None:
    zone_file = tmp_path / "z.zone"
    zone_file.write_text(ZONE)
    done = run_cli("--zone", str(zone_file), "--listen", listen)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert fragment in done.stderr


def test_port_in_use_exits_2(tmp_path: Path) -> None:
    zone_file = tmp_path / "z.zone"
    zone_file.write_text(ZONE)
    udp, tcp = bind_pair("127.0.0.1", 0)
    try:
        done = run_cli("--zone", str(zone_file), "--listen",
                       f"127.0.0.1:{udp.getsockname()[1]}")
    finally:
        udp.close()
        tcp.close()
    assert done.returncode == 2 and "cannot bind" in done.stderr


def test_parse_listen_forms() -> None:
    assert parse_listen("127.0.0.1:53", False) == ("127.0.0.1", 53)
    assert parse_listen("127.9.9.9:0", False) == ("127.9.9.9", 0)
    assert parse_listen("[::1]:5353", False) == ("::1", 5353)
    # allowed only with the flag (never bound here)
    assert parse_listen("10.99.0.2:53", True) == ("10.99.0.2", 53)
    with pytest.raises(UsageError, match="loopback"):
        parse_listen("10.99.0.2:53", False)


def test_log_line_format() -> None:
    entry = QueryLogEntry(t=1.0, client=("127.0.0.1", 4242), transport="udp",
                          name="victim.test", qtype="MX", rcode="NOERROR",
                          answers=("MX 10 a.test.", "MX 20 b.test."), failure=None, ad=True)
    assert format_entry(entry) == ("udp 127.0.0.1:4242 victim.test MX NOERROR "
                                   "[MX 10 a.test.; MX 20 b.test.] failure=- ad=1 tc=0")
