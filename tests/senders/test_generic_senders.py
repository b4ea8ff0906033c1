"""The generic senders: ``smtp`` (submission to a user's MTA) and ``command``."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from lab.events import Event, EventLog
from lab.senders.base import OutgoingMessage, Sender, SenderEnv
from lab.senders.generic import CommandSender, SmtpSubmitSender, SubmissionFailed
from lab.world import Topology

TOPOLOGY = Topology("127.0.0.1", "127.0.0.1", ("127.0.0.1",), ("127.0.0.1",), "127.0.0.1")


def _env(tmp_path: Path, events: EventLog) -> SenderEnv:
    return SenderEnv(dns=("127.0.0.1", 53), smtp_port=25, https_port=443,
                     ca_file=tmp_path / "ca.pem", workdir=tmp_path / "work", emit=events.emit,
                     topology=TOPOLOGY)


class FakeMta:
    """A minimal SMTP server that records one transaction (what the user's MTA would get)."""

    def __init__(self, final: bytes = b"250 2.0.0 queued\r\n") -> None:
        self.final = final
        self.lines: list[bytes] = []
        self.data = b""
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake.test ESMTP\r\n")
        while line := await reader.readline():
            self.lines.append(line)
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                while (chunk := await reader.readline()) != b".\r\n":
                    self.data += chunk
                writer.write(self.final)
                self.done.set()
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            elif verb == b"EHLO":
                writer.write(b"250-fake.test\r\n250 8BITMIME\r\n")
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


def test_registered() -> None:
    assert Sender.registry.get("smtp") is SmtpSubmitSender
    assert Sender.registry.get("command") is CommandSender
    assert not SmtpSubmitSender.own_status and not CommandSender.own_status


def test_smtp_submits_the_probe(tmp_path: Path) -> None:
    async def scenario() -> tuple[FakeMta, list[Event], OutgoingMessage]:
        mta = FakeMta()
        server = await asyncio.start_server(mta.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        events = EventLog()
        sender = SmtpSubmitSender(port=port)
        await sender.start(_env(tmp_path, events))
        probe = OutgoingMessage("<dots@sender.test>", "probe@sender.test",
                                "rcpt@victim.test", ".leading dot subject")
        await sender.inject(probe)
        await asyncio.wait_for(mta.done.wait(), 5)
        await sender.close()
        server.close()
        await server.wait_closed()
        return mta, events.since(0), probe

    mta, events, probe = asyncio.run(scenario())
    assert b"MAIL FROM:<probe@sender.test>\r\n" in mta.lines
    assert b"RCPT TO:<rcpt@victim.test>\r\n" in mta.lines
    assert b"Message-ID: <dots@sender.test>\r\n" in mta.data
    submitted = [e for e in events if e.kind == "submitted"]
    assert [e.get("message_id") for e in submitted] == [probe.message_id]


def test_smtp_refusal_raises(tmp_path: Path) -> None:
    async def scenario() -> None:
        mta = FakeMta(final=b"554 5.7.1 no thanks\r\n")
        server = await asyncio.start_server(mta.handle, "127.0.0.1", 0)
        sender = SmtpSubmitSender(host="127.0.0.1", port=server.sockets[0].getsockname()[1])
        await sender.start(_env(tmp_path, EventLog()))
        with pytest.raises(SubmissionFailed, match=r"554 5\.7\.1 no thanks"):
            await sender.inject(OutgoingMessage.probe("rcpt@victim.test"))
        await sender.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_command_runs_with_placeholders(tmp_path: Path) -> None:
    script = ("import sys; print('rcpt', sys.argv[1]); print('from', sys.argv[2]); "
              "print('mid', sys.argv[4]); "
              "print('has-mid', sys.argv[4].encode() in open(sys.argv[3], 'rb').read()); "
              "sys.exit(3)")
    cmd = f"{sys.executable} -c \"{script}\" {{rcpt}} {{from}} {{message_file}} {{message_id}}"

    async def scenario() -> tuple[list[Event], OutgoingMessage]:
        events = EventLog()
        sender = CommandSender(cmd=cmd, timeout=20)
        await sender.start(_env(tmp_path, events))
        probe = OutgoingMessage.probe("rcpt@victim.test")
        await sender.inject(probe)
        done = await events.wait_for(lambda es: [e for e in es if e.kind == "exit"], 0,
                                     time.monotonic() + 20)
        assert done
        await sender.close()
        return events.since(0), probe

    events, probe = asyncio.run(scenario())
    lines = [e.get("line") for e in events if e.kind == "log"]
    assert lines == ["rcpt rcpt@victim.test", "from probe@sender.test",
                     f"mid {probe.message_id}", "has-mid True"]
    (exit_event,) = [e for e in events if e.kind == "exit"]
    assert exit_event.get("returncode") == 3
    assert exit_event.get("message_id") == probe.message_id


def test_command_needs_a_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTASTS_LAB_COMMAND", raising=False)
    with pytest.raises(ValueError, match="needs a command"):
        asyncio.run(CommandSender().start(_env(tmp_path, EventLog())))


def test_command_close_kills_a_hanging_program(tmp_path: Path) -> None:
    async def scenario() -> list[Event]:
        events = EventLog()
        sender = CommandSender(cmd=f"{sys.executable} -c 'import time; time.sleep(60)'")
        await sender.start(_env(tmp_path, events))
        await sender.inject(OutgoingMessage.probe("rcpt@victim.test"))
        started = time.monotonic()
        await sender.close()
        assert time.monotonic() - started < 5
        return events.since(0)

    events = asyncio.run(scenario())
    assert [e.kind for e in events][:1] == ["started"]
