"""The policy host says when the attacker's mitmproxy listens (the runner waits on it)."""

from __future__ import annotations

import asyncio
import socket
import warnings
from pathlib import Path

import pytest

from lab.attacks.policy_mitm import PolicyMitm
from lab.events import EventLog
from lab.pki import LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import PolicyHost

pytest.importorskip("mitmproxy", reason="the mitm extra: pip install mtasts-lab[mitm]")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's add-ons, on import
    import mitmproxy.addons
    import mitmproxy.master  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mitmproxy"),
]

DOMAIN = "victim.test"
POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmax_age: 86400\n"


def test_ready_waits_for_the_listening_mitmproxy_and_only_when_intercepting(
        tmp_path: Path) -> None:
    intercepted = PolicyMitm(mode="none").transform(PolicyResponse(body=POLICY), DOMAIN)

    async def main() -> None:
        host = PolicyHost(LabPKI(tmp_path), EventLog().emit)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        await host.start(sock)
        try:
            host.configure({DOMAIN: PolicyResponse(body=POLICY)})
            assert await host.ready() is False  # nothing to wait for

            host.configure({DOMAIN: intercepted})
            assert await asyncio.wait_for(host.ready(), 120) is True
            # ready means listening: mitmproxy accepts a connection right now
            assert host._mitm is not None and host._mitm.address is not None
            _, writer = await asyncio.open_connection(*host._mitm.address)
            writer.close()
            await writer.wait_closed()
            assert await host.ready() is False  # already up: no wait the second time

            host.configure({DOMAIN: PolicyResponse(body=POLICY)})
            assert await host.ready() is False  # no interception configured any more
        finally:
            await asyncio.wait_for(host.close(), 15)

    asyncio.run(main())
