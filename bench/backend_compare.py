"""Shared by bench/catalogue.py and bench/compose.py: the same sender on several backends,
time per scenario side by side, and the compose lab's cold start. Figures, never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lab import backends, senders
from lab.runner import Runner, RunOptions
from lab.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
AIM = 2.0
"""The aim for compose against netns, per scenario (issue 11)."""
COLD_AIM_S = 120.0


def run_on(backend: str, sender: str, scenarios: Sequence[Scenario]) -> tuple[Runner, float]:
    """One catalogue run; the runner (records, per-scenario times) and its wall time."""
    runner = Runner(RunOptions(backend=backend, senders=(sender,)))
    t0 = time.perf_counter()
    asyncio.run(runner.run(scenarios))
    return runner, time.perf_counter() - t0


def per_scenario(runner: Runner, sender: str) -> dict[str, float]:
    return {scenario: seconds for name, scenario, seconds in runner.scenario_s
            if name == sender}


def comparison(runs: dict[str, tuple[Runner, float]], sender: str) -> list[str]:
    """Lines: each backend's wall time, then a row per scenario with the time on each backend
    and the ratio of the last backend to the first (compose / netns when given so)."""
    names = list(runs)
    out = []
    for name, (runner, wall) in runs.items():
        verdicts: dict[str, int] = {}
        for r in (r for r in runner.records if r.sender == sender):
            verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
        start = runner.sender_start_s.get(sender, 0.0)
        scen = sum(per_scenario(runner, sender).values())
        out.append(f"{name}: wall {wall:.1f} s = bring-up {runner.bringup_s or 0:.1f} s + "
                   f"{sender} start {start:.1f} s + scenarios {scen:.1f} s; "
                   f"{sum(verdicts.values())} phases "
                   f"({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))})")
    if len(names) < 2:
        return out
    first, last = names[0], names[-1]
    a, b = per_scenario(runs[first][0], sender), per_scenario(runs[last][0], sender)
    common = [s for s in a if s in b]
    ratios = [b[s] / a[s] for s in common if a[s] > 0]
    width = max((len(s) for s in common), default=10)
    out.append(f"time per scenario (reset and every phase), {sender}:")
    out.append(f"  {'scenario':{width}}  " + "  ".join(f"{n:>8}" for n in names)
               + f"  {last}/{first}")
    for s in common:
        ratio = b[s] / a[s] if a[s] > 0 else float("nan")
        cells = "  ".join(f"{per_scenario(runs[n][0], sender).get(s, float('nan')):8.2f}"
                          for n in names)
        flag = "  over the aim" if ratio > AIM else ""
        out.append(f"  {s:{width}}  {cells}  {ratio:6.2f}x{flag}")
    if ratios:
        total = sum(b[s] for s in common) / max(1e-9, sum(a[s] for s in common))
        over = sum(1 for r in ratios if r > AIM)
        out.append(f"  {last}/{first}: scenarios in total {total:.2f}x, median "
                   f"{statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x; "
                   f"{over} of {len(ratios)} over {AIM:g}x")
    return out


def build(*args: str) -> float:
    t0 = time.monotonic()
    subprocess.run([str(ROOT / "scripts" / "build-images"), *args], check=True)
    return time.monotonic() - t0


async def start_compose(sender_name: str, keep: bool) -> tuple[float, float]:
    """(seconds to ``up()``, seconds to the sender's ``start()``), then down unless kept."""
    from lab.backends.compose import ComposeBackend
    from lab.events import EventLog
    from lab.pki import LabPKI
    from lab.senders.base import Sender

    backends.load_all()
    senders.load_all()
    with tempfile.TemporaryDirectory(prefix="mtasts-lab-bench-") as tmp:
        backend = ComposeBackend(keep=keep)
        t0 = time.monotonic()
        try:
            await backend.up(Path(tmp), LabPKI(Path(tmp) / "pki"), EventLog())
            t_up = time.monotonic() - t0
            sender = Sender.registry.get(sender_name)()
            t1 = time.monotonic()
            await sender.start(backend.sender_env(Path(tmp) / "sender"))
            t_sender = time.monotonic() - t1
            await sender.close()
        finally:
            await backend.down()
    return t_up, t_sender


def cold_start(sender: str, base: bool) -> str:
    """Remove the lab's images (and the base images with ``base``), build them, bring the
    lab up and start the sender: the time a first run takes on this machine."""
    from lab.backends import compose_docker as cd

    asyncio.run(_remove_project())
    images = [cd.LAB_IMAGE, *cd.SENDER_IMAGES.values()]
    for image in images:
        subprocess.run(["/usr/bin/docker", "image", "rm", "-f", image], check=False,
                       capture_output=True)
    t_build = build(*(["--rebuild-base"] if base else []))
    t_up, t_sender = asyncio.run(start_compose(sender, keep=False))
    total = t_build + t_up + t_sender
    what = "base images included" if base else "base images cached"
    aim = f" (aim: under {COLD_AIM_S:.0f} s)" if base else ""
    return (f"cold start, {what}: build {t_build:.1f} s + up {t_up:.1f} s + {sender} "
            f"{t_sender:.1f} s = {total:.1f} s{aim}")


async def _remove_project() -> None:
    from lab.backends.compose import remove_project

    await remove_project()


async def command_round_trips(sender_name: str, n: int = 20) -> str:
    """One command (``true``) in the sender's container, ``n`` times each way: ``docker
    exec`` against the agent's command socket (the lab kept running afterwards)."""
    from lab.backends import compose_docker as cd
    from lab.backends.compose import ComposeBackend
    from lab.control import ControlClient
    from lab.events import EventLog
    from lab.pki import LabPKI
    from lab.senders.agent import command_socket
    from lab.senders.base import Sender

    backends.load_all()
    senders.load_all()
    with tempfile.TemporaryDirectory(prefix="mtasts-lab-bench-") as tmp:
        backend = ComposeBackend(keep=True)
        try:
            await backend.up(Path(tmp), LabPKI(Path(tmp) / "pki"), EventLog())
            sender = Sender.registry.get(sender_name)()
            await sender.start(backend.sender_env(Path(tmp) / "sender"))
            ctr = await asyncio.to_thread(cd.container, backend.docker, sender_name)
            agent = ControlClient(command_socket(backend.run_dir, sender_name))
            times: dict[str, list[float]] = {"docker exec": [], "agent socket": []}
            for _ in range(n):
                t0 = time.perf_counter()
                await cd.exec_in(ctr, ["true"])
                times["docker exec"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await agent.request("POST", "/run", {"argv": ["true"], "timeout": 10})
                times["agent socket"].append(time.perf_counter() - t0)
            await sender.close()
        finally:
            await backend.down()
    return "one command in the sender's container: " + ", ".join(
        f"{way} median {statistics.median(v) * 1000:.0f} ms (worst {max(v) * 1000:.0f})"
        for way, v in times.items())
