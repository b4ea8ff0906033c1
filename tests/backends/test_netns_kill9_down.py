"""After ``kill -9`` of a runner mid-run with real Postfix, ``mtasts-lab down`` leaves
nothing: no lab namespace, netns mount, /etc/netns entry, process, instance directory or
state file. Also after a normal run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backends.netns import NetnsBackend
from lab.backends.netns_state import STATE_DIR
from lab.run_dirs import RUN_DIR_PREFIX
from lab.senders.postfix import PostfixSender

MISSING = NetnsBackend.check() + PostfixSender.check()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason="needs netns and Postfix: " + "; ".join(MISSING)),
]
SCENARIO = "starttls/strip-starttls-enforce"


def _lab_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.startswith("mtl-")}


def _leftovers(before: set[str]) -> dict[str, list[str]]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if "/netns/mtl-" in line]
    procs = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "mtasts-lab-postfix-" in cmdline:
            procs.append(f"{pid}: {cmdline.strip()}")
    return {
        "namespaces": sorted(_lab_namespaces()),
        "mounts": mounts,
        "etc-netns": sorted(p.name for p in Path("/etc/netns").glob("mtl-*"))
        if Path("/etc/netns").is_dir() else [],
        "processes": procs,
        "instance-dirs": sorted(str(p) for p in Path("/var/tmp").glob("mtasts-lab-postfix-*")
                                if str(p) not in before),
        "state-files": sorted(p.name for p in STATE_DIR.glob("*.json"))
        if STATE_DIR.is_dir() else [],
        "run-dirs": sorted(str(p) for p in Path(tempfile.gettempdir()).glob(RUN_DIR_PREFIX + "*")
                           if str(p) not in before),
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lab.cli", *args]


@pytest.fixture
def clean_before() -> Iterator[set[str]]:
    if _lab_namespaces():
        pytest.skip("another lab run is using namespaces on this machine")
    before = {str(p) for p in Path("/var/tmp").glob("mtasts-lab-postfix-*")}
    before |= {str(p) for p in Path(tempfile.gettempdir()).glob(RUN_DIR_PREFIX + "*")}
    yield before
    subprocess.run(_cli("down"), capture_output=True, timeout=120, check=False)


def test_kill_9_mid_run_then_down_leaves_nothing(clean_before: set[str]) -> None:
    runner = subprocess.Popen(
        _cli("run", "--backend", "netns", "--sender", "postfix", SCENARIO),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stderr is not None
        # the first progress line means Postfix, the resolver and the namespaces are up
        deadline = time.monotonic() + 90
        line = ""
        while time.monotonic() < deadline and runner.poll() is None:
            line = runner.stderr.readline()
            if line.startswith("[") and "postfix" in line:
                break
        assert line.startswith("["), f"runner never reported progress: {line!r}"
        up = _leftovers(clean_before)
        assert up["namespaces"] and up["processes"] and up["instance-dirs"] and up["run-dirs"], up
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
        if runner.stderr is not None:
            runner.stderr.close()
    # the runner's children (Postfix, the resolver) outlive it; down must find and end them
    down = subprocess.run(_cli("down"), capture_output=True, text=True, timeout=120,
                          check=False)
    assert down.returncode == 0, down.stderr
    assert "removed" in down.stdout
    # judge only what this run made (another lab run may be going on beside this test)
    left = _leftovers(clean_before)
    still = {kind: sorted(set(items) & set(up[kind])) for kind, items in left.items()}
    assert not any(still.values()), (still, down.stdout)


def test_normal_run_leaves_nothing(clean_before: set[str]) -> None:
    before = _leftovers(clean_before)
    run = subprocess.run(_cli("run", "-q", "--backend", "netns", "--sender", "postfix",
                              SCENARIO), capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    left = _leftovers(clean_before)
    new = {kind: sorted(set(items) - set(before[kind])) for kind, items in left.items()}
    assert not any(new.values()), new
