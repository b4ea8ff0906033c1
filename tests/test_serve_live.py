"""``serve`` judges each message live, and steps through a scenario's phases on one world
(swaks driven through a live ``serve`` session; real sockets, real TLS)."""

from __future__ import annotations

import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("swaks") is None,
                                 reason="swaks is not installed (Debian package swaks)")]

DEADLINE_S = 90.0


class Serve:
    """A running ``mtasts-lab serve``: its output read by a thread, waited on by pattern."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.cli", "serve", *args, "--for", "600"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._read = 0
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def until(self, text: str, deadline_s: float = DEADLINE_S) -> list[str]:
        """The lines after the last call up to and including the first containing
        ``text``."""
        deadline = time.monotonic() + deadline_s
        start = self._read
        while True:
            for i in range(self._read, len(self.lines)):
                if text in self.lines[i]:
                    self._read = i + 1
                    return self.lines[start:i + 1]
            self._read = len(self.lines)
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line with {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)

    def enter(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def swaks(self, kind: str, block: list[str]) -> subprocess.CompletedProcess[str]:
        line = next(x for x in block if f"swaks, {kind}:" in x)
        return subprocess.run(shlex.split(line.split(":", 1)[1]), capture_output=True,
                              text=True, timeout=DEADLINE_S, check=False)

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=DEADLINE_S)
        return self.until("stopped; the world is down")


@contextmanager
def serving(*args: str) -> Iterator[Serve]:
    serve = Serve(*args)
    try:
        yield serve
    finally:
        if serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGINT)
            try:
                serve.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                serve.proc.kill()
                serve.proc.wait()
        serve.pump.join(DEADLINE_S)
        for pipe in (serve.proc.stdin, serve.proc.stdout):
            if pipe is not None:
                pipe.close()


def verdict_after(block: list[str]) -> tuple[str, str]:
    """(the account line, the VERDICT line) of the last judged session in ``block``."""
    at = max(i for i, x in enumerate(block) if x.lstrip().startswith("VERDICT"))
    return block[at - 1], block[at]


def test_each_message_is_judged_as_it_arrives() -> None:
    with serving("starttls/strip-starttls-enforce") as serve:
        block = serve.until("Ctrl-C ends.")
        assert any("Phase phase1" in x for x in block), block
        assert any("expected         not-delivered (must)" in x for x in block), block
        strict = serve.swaks("strict", block)
        assert strict.returncode != 0
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "refused:" in account and "strip-starttls" in account, account
        assert "VERDICT pass" in verdict, verdict
        opportunistic = serve.swaks("opportunistic", block)
        assert opportunistic.returncode == 0, opportunistic.stdout
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "delivered in plaintext" in account and "strip-starttls" in account, account
        assert "VERDICT fail" in verdict and "observed delivered-plaintext" in verdict, verdict
        serve.stop()


def test_step_moves_to_the_next_phase_on_the_same_world() -> None:
    with serving("certificates/swap-certificate-self-signed-enforce", "--step") as serve:
        first = serve.until("Press Enter for the next phase (prime)")
        header = [x for x in first if "DNS server" in x or "lab CA to trust" in x]
        assert any("Phase baseline (1 of 3)" in x for x in first), first
        assert serve.swaks("strict", first).returncode == 0
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "delivered over TLS" in account and "VERDICT pass" in verdict, (account, verdict)
        serve.enter()
        second = serve.until("Press Enter for the next phase (phase1)")
        assert any("Phase prime (2 of 3)" in x for x in second), second
        serve.enter()
        third = serve.until("This is the last phase")
        assert any("Phase phase1 (3 of 3)" in x for x in third), third
        assert any("attacks          swap-certificate" in x for x in third), third
        # the backend stayed: no new DNS server or CA was announced, the old lines still work
        assert not [x for x in second + third if "DNS server" in x or "lab CA" in x]
        assert header and serve.swaks("strict", first).returncode != 0
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "refused: the sender hung up after the forged certificate (self-signed" in \
            account, account
        assert "VERDICT pass" in verdict, verdict
        assert serve.swaks("opportunistic", first).returncode == 0
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "intercepted: the attacker decrypted this session (the sender accepted the " \
               "attacker's self-signed certificate for mx1.victim.test)" in account, account
        assert "VERDICT fail" in verdict and "observed intercepted" in verdict, verdict
        serve.stop()


def test_a_message_to_the_attackers_mx_is_intercepted_and_swaks_proves_nothing() -> None:
    """swaks does no MX lookup: pointed by hand at the attacker's MX it is intercepted, and
    the verdict says the forged MX record never reached it (inconclusive), not a fail."""
    with serving("mx/spoof-mx-enforce") as serve:
        block = serve.until("Ctrl-C ends.")
        line = next(x for x in block if "MX mx.attacker.test:" in x)
        assert "-> the attacker's MX" in line, line
        address, port = line.split(":", 1)[1].split()[0], line.split(" port ")[1].split()[0]
        words = shlex.split(next(x for x in block if "swaks, opportunistic:" in x)
                            .split(":", 1)[1])
        words[words.index("--server") + 1] = f"{address}:{port}"
        sent = subprocess.run(words, capture_output=True, text=True, timeout=DEADLINE_S,
                              check=False)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        account, verdict = verdict_after(serve.until("VERDICT"))
        assert "intercepted: the message went to mx.attacker.test, a host the attacker runs" \
            in account, account
        assert "VERDICT inconclusive" in verdict and "spoof-mx never fired" in verdict, verdict
        serve.stop()
