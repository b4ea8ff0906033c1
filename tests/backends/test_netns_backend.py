"""The netns backend: namespaces up and down, isolation, cleanup after a crash.

These need root and network namespaces; they skip (saying what is missing) elsewhere. They
send packets only inside the namespaces they create: the host namespace has a default route
here, so a connect from it to a lab address would leave the machine; the host side is
checked through its addresses, links and routes instead, and the "no way out" side by
connecting from inside a lab namespace, where the kernel refuses at once (ENETUNREACH, no
packet sent) because there is no route.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.backends import netns_state
from lab.backends.base import Backend
from lab.backends.netns import NetnsBackend, cleanup_leftovers
from lab.backends.netns_net import client_socket, run_in_netns
from lab.events import EventLog
from lab.pki import LabPKI

MISSING = NetnsBackend.check()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason="netns backend unavailable: " + "; ".join(MISSING)),
]
REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _namespaces() -> set[str]:
    return netns_state.existing_namespaces()


def _host_links() -> set[str]:
    return {line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link").splitlines()}


def _host_addresses() -> list[str]:
    return [line.split()[3] for line in _ip("-o", "addr").splitlines()]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mtasts-lab-test-") as d:
        yield Path(d)


@dataclass
class Seen:
    namespaces: list[str]
    state: Path
    etc: Path
    bringup: float
    down: float = 0.0


def test_registered_and_checks() -> None:
    assert Backend.registry.get("netns") is NetnsBackend
    assert NetnsBackend.needs_root
    assert NetnsBackend.check() == []


def test_up_isolated_down_leaves_nothing(run_dir: Path) -> None:
    host_links_before = _host_links()

    async def scenario() -> Seen:
        backend = NetnsBackend()
        events = EventLog()
        t0 = time.monotonic()
        topology = await backend.up(run_dir, LabPKI(run_dir / "pki"), events)
        bringup = time.monotonic() - t0
        assert backend.net is not None and backend.state is not None
        net = backend.net
        seen = Seen(list(net.namespaces), backend.state.path,
                    Path("/etc/netns") / net.ns("sender"), bringup)
        try:
            present = _namespaces()
            assert set(net.namespaces) <= present
            assert all(n.startswith(f"mtl-{net.runid}-") for n in net.namespaces)
            assert backend.state.path.exists()
            # No namespace has a default route (v4 or v6).
            for ns in net.namespaces:
                assert _ip("-n", ns, "route", "show", "default") == ""
                assert _ip("-n", ns, "-6", "route", "show", "default") == ""
            # Nothing of the lab in the host namespace: no address, no new link.
            subnet = ipaddress.ip_network(net.subnet)
            host = [a for a in _host_addresses()
                    if ipaddress.ip_interface(a).ip in subnet]
            assert host == []
            assert _host_links() == host_links_before
            # The host's own route to a lab address does not go through anything the lab
            # made (it is whatever the host had before: its default route or none).
            for address in (topology.dns, topology.mx_fronts[0], topology.extra["sender"]):
                route = subprocess.run(["ip", "route", "get", address], capture_output=True,
                                       text=True, check=False).stdout
                words = route.split()
                if "dev" in words:
                    assert words[words.index("dev") + 1] in host_links_before
            # The sender namespace resolves through the lab DNS (ip netns exec shows it
            # /etc/netns/<ns>/resolv.conf).
            resolv = _ip("netns", "exec", net.ns("sender"), "cat", "/etc/resolv.conf")
            assert f"nameserver {topology.dns}" in resolv
            # From inside the lab there is no way out: the kernel refuses at once.
            for target in [a.split("/")[0] for a in _host_addresses()
                           if ipaddress.ip_interface(a).version == 4
                           and not ipaddress.ip_interface(a).ip.is_loopback]:
                sock = client_socket(net.ns("sender"))
                sock.setblocking(True)
                sock.settimeout(1)
                with pytest.raises(OSError) as err:
                    sock.connect((target, 25))
                sock.close()
                assert err.value.errno == errno.ENETUNREACH
            # Inside the lab the services answer on their real ports: DNS over UDP from
            # the sender's namespace, SMTP from the sender to an MX front.
            def dns_query() -> bytes:
                from dnslib import DNSRecord

                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(2)
                    s.sendto(DNSRecord.question("victim.test", "MX").pack(),
                             (topology.dns, topology.dns_port))
                    return s.recv(4096)

            assert len(await asyncio.to_thread(run_in_netns, net.ns("sender"), dns_query)) > 12
            queries = [e for e in events.since(0) if e.source == "dns"]
            assert [(e.get("name"), e.get("client")[0]) for e in queries] == [
                ("victim.test", topology.extra["sender"])]
            sock = client_socket(net.ns("sender"))
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                sock, (topology.mx_fronts[0], topology.smtp_port)), 2)
            sock.close()
            env = backend.sender_env(run_dir / "sender")
            assert env.exec_prefix == ("ip", "netns", "exec", net.ns("sender"))
            assert (env.dns, env.smtp_port, env.https_port) == ((topology.dns, 53), 25, 443)
        finally:
            t1 = time.monotonic()
            await backend.down()
            seen.down = time.monotonic() - t1
            await backend.down()  # idempotent
        return seen

    seen = asyncio.run(scenario())
    assert not set(seen.namespaces) & _namespaces()
    assert not seen.etc.exists()
    assert not seen.state.exists()
    assert seen.bringup < 5
    assert seen.down < 2


def test_failed_up_cleans_up(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the namespaces exist (here: binding the services) removes them."""
    made: list[str] = []

    def fail(net: object) -> None:
        made.extend(getattr(net, "namespaces"))  # noqa: B009
        raise OSError(errno.EADDRINUSE, "injected bind failure")

    monkeypatch.setattr(NetnsBackend, "_bind_all", staticmethod(fail))

    async def scenario() -> None:
        backend = NetnsBackend()
        with pytest.raises(OSError, match="injected bind failure"):
            await backend.up(run_dir, LabPKI(run_dir / "pki"), EventLog())
        assert backend.net is None and backend.state is None

    asyncio.run(scenario())
    assert len(made) == 13
    assert not set(made) & _namespaces()
    assert not any(Path("/etc/netns", n).exists() for n in made)


CHILD = textwrap.dedent("""
    import asyncio, subprocess, sys
    from pathlib import Path
    from lab.backends.netns import NetnsBackend
    from lab.events import EventLog
    from lab.pki import LabPKI

    async def main() -> None:
        d = Path(sys.argv[0]).parent / "child-run"  # under the test's tmp_path
        d.mkdir()
        backend = NetnsBackend()
        await backend.up(d, LabPKI(d / "pki"), EventLog())
        env = backend.sender_env(d / "sender")
        # One process recorded by PID, one only found by living in a lab namespace.
        recorded = subprocess.Popen([*env.exec_prefix, "sleep", "300"])
        hidden = subprocess.Popen(["ip", "netns", "exec", backend.net.ns("dns"),
                                   "sleep", "300"])
        backend.state.add_proc(recorded.pid)
        print("READY", backend.net.runid, recorded.pid, hidden.pid, d, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
""")


def test_cleanup_leftovers_after_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    pids: list[int] = []
    child_dir = ""
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the child prints READY or dies (EOF)
        assert line.startswith("READY"), f"child did not come up: {line!r}"
        _, runid, recorded, hidden, child_dir = line.split()
        pids = [int(recorded), int(hidden)]
        refs = [netns_state.ProcRef.of(p) for p in pids]
        ours = {n for n in _namespaces() if n.startswith(f"mtl-{runid}-")}
        assert len(ours) == 13
        # A live run is not a leftover: cleanup leaves it alone.
        assert not any(runid in line for line in cleanup_leftovers())
        assert ours <= _namespaces()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        removed = cleanup_leftovers()
        assert any(f"netns mtl-{runid}-sender" == r for r in removed)
        assert not ours & _namespaces()
        assert not any(Path("/etc/netns", n).exists() for n in ours)
        assert not any(runid in p.name for p in netns_state.STATE_DIR.glob("*.json"))
        assert not any(ref.alive() for ref in refs)
        assert cleanup_leftovers() == [] or all(runid not in r for r in cleanup_leftovers())
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        cleanup_leftovers()
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if child_dir:
            shutil.rmtree(child_dir, ignore_errors=True)
