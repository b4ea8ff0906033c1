"""DnsServer on real loopback sockets: answers, TXT splitting, failures, live zone swaps."""

from __future__ import annotations

import asyncio
import socket

import pytest
from dns_helpers import (
    TcpClient,
    run,
    serving,
    tcp_query,
    txt_strings,
    udp_exchange,
    udp_query,
    victim_zone,
)
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_dns import DnsServer, Failure, QueryLogEntry, Zone

pytestmark = pytest.mark.integration
NO_REPLY_WAIT = 0.3
"""How long a test waits to be sure that no reply comes (a deadline, not a sleep)."""

LONG_TXT = "v=STSv1; id=" + "x" * 300 + ";"  # one logical value over 255 bytes


def q(name: str, qtype: str = "A", edns: bool = False) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    if edns:
        query.add_ar(EDNS0(udp_len=4096))
    return query


def answers(reply: DNSRecord) -> list[str]:
    return [f"{QTYPE.get(rr.rtype)} {rr.rdata}" for rr in reply.rr]


def test_udp_answers_a_mx_txt() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (_, addr):
            reply = await udp_query(addr, q("mx1.victim.test"))
            assert reply is not None and answers(reply) == ["A 127.0.0.11"]
            assert reply.header.aa == 1 and reply.header.ra == 1 and reply.header.ad == 0
            reply = await udp_query(addr, q("victim.test", "MX"))
            assert reply is not None
            assert answers(reply) == ["MX 10 mx1.victim.test.", "MX 20 mx2.victim.test."]
            reply = await udp_query(addr, q("_mta-sts.victim.test", "TXT"))
            assert reply is not None and txt_strings(reply) == [[b"v=STSv1; id=20240101;"]]
            assert reply.rr[0].ttl == 300

    run(body())


def test_question_spelling_is_echoed() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (_, addr):
            reply = await udp_query(addr, q("MX1.Victim.TEST"))
            assert reply is not None
            assert str(reply.q.qname) == "MX1.Victim.TEST."
            assert str(reply.rr[0].rname) == "MX1.Victim.TEST."

    run(body())


def test_nxdomain_nodata_and_cname_over_the_wire() -> None:
    async def body() -> None:
        zone = victim_zone()
        zone.add("alias.victim.test", "CNAME", "mx2.victim.test.")
        zone.add("victim.test", "SOA", "ns.victim.test. h.victim.test. 1 3600 600 86400 60")
        async with serving(zone) as (_, addr):
            nx = await udp_query(addr, q("nope.victim.test"))
            assert nx is not None and nx.header.rcode == RCODE.NXDOMAIN and not nx.rr
            assert [QTYPE.get(rr.rtype) for rr in nx.auth] == ["SOA"]
            nodata = await udp_query(addr, q("victim.test", "AAAA"))
            assert nodata is not None and nodata.header.rcode == RCODE.NOERROR and not nodata.rr
            chased = await udp_query(addr, q("alias.victim.test"))
            assert chased is not None
            assert answers(chased) == ["CNAME mx2.victim.test.", "A 127.0.0.12"]

    run(body())


def test_tlsa_and_ad_bit() -> None:
    async def body() -> None:
        zone = victim_zone()
        zone.add("_25._tcp.mx1.victim.test", "TLSA", "3 1 1 " + "ab" * 32)
        zone.authenticate("_25._tcp.mx1.victim.test")
        log: list[QueryLogEntry] = []
        async with serving(zone, log.append) as (_, addr):
            reply = await udp_query(addr, q("_25._tcp.mx1.victim.test", "TLSA"))
            assert reply is not None and reply.header.ad == 1
            assert answers(reply) == ["TLSA 3 1 1 " + "AB" * 32]
            plain = await udp_query(addr, q("mx1.victim.test"))
            assert plain is not None and plain.header.ad == 0
        assert [e.ad for e in log] == [True, False]

    run(body())


def test_long_txt_is_split_into_255_byte_strings_and_reassembles() -> None:
    async def body() -> None:
        zone = Zone()
        zone.add("_mta-sts.victim.test", "TXT", LONG_TXT)
        async with serving(zone) as (_, addr):
            reply = await tcp_query(addr, q("_mta-sts.victim.test", "TXT"))
            assert reply is not None
            [strings] = txt_strings(reply)
            assert [len(s) for s in strings] == [255, len(LONG_TXT) - 255]
            assert b"".join(strings).decode() == LONG_TXT

    run(body())


def test_oversized_udp_reply_is_truncated_unless_edns_allows_it() -> None:
    async def body() -> None:
        zone = Zone()
        zone.add("big.test", "TXT", "y" * 700)
        async with serving(zone) as (server, addr):
            small = await udp_query(addr, q("big.test", "TXT"))
            assert small is not None and small.header.tc == 1 and not small.rr
            assert server.log[-1].truncated and server.log[-1].answers == ()
            edns = await udp_query(addr, q("big.test", "TXT", edns=True))
            assert edns is not None and edns.header.tc == 0
            assert b"".join(txt_strings(edns)[0]) == b"y" * 700
            full = await tcp_query(addr, q("big.test", "TXT"))
            assert full is not None and b"".join(txt_strings(full)[0]) == b"y" * 700

    run(body())


def test_tcp_serves_several_queries_on_one_connection() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (server, addr):
            client = await TcpClient.connect(addr)
            try:
                for name, want in [("mx1.victim.test", "A 127.0.0.11"),
                                   ("mx2.victim.test", "A 127.0.0.12"),
                                   ("mta-sts.victim.test", "A 127.0.0.20")]:
                    reply = await client.query(q(name))
                    assert reply is not None and answers(reply) == [want]
                # two queries in one write: both answered in order
                client.send_raw(q("mx1.victim.test").pack() + b"")
                client.send_raw(q("mx2.victim.test").pack())
                first, second = await client.receive(), await client.receive()
                assert first is not None and second is not None
                assert answers(first) == ["A 127.0.0.11"] and answers(second) == ["A 127.0.0.12"]
            finally:
                await client.close()
            assert {e.transport for e in server.log} == {"tcp"} and len(server.log) == 5

    run(body())


def test_truncate_failure_sets_tc_over_udp_and_answers_over_tcp() -> None:
    async def body() -> None:
        zone = victim_zone()
        zone.fail("victim.test", Failure.TRUNCATE, "MX")
        async with serving(zone) as (server, addr):
            udp = await udp_query(addr, q("victim.test", "MX"))
            assert udp is not None and udp.header.tc == 1 and not udp.rr
            tcp = await tcp_query(addr, q("victim.test", "MX"))
            assert tcp is not None and tcp.header.tc == 0 and len(tcp.rr) == 2
            other = await udp_query(addr, q("mx1.victim.test"))
            assert other is not None and other.header.tc == 0
            udp_log, tcp_log = server.log[:2]
            assert (udp_log.transport, udp_log.truncated, udp_log.answers) == ("udp", True, ())
            assert (tcp_log.transport, tcp_log.truncated, len(tcp_log.answers)) == ("tcp", False, 2)
            assert udp_log.failure == tcp_log.failure == "truncate"

    run(body())


def test_no_answer_failure_sends_nothing_on_udp_or_tcp() -> None:
    async def body() -> None:
        zone = victim_zone()
        zone.fail("mta-sts.victim.test", Failure.NO_ANSWER)
        async with serving(zone) as (server, addr):
            assert await udp_query(addr, q("mta-sts.victim.test"), NO_REPLY_WAIT) is None
            client = await TcpClient.connect(addr)
            try:
                assert await client.query(q("mta-sts.victim.test"), NO_REPLY_WAIT) is None
                # the connection stays usable for other names
                reply = await client.query(q("mx1.victim.test"))
                assert reply is not None and answers(reply) == ["A 127.0.0.11"]
            finally:
                await client.close()
            silent = [e for e in server.log if e.name == "mta-sts.victim.test"]
            assert [(e.transport, e.rcode, e.failure) for e in silent] == [
                ("udp", "NONE", "no-answer"), ("tcp", "NONE", "no-answer")]

    run(body())


@pytest.mark.parametrize(("failure", "rcode"), [
    (Failure.SERVFAIL, RCODE.SERVFAIL), (Failure.REFUSED, RCODE.REFUSED),
    (Failure.NXDOMAIN, RCODE.NXDOMAIN),
])
def test_rcode_failures_on_both_transports(failure: Failure, rcode: int) -> None:
    async def body() -> None:
        zone = victim_zone()
        zone.fail("_mta-sts.victim.test", failure, "TXT")
        async with serving(zone) as (server, addr):
            for send in (udp_query, tcp_query):
                reply = await send(addr, q("_mta-sts.victim.test", "TXT"))
                assert reply is not None and reply.header.rcode == rcode and not reply.rr
            assert [e.rcode for e in server.log] == [RCODE.get(rcode)] * 2
            assert {e.failure for e in server.log} == {failure.value}

    run(body())


def test_set_zone_while_running_takes_effect_on_the_next_query() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (server, addr):
            before = await udp_query(addr, q("mx1.victim.test"))
            assert before is not None and answers(before) == ["A 127.0.0.11"]
            spoofed = server.zone.copy()
            spoofed.remove("mx1.victim.test", "A")
            spoofed.add("mx1.victim.test", "A", "127.6.6.6")
            server.set_zone(spoofed)
            assert server.zone is spoofed
            after = await udp_query(addr, q("mx1.victim.test"))
            assert after is not None and answers(after) == ["A 127.6.6.6"]
            over_tcp = await tcp_query(addr, q("mx1.victim.test"))
            assert over_tcp is not None and answers(over_tcp) == ["A 127.6.6.6"]

    run(body())


def test_log_entries_and_callback() -> None:
    async def body() -> None:
        seen: list[QueryLogEntry] = []
        async with serving(victim_zone(), seen.append) as (server, addr):
            await udp_query(addr, q("Victim.test.", "MX"))
            await tcp_query(addr, q("nope.test", "TXT"))
            assert seen == server.log
        udp, tcp = seen
        assert (udp.transport, udp.name, udp.qtype, udp.rcode) == ("udp", "victim.test", "MX",
                                                                  "NOERROR")
        assert udp.answers == ("MX 10 mx1.victim.test.", "MX 20 mx2.victim.test.")
        assert udp.client[0] == "127.0.0.1" and udp.client[1] > 0 and udp.failure is None
        assert (tcp.transport, tcp.name, tcp.rcode, tcp.answers) == ("tcp", "nope.test",
                                                                    "NXDOMAIN", ())
        assert udp.t <= tcp.t

    run(body())


def test_a_failing_callback_does_not_break_the_server() -> None:
    def boom(_: QueryLogEntry) -> None:
        raise RuntimeError("observer bug")

    async def body() -> None:
        async with serving(victim_zone(), boom) as (server, addr):
            for _ in range(2):
                reply = await udp_query(addr, q("mx1.victim.test"))
                assert reply is not None and answers(reply) == ["A 127.0.0.11"]
            assert len(server.log) == 2

    run(body())


def test_malformed_packets_are_ignored() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (server, addr):
            assert await udp_exchange(addr, b"\x00\x01garbage", NO_REPLY_WAIT) is None
            response = q("mx1.victim.test").reply()
            assert await udp_exchange(addr, response.pack(), NO_REPLY_WAIT) is None
            client = await TcpClient.connect(addr)
            try:
                client.send_raw(b"\xff" * 7)
                reply = await client.query(q("mx2.victim.test"))
                assert reply is not None and answers(reply) == ["A 127.0.0.12"]
            finally:
                await client.close()
            assert server.malformed == 3
            assert [e.name for e in server.log] == ["mx2.victim.test"]
            reply = await udp_query(addr, q("mx1.victim.test"))
            assert reply is not None and answers(reply) == ["A 127.0.0.11"]

    run(body())


def test_other_opcodes_classes_and_empty_questions() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (_, addr):
            notify = q("victim.test", "SOA")
            notify.header.opcode = 4
            reply = await udp_query(addr, notify)
            assert reply is not None and reply.header.rcode == RCODE.NOTIMP
            chaos = q("version.bind", "TXT")
            chaos.q.qclass = 3
            reply = await udp_query(addr, chaos)
            assert reply is not None and reply.header.rcode == RCODE.REFUSED
            empty = DNSRecord()
            reply = await udp_query(addr, empty)
            assert reply is not None and reply.header.rcode == RCODE.FORMERR
            unknown = await udp_query(addr, DNSRecord.question("victim.test", "TYPE65000"))
            assert unknown is not None and unknown.header.rcode == RCODE.NOERROR

    run(body())


def test_udp_only_server_and_close_releases_the_sockets() -> None:
    async def body() -> None:
        udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_sock.bind(("127.0.0.1", 0))
        addr = udp_sock.getsockname()
        server = DnsServer(victim_zone())
        try:
            await server.start(udp_sock)
            reply = await udp_query(addr, q("mx1.victim.test"))
            assert reply is not None and answers(reply) == ["A 127.0.0.11"]
            with pytest.raises(RuntimeError):
                await server.start(udp_sock)
        finally:
            await server.close()
            await server.close()  # idempotent
        assert udp_sock.fileno() == -1
        rebound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rebound.bind(addr)  # the port is free again
        finally:
            rebound.close()

    run(body())


def test_close_ends_open_tcp_connections() -> None:
    async def body() -> None:
        async with serving(victim_zone()) as (server, addr):
            client = await TcpClient.connect(addr)
            reply = await client.query(q("mx1.victim.test"))
            assert reply is not None
            await server.close()
            assert await client.reader.read() == b""  # EOF from the server side
            await client.close()

    run(body())


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_handle_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    server = DnsServer(victim_zone())
    for transport in ("udp", "tcp"):
        out = server.handle(data, ("127.0.0.1", 5353), transport)
        if out is not None:
            DNSRecord.parse(out)


@settings(max_examples=200)
@given(st.from_regex(r"[A-Za-z0-9_-]{1,10}(\.[A-Za-z0-9_-]{1,10}){0,3}\.?", fullmatch=True),
       st.sampled_from(["A", "AAAA", "MX", "TXT", "CNAME", "TLSA", "ANY", "SOA", "NS"]))
def test_handle_answers_every_question(name: str, qtype: str) -> None:
    server = DnsServer(victim_zone())
    out = server.handle(DNSRecord.question(name, qtype).pack(), ("127.0.0.1", 1), "udp")
    assert out is not None
    reply = DNSRecord.parse(out)
    assert reply.header.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN)
    assert server.log[-1].name == name.lower().rstrip(".")


def test_server_runs_inside_an_existing_loop_without_leaking_tasks() -> None:
    async def body() -> None:
        before = len(asyncio.all_tasks())
        async with serving(victim_zone()) as (_, addr):
            for _ in range(3):
                await tcp_query(addr, q("mx1.victim.test"))
        # connection handlers are gone after close
        assert len(asyncio.all_tasks()) == before

    run(body())
