"""The postfix-3.10 adapter's reporting period: it waits for collectd to hold every session
Postfix reported, rolls collectd's day over, runs a fresh reportd for the closed day (the
previous one ended by its PID) and says ``tlsrpt-settled`` when reportd has nothing due.

The place here runs the commands on this host for real (the flush script, the processes it
starts and ends); collectd's lines are fed as the container's log would hand them over."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.senders.mta import SenderFailed
from lab.senders.place import run_command
from lab.senders.postfix_tlsrpt import Postfix310Sender

DATAGRAM = "2026-12-02 tlsrpt_collectd INFO tlsrpt 376 : Dummy collectd got datagram {...}"
ROLLED = "2026-12-02 tlsrpt_collectd INFO tlsrpt 543 : Old database moved to x, create new x"
POSTFIX_TLSRPT = ("Dec 02 11:04:48 sender postfix/smtp[41]: TLSRPT: status=failure, "
                  "domain=victim.test, failure_type=starttls_not_supported")


class HostPlace:
    """Runs commands here; a SIGUSR2 to collectd is answered with collectd's roll-over line."""

    def __init__(self, sender: Postfix310Sender, rolls: bool = True) -> None:
        self.sender, self.rolls, self.ran = sender, rolls, []  # type: list[list[str]]

    async def run(self, argv: Sequence[str], stdin: bytes | None = None,
                  timeout: float = 20.0) -> tuple[int, str]:
        self.ran.append(list(argv))
        if "kill -USR2" in " ".join(argv):
            if self.rolls:
                asyncio.get_running_loop().call_soon(self.sender.on_line, "tlsrpt-collectd",
                                                     ROLLED)
            return 0, ""
        return await run_command(argv, stdin, timeout)


def _sender(tmp_path: Path, rolls: bool = True) -> tuple[Postfix310Sender, list[Any]]:
    sender = Postfix310Sender()
    events: list[Any] = []
    sender.env = type("Env", (), {"emit": lambda self, *e: events.append(e)})()
    sender.place = HostPlace(sender, rolls)  # type: ignore[assignment]
    sender.root = tmp_path
    (tmp_path / "tlsrpt").mkdir(parents=True)
    return sender, events


def _stub_reportd(argv: list[str]) -> list[str]:
    """A stand-in for tlsrpt-reportd: runs until it is ended."""
    return [sys.executable, "-c", "import signal; signal.pause()"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return stat[0] != "Z"


def test_the_flush_waits_for_every_datagram_then_rolls_and_starts_reportd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_flush_and_next_period(tmp_path, monkeypatch))


async def _flush_and_next_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sender, events = _sender(tmp_path)
    monkeypatch.setattr(sender, "reportd_argv", lambda: _stub_reportd([]))
    sender.on_line("postfix", POSTFIX_TLSRPT)
    sender.on_line("postfix", POSTFIX_TLSRPT)
    sender.on_line("tlsrpt-collectd", DATAGRAM)
    flush = asyncio.ensure_future(sender.flush_reports())
    await asyncio.sleep(0)
    assert not flush.done() and not any("USR2" in " ".join(a) for a in sender.place.ran)
    sender.on_line("tlsrpt-collectd", DATAGRAM)  # the second session's datagram
    await asyncio.wait_for(flush, 10)
    first = int((tmp_path / "tlsrpt" / "reportd.pid").read_text())
    try:
        assert _alive(first)
        # reportd's lines count only now; it settles once it sleeps with nothing due
        sender.on_line("tlsrpt-reportd", "x tlsrpt_reportd DEBUG tlsrpt 1: Sleeping for 0 seconds")
        assert not [e for e in events if e[1] == "tlsrpt-settled"]
        sender.on_line("tlsrpt-reportd",
                       "x tlsrpt_reportd INFO tlsrpt 1: Report delivery 1 for domain victim.test "
                       "succeeded in run 0")
        sender.on_line("tlsrpt-reportd",
                       "x tlsrpt_reportd DEBUG tlsrpt 1: Sleeping for 299 seconds")
        settled = [e for e in events if e[1] == "tlsrpt-settled"]
        assert len(settled) == 1
        assert [e[2]["line"] for e in events if e[1] == "log"] == [
            "x tlsrpt_reportd INFO tlsrpt 1: Report delivery 1 for domain victim.test "
            "succeeded in run 0"]
        # the next period ends the old reportd by its PID and drops the closed day
        await asyncio.wait_for(sender.start_period(), 15)
        assert not _alive(first)
        assert not (tmp_path / "tlsrpt" / "reportd.pid").exists()
        assert [e for e in events if e[1] == "tlsrpt-settled"][-1][2]["pending"] == 0
        sender.on_line("tlsrpt-reportd", "x DEBUG tlsrpt 1: Sleeping for 299 seconds")
        assert len([e for e in events if e[1] == "tlsrpt-settled"]) == 2  # none from it
    finally:
        if _alive(first):
            os.kill(first, signal.SIGKILL)


def test_a_missing_datagram_or_roll_over_is_an_error_at_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab.senders.postfix_tlsrpt.WAIT_S", 0.2)
    sender, _ = _sender(tmp_path / "a")
    sender.on_line("postfix", POSTFIX_TLSRPT)
    with pytest.raises(SenderFailed, match="collectd got 0 of the 1 TLSRPT datagrams"):
        asyncio.run(sender.start_period())
    sender, _ = _sender(tmp_path / "b", rolls=False)
    with pytest.raises(SenderFailed, match="did not roll its day over"):
        asyncio.run(sender.start_period())
