"""Wall time of the scenario catalogue: bring-up, per scenario and sender, verdict delay.

    python bench/catalogue.py [--backend loopback]... [--sender NAME]... [--rounds N] [-j N]
                              [--cold | --cold-base] [SCENARIO ...]

With several backends (``--backend netns --backend compose --sender postfix``) the same
senders run on each, and the time per scenario is printed side by side with the ratio of the
last backend to the first (compose/netns: the aim is within 2x). ``--cold`` / ``--cold-base``
first measure the compose lab's cold start (its images rebuilt, without or with the base
images; then up and the first sender's start), as bench/compose.py does.

Prints figures; asserts nothing about speed (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict

from backend_compare import cold_start, comparison

from lab import backends, senders
from lab.attacks import load_all
from lab.run_record import Record, exit_code
from lab.runner import Runner, RunOptions, quiet_tls_eof_warnings
from lab.scenario import Scenario, load_catalogue, select


def _figures(label: str, values: list[float], unit: str = "s") -> str:
    if not values:
        return f"{label}: none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"{label}: n={len(values)} median={statistics.median(values):.3f}{unit} "
            f"mean={statistics.fmean(values):.3f}{unit} p95={p95:.3f}{unit} "
            f"worst={max(values):.3f}{unit}")


async def _round(scenarios: list[Scenario], options: RunOptions, jobs: int) -> list[Runner]:
    chunks = [c for c in (scenarios[i::jobs] for i in range(jobs)) if c]
    runners = [Runner(options) for _ in chunks]
    await asyncio.gather(*(r.run(c) for r, c in zip(runners, chunks, strict=True)))
    return runners


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("scenario", nargs="*", help="scenario ids or themes (default: all)")
    parser.add_argument("--backend", action="append")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--cold-base", action="store_true")
    parser.add_argument("--sender", action="append")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    args = parser.parse_args()
    quiet_tls_eof_warnings()
    load_all()
    senders.load_all()
    backends.load_all()
    sender_names = args.sender or ["reference", "opportunistic"]
    scenarios = select(args.scenario) if args.scenario else load_catalogue()
    if args.cold_base or args.cold:
        print(cold_start(sender_names[0], base=args.cold_base))
    last: dict[str, tuple[Runner, float]] = {}
    codes = []
    for backend in args.backend or ["loopback"]:
        runners, wall, code = _bench(backend, sender_names, scenarios, args.rounds, args.jobs)
        codes += code
        if len(runners) == 1:
            last[backend] = (runners[0], wall)
    if len(last) > 1:
        for name in sender_names:
            for line in comparison(last, name):
                print(line)
    return 0 if all(c == 0 for c in codes) else 1


def _bench(backend: str, sender_names: list[str], scenarios: list[Scenario], rounds: int,
           jobs: int) -> tuple[list[Runner], float, list[int]]:
    """The figures of one backend; its last round's runners and wall time, the exit codes."""
    options = RunOptions(backend=backend, senders=sender_names)

    walls: list[float] = []
    bringup: list[float] = []
    starts: dict[str, list[float]] = defaultdict(list)
    per_scenario: dict[str, list[float]] = defaultdict(list)
    per_phase: dict[str, list[float]] = defaultdict(list)
    delays: list[float] = []
    codes = []
    runners: list[Runner] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runners = asyncio.run(_round(scenarios, options, jobs))
        walls.append(time.perf_counter() - t0)
        records: list[Record] = [r for runner in runners for r in runner.records]
        codes.append(exit_code(records))
        for runner in runners:
            bringup.append(runner.bringup_s or 0.0)
            for name, seconds in runner.sender_start_s.items():
                starts[name].append(seconds)
            for name, _, seconds in runner.scenario_s:
                per_scenario[name].append(seconds)
        for r in records:
            per_phase[r.sender].append(r.duration_s)
            if r.verdict_delay_ms is not None:
                delays.append(r.verdict_delay_ms)

    pairs = len(scenarios) * len(sender_names)
    print(f"catalogue: {len(scenarios)} scenarios x {len(sender_names)} senders "
          f"({', '.join(sender_names)}) on {backend}, {rounds} rounds, -j {jobs};"
          f" exit codes {codes}")
    print(_figures("catalogue wall time", walls))
    print(f"wall time per scenario and sender: {statistics.median(walls) / pairs:.3f}s "
          f"(median round / {pairs} pairs)")
    print(_figures("backend bring-up", bringup))
    for name in sender_names:
        print(_figures(f"{name}: sender start", starts[name]))
        print(_figures(f"{name}: time per scenario (reset and every phase included)",
                       per_scenario[name]))
        print(_figures(f"{name}: time per phase", per_phase[name]))
    print(_figures("verdict delay after the sender's own decision", delays, "ms"))
    return runners, walls[-1], codes


if __name__ == "__main__":
    sys.exit(main())
