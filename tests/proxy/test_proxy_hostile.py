"""Hostile input through the live proxy: the issue 10 reproduction (pipelined STARTTLS and a
line over 4096 bytes, then the MX's refusal) ends in a 421 and a logged close, never in a
crashed connection task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lab.attacks.base import SmtpAttack
from lab.attacks.passthrough import Passthrough
from lab.attacks.reject_starttls import RejectStarttls

from .kit import MX, Client, run, start_lab

pytestmark = pytest.mark.integration

ERROR = "command line longer than 4096 bytes"


async def _rest(client: Client) -> bytes:
    """Everything the proxy sends until it closes (bounded by the test's deadline)."""
    out = b""
    while data := await client.reader.read(65536):
        out += data
    return out


@pytest.mark.parametrize(("attack", "refusal"), [
    (Passthrough(), b"454 TLS not available\r\n"),  # the MX itself refuses (no TLS there)
    (RejectStarttls(code=454), b"454 4.7.0 TLS not available due to temporary reason\r\n"),
])
def test_pipelined_starttls_and_an_over_long_line(tmp_path: Path, attack: SmtpAttack,
                                                  refusal: bytes) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path, mx_tls=False)
        lab.proxy.configure(MX, [attack])
        try:
            client = await Client.connect(lab.port)
            assert (await client.reply()).code == 220
            await client.command(b"EHLO sender.test")
            client.writer.write(b"STARTTLS\r\n" + b"A" * 5000)
            rest = await _rest(client)
            await client.close()
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        assert rest == refusal + f"421 4.5.0 proxy closing: {ERROR}\r\n".encode()
        assert close["reason"] == f"protocol error from the client: {ERROR}"
        assert lab.events("protocol-error") == [{"conn": f"{MX}/1", "mx": MX, "leg": "client",
                                                 "error": ERROR}]
        assert lab.events("internal-error") == []
        assert f"[protocol error: {ERROR}]" in [e["text"] for e in close["transcript"]]
    run(main)


def test_an_over_long_command_line_is_a_421_to_the_sender(tmp_path: Path) -> None:
    async def main() -> None:
        lab = await start_lab(tmp_path)
        lab.proxy.configure(MX, [Passthrough()])
        try:
            client = await Client.connect(lab.port)
            assert (await client.reply()).code == 220
            client.writer.write(b"EHLO sender.test\r\n" + b"X" * 9000 + b"\r\n")
            rest = await asyncio.wait_for(_rest(client), 10)
            await client.close()
            (close,) = await lab.wait("close")
        finally:
            await lab.close()
        assert rest.endswith(f"421 4.5.0 proxy closing: {ERROR}\r\n".encode())
        assert close["reason"] == f"protocol error from the client: {ERROR}"
        assert lab.events("internal-error") == []
    run(main)
