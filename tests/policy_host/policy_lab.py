"""The policy host on a loopback socket with its event log: the harness of the policy-host
tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lab.backends.sockets import bound_socket
from lab.events import EventLog
from lab.pki import LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import PolicyHost

DOMAIN = "victim.test"
HOST = f"mta-sts.{DOMAIN}"
TIMEOUT = 10.0


@dataclass
class Lab:
    host: PolicyHost
    log: EventLog
    port: int
    pki: LabPKI

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.log.select(source="policy", kind=kind)]

    async def wait(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        def enough(events: Any) -> bool:
            return sum(1 for e in events if e.source == "policy" and e.kind == kind) >= count

        assert await self.log.wait_for(enough, 0, time.monotonic() + TIMEOUT), kind
        return self.events(kind)


L = TypeVar("L", bound=Lab)


def run_host(responses: Mapping[str, PolicyResponse], body: Callable[[L], Awaitable[None]],
             tmp_path: Path, lab: Callable[[PolicyHost, EventLog, int, LabPKI], L],
             **options: float) -> None:
    """Start a policy host answering ``responses``, run ``body`` against it, close it."""
    async def main() -> None:
        pki = LabPKI(tmp_path)
        log = EventLog()
        host = PolicyHost(pki, log.emit, **options)
        host.configure(responses)
        sock = bound_socket(socket.SOCK_STREAM, "127.0.0.1", 0)
        await host.start(sock)
        try:
            await asyncio.wait_for(body(lab(host, log, sock.getsockname()[1], pki)), 30)
        finally:
            await asyncio.wait_for(host.close(), 10)

    asyncio.run(main())
