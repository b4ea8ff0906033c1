"""``serve`` prints where everything is and swaks lines that work when pasted."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None,
                                reason="swaks is not installed (Debian package swaks)")

READY = "Ctrl-C ends."


def test_printed_swaks_lines_deliver_or_refuse() -> None:
    serve = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "serve", "starttls/strip-starttls-enforce",
         "--phase", "phase1", "--for", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert serve.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(READY in line for line in seen) and time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            seen.append(line)
        text = "".join(seen)
        assert READY in text, text
        assert "sender runs in" in text and "MX mx1.victim.test: " in text
        lines = {kind: shlex.split(line.split(":", 1)[1]) for line in seen
                 for kind in ("strict", "opportunistic") if f"swaks, {kind}:" in line}
        assert set(lines) == {"strict", "opportunistic"}, text
        assert os.path.isfile(lines["strict"][lines["strict"].index("--tls-ca-path") + 1])
        # the served phase strips STARTTLS: strict swaks refuses, opportunistic delivers
        strict = subprocess.run(lines["strict"], capture_output=True, text=True, timeout=60,
                                check=False)
        assert strict.returncode != 0 and "STARTTLS" in strict.stdout + strict.stderr
        opportunistic = subprocess.run(lines["opportunistic"], capture_output=True, text=True,
                                       timeout=60, check=False)
        assert opportunistic.returncode == 0, opportunistic.stdout + opportunistic.stderr
        assert "250" in opportunistic.stdout
    finally:
        serve.send_signal(signal.SIGINT)
        rest, _ = serve.communicate(timeout=30)
    assert "stopped; the world is down" in rest
