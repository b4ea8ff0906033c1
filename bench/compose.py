"""Start-up and run times of the compose backend (figures, never asserted).

    DOCKER_HOST=unix:///var/lib/mtasts-lab-docker/docker.sock \\
      python bench/compose.py [--cold] [--cold-base] [--sender postfix] [SCENARIO ...]

* ``--cold-base``: rebuild the base images too (mmdebstrap | docker import), then the images,
  then bring the lab up: cold start with the base image build included.
* ``--cold``: the lab images rebuilt (wheels + docker build; base images cached), then up:
  cold start with the base image build excluded.
* always: warm start (images present, no containers: ``up()`` plus the sender's start),
  reuse start (containers kept running from the previous run), and the catalogue's run
  time on compose for the sender (default: every scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import backends, report, senders
from lab.backends.compose import ComposeBackend
from lab.events import EventLog
from lab.pki import LabPKI
from lab.runner import RunOptions, exit_code, run_catalogue
from lab.scenario import load_catalogue, select
from lab.senders.base import Sender

ROOT = Path(__file__).resolve().parents[1]


def build(*args: str) -> float:
    t0 = time.monotonic()
    subprocess.run([str(ROOT / "scripts" / "build-images"), *args], check=True)
    return time.monotonic() - t0


async def start(sender_name: str, keep: bool) -> tuple[float, float]:
    """(seconds to up(), seconds to the sender's start()), then down (unless kept)."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--cold-base", action="store_true")
    parser.add_argument("--sender", default="postfix")
    parser.add_argument("scenarios", nargs="*")
    args = parser.parse_args()
    figures: list[str] = []
    if args.cold_base:
        t_build = build("--rebuild-base")
        t_up, t_sender = asyncio.run(start(args.sender, keep=False))
        figures.append(f"cold start, base images included: build {t_build:.1f} s + up "
                       f"{t_up:.1f} s + {args.sender} {t_sender:.1f} s = "
                       f"{t_build + t_up + t_sender:.1f} s")
    if args.cold:
        for image in ("lab", "postfix", "exim"):  # the base images stay (cached by tag)
            subprocess.run(["/usr/bin/docker", "image", "rm", "-f", f"mtasts-lab/{image}:latest"],
                           check=False, capture_output=True)
        t_build = build()
        t_up, t_sender = asyncio.run(start(args.sender, keep=False))
        figures.append(f"cold start, base images cached: build {t_build:.1f} s + up "
                       f"{t_up:.1f} s + {args.sender} {t_sender:.1f} s = "
                       f"{t_build + t_up + t_sender:.1f} s")
    t_up, t_sender = asyncio.run(start(args.sender, keep=True))
    figures.append(f"warm start (images built, no containers): up {t_up:.2f} s + "
                   f"{args.sender} {t_sender:.2f} s")
    t_up, t_sender = asyncio.run(start(args.sender, keep=False))
    figures.append(f"reuse start (containers running): up {t_up:.2f} s + "
                   f"{args.sender} {t_sender:.2f} s")
    scenarios = select(args.scenarios) if args.scenarios else load_catalogue()
    t0 = time.monotonic()
    records = asyncio.run(run_catalogue(scenarios, RunOptions(backend="compose",
                                                              senders=(args.sender,))))
    elapsed = time.monotonic() - t0
    verdicts: dict[str, int] = {}
    for r in records:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    figures.append(f"catalogue on compose with {args.sender}: {len(scenarios)} scenarios, "
                   f"{len(records)} phases in {elapsed:.1f} s (bring-up included); "
                   f"{', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}")
    print(f"compose bench ({os.environ.get('DOCKER_HOST', 'default daemon')}):")
    for line in figures:
        print("  " + line)
    for line in report.problems(records):
        print("  " + line)
    return exit_code(records)


if __name__ == "__main__":
    sys.exit(main())
