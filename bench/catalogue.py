"""Wall time of the scenario catalogue: bring-up, per scenario and sender, verdict delay.

    python bench/catalogue.py [--backend loopback] [--sender NAME]... [--rounds N] [-j N]

Prints figures; asserts nothing about speed (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict

from lab import backends, senders
from lab.attacks import load_all
from lab.runner import Record, Runner, RunOptions, exit_code, run_catalogue
from lab.scenario import load_catalogue


def _figures(label: str, values: list[float], unit: str = "s") -> str:
    if not values:
        return f"{label}: none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"{label}: n={len(values)} median={statistics.median(values):.3f}{unit} "
            f"mean={statistics.fmean(values):.3f}{unit} p95={p95:.3f}{unit} "
            f"worst={max(values):.3f}{unit}")


async def _bringup(options: RunOptions) -> float:
    runner = Runner(options)
    await runner.run([])
    return runner.bringup_s or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="loopback")
    parser.add_argument("--sender", action="append")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    args = parser.parse_args()
    load_all()
    senders.load_all()
    backends.load_all()
    sender_names = args.sender or ["reference", "opportunistic"]
    scenarios = load_catalogue()
    options = RunOptions(backend=args.backend, senders=sender_names)

    bringup = [asyncio.run(_bringup(options)) for _ in range(args.rounds)]
    walls: list[float] = []
    per_pair: dict[str, list[float]] = defaultdict(list)
    delays: list[float] = []
    codes = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        records: list[Record] = asyncio.run(run_catalogue(scenarios, options, jobs=args.jobs))
        walls.append(time.perf_counter() - t0)
        codes.append(exit_code(records))
        pairs: dict[tuple[str, str], float] = defaultdict(float)
        for r in records:
            pairs[(r.scenario, r.sender)] += r.duration_s
            if r.verdict_delay_ms is not None:
                delays.append(r.verdict_delay_ms)
        for (_, sender), seconds in pairs.items():
            per_pair[sender].append(seconds)

    pairs_per_round = len(scenarios) * len(sender_names)
    print(f"catalogue: {len(scenarios)} scenarios x {len(sender_names)} senders "
          f"({', '.join(sender_names)}) on {args.backend}, {args.rounds} rounds, "
          f"-j {args.jobs}; exit codes {codes}")
    print(_figures("bring-up", bringup))
    print(_figures("catalogue wall time", walls))
    print(f"wall time per scenario and sender: "
          f"{statistics.median(walls) / pairs_per_round:.3f}s (median round / {pairs_per_round})")
    for sender, values in per_pair.items():
        print(_figures(f"  {sender}: time per scenario (all its phases)", values))
    print(_figures("verdict delay after the sender's decision", delays, "ms"))
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
