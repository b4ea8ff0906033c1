"""A miniature world for the sender adapters: DNS, a policy host and two MXes on loopback.

victim.test: MX 10 mx1.victim.test (127.0.0.2), policy host mta-sts.victim.test
(127.0.0.1), TXT ``v=STSv1; id=one;``, policy enforce with ``mx: mx1.victim.test``. mx2
(127.0.0.3) exists on the same port for tests that add it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lab.pki import CertKind, LabPKI
from lab.senders.base import OutgoingMessage, Sender, SenderEnv
from lab.world import Topology

from .lab_servers import (
    DnsResponder,
    HttpAnswer,
    MxServer,
    PolicyHost,
    Recorder,
    start_on_shared_port,
)

DOMAIN = "victim.test"
MX1, MX2 = "mx1.victim.test", "mx2.victim.test"
MX1_ADDR, MX2_ADDR = "127.0.0.2", "127.0.0.3"


def policy_text(mode: str = "enforce", mx: tuple[str, ...] = (MX1,), max_age: int = 86400
                ) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *[f"mx: {m}" for m in mx],
             f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class MiniWorld:
    pki: LabPKI
    dns: DnsResponder
    policy: PolicyHost
    mx1: MxServer
    mx2: MxServer
    events: Recorder
    env: SenderEnv

    def set_policy(self, mode: str = "enforce", mx: tuple[str, ...] = (MX1,),
                   max_age: int = 86400) -> None:
        self.policy.answer = HttpAnswer(body=policy_text(mode, mx, max_age))

    def set_txt(self, *records: str, name: str = f"_mta-sts.{DOMAIN}") -> None:
        self.dns.remove(name, "TXT")
        for record in records:
            self.dns.txt(name, record)

    def cert(self, host: str, kind: CertKind | None) -> None:
        """What the MX presents; None: it offers no STARTTLS."""
        server = self.mx1 if host == MX1 else self.mx2
        server.tls_context = None if kind is None else self.pki.server_context(host, kind)

    async def send(self, sender: Sender, rcpt: str = f"user@{DOMAIN}") -> dict[str, object]:
        """Inject one message and wait (with a deadline) for its status event."""
        message = OutgoingMessage.probe(rcpt)
        await sender.inject(message)
        event = await self.events.status(message.message_id)
        return dict(event.data)

    def policy_events(self) -> list[dict[str, object]]:
        return [dict(e.data) for e in self.events.of("policy")]


@contextlib.asynccontextmanager
async def mini_world(tmp_path: Path) -> AsyncIterator[MiniWorld]:
    pki = LabPKI(tmp_path / "pki")
    dns = DnsResponder()
    dns.mx(DOMAIN, 10, MX1)
    dns.a(MX1, MX1_ADDR)
    dns.a(MX2, MX2_ADDR)
    dns.a(f"mta-sts.{DOMAIN}", "127.0.0.1")
    dns.txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=one;")
    policy = PolicyHost(pki.server_context(f"mta-sts.{DOMAIN}"))
    policy.answer = HttpAnswer(body=policy_text())
    mx1 = MxServer(pki.server_context(MX1))
    mx2 = MxServer(pki.server_context(MX2))
    events = Recorder()
    dns_addr = await dns.start()
    try:
        https_port = await policy.start()
        smtp_port = await start_on_shared_port([mx1.start, mx2.start], [MX1_ADDR, MX2_ADDR])
        topology = Topology(dns=dns_addr[0], policy="127.0.0.1",
                            mx_fronts=(MX1_ADDR, MX2_ADDR), mx_backs=(MX1_ADDR, MX2_ADDR),
                            attacker="127.0.0.9", dns_port=dns_addr[1], smtp_port=smtp_port,
                            https_port=https_port)
        env = SenderEnv(dns=dns_addr, smtp_port=smtp_port, https_port=https_port,
                        ca_file=pki.ca_file, workdir=tmp_path, emit=events,
                        topology=topology)
        yield MiniWorld(pki, dns, policy, mx1, mx2, events, env)
    finally:
        for server in (mx1, mx2, policy):
            await server.close()
        await dns.close()


S = TypeVar("S", bound=Sender)


def run_sender(tmp_path: Path, make: Callable[[], S],
               body: Callable[[MiniWorld, S], Awaitable[None]]) -> None:
    """Start a mini world and a sender in it, run ``body``, close both."""
    async def main() -> None:
        async with mini_world(tmp_path) as world:
            sender = make()
            await sender.start(world.env)
            try:
                await body(world, sender)
            finally:
                await sender.close()
    asyncio.run(main())
