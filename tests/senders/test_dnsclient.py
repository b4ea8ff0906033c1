"""The stub resolver against a tiny dnslib responder on loopback UDP/TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from dnslib import RCODE

from lab.senders.dnsclient import DnsError, NoData, NXDomain, Resolver, mail_hosts

from .lab_servers import DnsResponder

T = TypeVar("T")
pytestmark = pytest.mark.integration


def run(setup: Callable[[DnsResponder], None],
        body: Callable[[Resolver, DnsResponder], Awaitable[T]], timeout: float = 1.0) -> T:
    async def main() -> T:
        dns = DnsResponder()
        setup(dns)
        address = await dns.start()
        try:
            return await body(Resolver(address, timeout=timeout, retries=1), dns)
        finally:
            await dns.close()
    return asyncio.run(main())


def zone(dns: DnsResponder) -> None:
    dns.mx("victim.test", 20, "mx2.victim.test")
    dns.mx("victim.test", 10, "MX1.victim.test")
    dns.a("mx1.victim.test", "127.0.0.2")
    dns.a("mx1.victim.test", "127.0.0.3")
    dns.txt("_mta-sts.victim.test", "v=STSv1; ", "id=abc;")
    dns.txt("_mta-sts.victim.test", "v=spf1 -all")
    dns.cname("_mta-sts.alias.test", "_mta-sts.hop.test")
    dns.cname("_mta-sts.hop.test", "_mta-sts.victim.test")
    dns.cname("_mta-sts.dangling.test", "_mta-sts.elsewhere.test")
    dns.txt("_mta-sts.elsewhere.test", "v=STSv1; id=far;")
    dns.cname("loop1.test", "loop2.test")
    dns.cname("loop2.test", "loop1.test")


def test_mx_sorted_and_normalised() -> None:
    found = run(zone, lambda r, _: r.mx("victim.test"))
    assert found == [(10, "mx1.victim.test"), (20, "mx2.victim.test")]


def test_a_and_txt_joined_per_record() -> None:
    assert run(zone, lambda r, _: r.a("mx1.victim.test")) == ["127.0.0.2", "127.0.0.3"]
    txt = run(zone, lambda r, _: r.txt("_mta-sts.victim.test"))
    assert sorted(txt) == ["v=STSv1; id=abc;", "v=spf1 -all"]


def test_txt_follows_cname_chain() -> None:
    txt = run(zone, lambda r, _: r.txt("_mta-sts.alias.test"))
    assert sorted(txt) == ["v=STSv1; id=abc;", "v=spf1 -all"]


def test_cname_chain_requeried_when_answer_stops_at_alias() -> None:
    """An answer holding only the CNAME: the resolver asks for the target itself."""
    def setup(dns: DnsResponder) -> None:
        zone(dns)
        dns.answer_chain = False

    async def body(resolver: Resolver, dns: DnsResponder) -> tuple[list[str], list[str]]:
        return await resolver.txt("_mta-sts.dangling.test"), [q[1] for q in dns.queries]

    txt, asked = run(setup, body)
    assert txt == ["v=STSv1; id=far;"]
    assert asked == ["_mta-sts.dangling.test", "_mta-sts.elsewhere.test"]


def test_cname_loop_is_an_error() -> None:
    with pytest.raises(DnsError, match="CNAME loop"):
        run(zone, lambda r, _: r.a("loop1.test"))


def test_failures_are_typed() -> None:
    def setup(dns: DnsResponder) -> None:
        zone(dns)
        dns.rcode["broken.test"] = RCODE.SERVFAIL
        dns.rcode["refused.test"] = RCODE.REFUSED
        dns.silent.add("silent.test")

    with pytest.raises(NXDomain):
        run(setup, lambda r, _: r.txt("_mta-sts.nowhere.test"))
    with pytest.raises(NoData):
        run(setup, lambda r, _: r.txt("mx1.victim.test"))
    with pytest.raises(DnsError, match="SERVFAIL"):
        run(setup, lambda r, _: r.txt("broken.test"))
    with pytest.raises(DnsError, match="REFUSED"):
        run(setup, lambda r, _: r.a("refused.test"))
    with pytest.raises(DnsError, match="timed out"):
        run(setup, lambda r, _: r.a("silent.test"), timeout=0.2)
    assert not issubclass(NXDomain, DnsError) and not issubclass(NoData, DnsError)


def test_udp_is_retried_before_giving_up() -> None:
    def setup(dns: DnsResponder) -> None:
        dns.a("silent.test", "127.0.0.9")
        dns.silent.add("silent.test")

    async def body(resolver: Resolver, dns: DnsResponder) -> tuple[str, int]:
        with pytest.raises(DnsError) as info:
            await resolver.a("silent.test")
        return str(info.value), len([q for q in dns.queries if q[1] == "silent.test"])

    message, tries = run(setup, body, timeout=0.2)
    assert "timed out" in message
    assert tries == 2  # retries=1: the first try and one retry


def test_tcp_fallback_when_truncated() -> None:
    def setup(dns: DnsResponder) -> None:
        zone(dns)
        dns.truncate.add("_mta-sts.victim.test")

    async def body(resolver: Resolver, dns: DnsResponder) -> tuple[list[str], list[str]]:
        txt = await resolver.txt("_mta-sts.victim.test")
        return txt, [q[0] for q in dns.queries]

    txt, transports = run(setup, body)
    assert sorted(txt) == ["v=STSv1; id=abc;", "v=spf1 -all"]
    assert transports == ["udp", "tcp"]


def test_implicit_and_null_mx() -> None:
    def setup(dns: DnsResponder) -> None:
        zone(dns)
        dns.a("bare.test", "127.0.0.5")
        dns.mx("null.test", 0, ".")

    assert run(setup, lambda r, _: mail_hosts(r, "bare.test")) == [(0, "bare.test")]
    assert run(setup, lambda r, _: mail_hosts(r, "null.test")) == []
    assert run(setup, lambda r, _: mail_hosts(r, "victim.test"))[0] == (10, "mx1.victim.test")
