"""The control API without Docker: services and their control sockets in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import smtplib
import socket
import ssl
import time
from pathlib import Path

import dnslib
import pytest

from lab import attacks
from lab.attacks.base import Attack
from lab.backends.services import MxSetup
from lab.control import (
    ControlClient,
    ControlError,
    ControlServer,
    RemoteServices,
    attack_from_json,
    attack_to_json,
    ca_fingerprint,
    ensure_pki,
    idle_name,
    mx_to_json,
    policy_from_json,
    policy_to_json,
)
from lab.pki import CertKind, LabPKI
from lab.policy_host.response import PolicyResponse
from lab.world import Domain, Policy, Topology, World, build_zone
from lab.world_setup import publish, service_config

attacks.load_all()


def test_attack_round_trip() -> None:
    for name, cls in Attack.registry.items():
        attack = cls()
        back = attack_from_json(attack_to_json(attack))
        assert back == attack, name
    swap = Attack.registry.get("swap-certificate")(certificate=CertKind.EXPIRED)  # type: ignore[call-arg]
    data = attack_to_json(swap)
    assert data == {"name": "swap-certificate", "options": {**data["options"],
                                                            "certificate": "expired"}}
    assert attack_from_json(data) == swap


def test_policy_round_trip() -> None:
    response = PolicyResponse(status=301, reason="Moved", content_type=None, body=b"\x00x\xff",
                              headers=(("Location", "https://x.test/"),),
                              cert=CertKind.ROGUE_CA, trickle_bytes_per_s=10.0,
                              reachable=False, applied=("a",))
    assert policy_from_json(policy_to_json(response)) == response
    # what the compose backend's policy container needs for the policy-mitm attack, a 304 and
    # a redirect's target: every field crosses
    from lab.policy_host.response import Interception
    for intercept in (Interception("policy-mitm", b"version: STSv1\nmode: none\n"),
                      Interception("policy-mitm", None)):
        full = PolicyResponse(also_serves=(("/elsewhere", b"\x00body"),), not_modified=True,
                              intercept=intercept, applied=("policy-mitm",))
        assert policy_from_json(json.loads(json.dumps(policy_to_json(full)))) == full
    assert {f.name for f in dataclasses.fields(PolicyResponse)} <= set(policy_to_json(response))


def test_ensure_pki_makes_once_then_loads(tmp_path: Path) -> None:
    a = ensure_pki(tmp_path / "state", tmp_path / "a")
    b = ensure_pki(tmp_path / "state", tmp_path / "b")
    assert ca_fingerprint(a) == ca_fingerprint(b)
    assert oct((tmp_path / "state" / "pki" / "lab-ca.key").stat().st_mode & 0o777) == "0o600"
    runner = LabPKI(tmp_path / "runner")
    runner.export(tmp_path / "state" / "pki")
    a.reload(tmp_path / "state" / "pki")
    assert ca_fingerprint(a) == ca_fingerprint(runner)


async def _lab(tmp_path: Path) -> tuple[list[ControlServer], dict[str, ControlClient], LabPKI]:
    state = tmp_path / "state"
    runner_pki = LabPKI(tmp_path / "runner")
    runner_pki.export(state / "pki")
    servers: list[ControlServer] = []
    clients: dict[str, ControlClient] = {}

    async def add(role: str, **kw: object) -> ControlServer:
        pki = LabPKI.load(state / "pki", tmp_path / f"leaves-{role}")
        server = ControlServer(role, pki, state, bind="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]
        await server.start()
        await server.serve_control(state / f"{server.label}.sock")
        servers.append(server)
        clients[server.label] = ControlClient(state / f"{server.label}.sock")
        return server

    await add("dns")
    await add("policy")
    mx = await add("mx")
    assert mx.address is not None
    await add("mitm", upstream=mx.address)
    return servers, clients, runner_pki


def test_control_protocol_end_to_end(tmp_path: Path) -> None:
    async def main() -> None:
        servers, clients, runner_pki = await _lab(tmp_path)
        by = {s.label: s for s in servers}
        try:
            health = await clients["dns"].health()
            assert health["role"] == "dns" and health["ca"] == ca_fingerprint(runner_pki)
            # a long-poll with nothing to say waits about as long as asked, no longer
            t0 = time.monotonic()
            empty = await clients["dns"].events(0, 0.2)
            assert empty["events"] == [] and 0.15 < time.monotonic() - t0 < 2
            # the world, as the runner sends it
            world = World((Domain("victim.test", ("mx1.victim.test",),
                                  Policy("enforce", ("mx1.victim.test",))),))
            topo = Topology(dns="127.0.0.1", policy="127.0.0.3", mx_fronts=("127.0.0.11",),
                            mx_backs=("127.0.0.21",), attacker="127.0.0.30")
            zone = build_zone(world, topo)
            await asyncio.to_thread(clients["dns"].call, "POST", "/world", {"zone": zone.to_text()})
            await clients["policy"].request("POST", "/world", {"policies": {
                "victim.test": policy_to_json(PolicyResponse(body=b"version: STSv1\n"))}})
            strip = Attack.registry.get("strip-starttls")()
            mx_world = {"mx": mx_to_json([MxSetup("mx1.victim.test", (strip,))],  # type: ignore[arg-type]
                                         ["victim.test"])}
            for label in ("mitm0", "mx0"):
                reply = await clients[label].request("POST", "/world", mx_world)
                assert reply["applied"] == ["mx"]
            # the long-poll answers as soon as an event is there
            dns = by["dns"]
            assert dns.address is not None
            waiter = asyncio.ensure_future(clients["dns"].events(0, 20))
            query = dnslib.DNSRecord.question("mx1.victim.test", "A")
            t0 = time.monotonic()
            answer = dnslib.DNSRecord.parse(await asyncio.to_thread(
                query.send, dns.address[0], dns.address[1], False, 5))
            assert str(answer.rr[0].rdata) == "127.0.0.11"
            got = await waiter
            assert time.monotonic() - t0 < 2
            assert [(e["source"], e["kind"]) for e in got["events"]] == [("dns", "query")]
            assert got["next"] == 1
            # SMTP through the proxy (STARTTLS stripped) to the sink
            mitm = by["mitm0"]
            assert mitm.address is not None

            def send() -> bool:
                with smtplib.SMTP(mitm.address[0], mitm.address[1], timeout=10) as smtp:
                    smtp.ehlo("sender.test")
                    offered = smtp.has_extn("starttls")
                    smtp.sendmail("probe@sender.test", ["postmaster@victim.test"],
                                  b"Message-ID: <m1@sender.test>\r\nSubject: x\r\n\r\nhi\r\n")
                    return offered

            assert await asyncio.to_thread(send) is False
            seen: list[tuple[str, str]] = []
            since = 0
            deadline = time.monotonic() + 10
            while ("sink", "message") not in seen and time.monotonic() < deadline:
                batch = await clients["mx0"].events(since, 5)
                since = batch["next"]
                seen += [(e["source"], e["kind"]) for e in batch["events"]]
            assert ("sink", "message") in seen
            proxy_events = (await clients["mitm0"].events(0, 0))["events"]
            fired = [e for e in proxy_events if e["kind"] == "fired"
                     or e["data"].get("attack") == "strip-starttls"]
            assert fired, proxy_events
            # a new PKI: every service reloads and reports the new CA
            new = LabPKI(tmp_path / "runner2")
            new.export(tmp_path / "state" / "pki")
            for client in clients.values():
                assert (await client.request("POST", "/pki"))["ca"] == ca_fingerprint(new)
            await clients["mx0"].request("POST", "/reset")
            with pytest.raises(ControlError, match="404"):
                await clients["dns"].request("GET", "/nothing")
            with pytest.raises(ControlError, match="400"):
                await clients["dns"].request("POST", "/world", [1, 2])
        finally:
            for server in servers:
                await server.close()
        with pytest.raises(ControlError):
            ControlClient(tmp_path / "state" / "dns.sock", timeout=1).call("GET", "/health")

    asyncio.run(main())


def _fetch_policy(address: tuple[str, int], domain: str, ca_file: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file))
    host = f"mta-sts.{domain}"
    with socket.create_connection(address, timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                    "Connection: close\r\n\r\n".encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_remote_services_publish_a_world(tmp_path: Path) -> None:
    """The runner's side (``RemoteServices``) configures services in other processes exactly
    as ``publish`` configures in-process ones: here the services are local control servers."""

    async def main() -> None:
        servers, clients, runner_pki = await _lab(tmp_path)
        by = {s.label: s for s in servers}
        remote = RemoteServices(clients)
        try:
            world = World((Domain("victim.test", ("mx1.victim.test",),
                                  Policy("enforce", ("mx1.victim.test",))),))
            topo = Topology(dns="127.0.0.1", policy="127.0.0.3", mx_fronts=("127.0.0.11",),
                            mx_backs=("127.0.0.21",), attacker="127.0.0.30")
            strip = Attack.registry.get("strip-starttls")()
            config = service_config(world, topo, [strip])
            await asyncio.to_thread(publish, remote, config)  # blocking calls, as the runner's
            dns, policy = by["dns"].address, by["policy"].address
            assert dns is not None and policy is not None
            query = dnslib.DNSRecord.question("victim.test", "MX")
            answer = dnslib.DNSRecord.parse(await asyncio.to_thread(
                query.send, dns[0], dns[1], False, 5))
            assert [str(r.rdata) for r in answer.rr] == ["10 mx1.victim.test."]
            assert all(r.ttl == 0 for r in answer.rr)
            reply = await asyncio.to_thread(_fetch_policy, policy, "victim.test",
                                            runner_pki.ca_file)
            assert reply.startswith(b"HTTP/1.1 200") and b"mode: enforce" in reply
            proxy = by["mitm0"].services.proxies[0]
            assert (proxy.mx_name, proxy.attacks) == ("mx1.victim.test", (strip,))
            await remote.reset()
            assert (proxy.mx_name, proxy.attacks) == (idle_name(0), ())
            await remote.close()  # the services keep running: the containers own them
            assert (await clients["dns"].health())["role"] == "dns"
        finally:
            for server in servers:
                await server.close()

    asyncio.run(main())


def test_service_config_checks_the_slot_limit() -> None:
    spoof = Attack.registry.get("spoof-mx")()
    world = World((Domain("victim.test", ("mx1.victim.test",),
                          Policy("enforce", ("mx1.victim.test",))),))
    one_slot = Topology(dns="127.0.0.1", policy="127.0.0.3", mx_fronts=("127.0.0.11",),
                        mx_backs=("127.0.0.21",), attacker="127.0.0.30")
    assert service_config(world, one_slot, []).mx == (MxSetup("mx1.victim.test"),)
    with pytest.raises(ValueError, match="2 MX hosts; the backend has 1 MX slots"):
        service_config(world, one_slot, [spoof])


def test_a_request_that_is_not_http_gets_a_json_400(tmp_path: Path) -> None:
    async def main() -> None:
        servers, _, _ = await _lab(tmp_path)
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(tmp_path / "state" / "dns.sock"))
            writer.write(b"\x00\x01 not http\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 10)
            writer.close()
        finally:
            for server in servers:
                await server.close()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400")
        assert "error" in json.loads(body)

    asyncio.run(main())


def test_a_container_applies_its_own_slot(tmp_path: Path) -> None:
    """A mitm for slot 1 takes slot 1's name and attacks from the world, not slot 0's."""

    async def main() -> None:
        pki = LabPKI(tmp_path / "pki")
        server = ControlServer("mitm", pki, tmp_path, slot=1, bind="127.0.0.1", port=0,
                               upstream=("127.0.0.1", 9))
        await server.start()
        try:
            proxy = server.services.proxies[0]
            assert proxy.mx_name == idle_name(1)
            strip = Attack.registry.get("strip-starttls")()
            world = {"mx": mx_to_json([MxSetup("mx1.victim.test"),
                                       MxSetup("mx2.victim.test", (strip,))],  # type: ignore[arg-type]
                                      ["victim.test"])}
            assert server.apply(world) == ["mx"]
            assert (proxy.mx_name, proxy.attacks) == ("mx2.victim.test", (strip,))
            assert server.apply({"mx": mx_to_json([MxSetup("mx1.victim.test")], [])}) == ["mx"]
            assert (proxy.mx_name, proxy.attacks) == (idle_name(1), ())
        finally:
            await server.close()

    asyncio.run(main())


# mitmproxy 11 hands pyOpenSSL objects that pyOpenSSL 24 deprecates: not ours to fix
@pytest.mark.filterwarnings("ignore::DeprecationWarning:mitmproxy")
def test_the_runner_waits_for_the_attackers_mitmproxy_in_the_policy_container(
        tmp_path: Path) -> None:
    """``services_ready`` asks the policy service (``GET /ready``) to wait until mitmproxy
    listens when the world intercepts the fetch, as it does for in-process services."""
    pytest.importorskip("mitmproxy")
    import warnings
    with warnings.catch_warnings():
        # its add-ons import ldap3, passlib and pyasn1, which warn about their own deprecated
        # APIs on import (as tests/policy_host/test_policy_mitm.py says): imported here first
        warnings.simplefilter("ignore", DeprecationWarning)
        import mitmproxy.addons
        import mitmproxy.master  # noqa: F401
    from lab.events import EventLog
    from lab.waits import services_ready

    async def main() -> None:
        servers, clients, _ = await _lab(tmp_path)
        by = {s.label: s for s in servers}
        remote = RemoteServices(clients)
        events = EventLog()
        try:
            assert (await clients["policy"].health())["mitm"] is True
            await services_ready(remote, events)  # nothing intercepted: nothing to wait for
            assert not [e for e in events.since(0) if e.kind == "ready"]
            world = World((Domain("victim.test", ("mx1.victim.test",),
                                  Policy("enforce", ("mx1.victim.test",))),))
            topo = Topology(dns="127.0.0.1", policy="127.0.0.3", mx_fronts=("127.0.0.11",),
                            mx_backs=("127.0.0.21",), attacker="127.0.0.30")
            mitm = Attack.registry.get("policy-mitm")()
            await asyncio.to_thread(publish, remote, service_config(world, topo, [mitm]))
            await services_ready(remote, events)
            policy = by["policy"].services.policy
            assert policy is not None
            # the invariant: when services_ready returns, the attacker's mitmproxy listens
            start = policy._mitm_start
            assert start is not None and start.done() and start.exception() is None
            assert await policy.ready() is False  # already listening: no wait left
            # whether the runner had to wait depends on how fast mitmproxy started; if it
            # did, the evidence says what it waited for
            ready = [e for e in events.since(0) if e.kind == "ready"]
            assert len(ready) <= 1
            assert all("mitmproxy" in str(e.get("waited_for")) for e in ready)
        finally:
            for server in servers:
                await server.close()

    asyncio.run(main())
