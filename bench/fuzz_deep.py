"""The deep fuzz run: every property test over the relay core, the SMTP codec, the policy
and TXT parsers, the zone and the scenario loader, under the ``deep`` hypothesis profile.

    python bench/fuzz_deep.py [--examples N] [TEST_PATH ...]

Prints the examples each property ran (from hypothesis' statistics), the total and the
failures. Exit status: pytest's. CPU-heavy on purpose: run it alone, not beside other work.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [  # cheapest first
    "tests/smtp/test_smtp_codec.py",
    "tests/senders/test_mtasts.py",
    "tests/senders/test_policy_fetch.py",
    "tests/fake_dns/test_dns_zone.py",
    "tests/fake_dns/test_dns_text.py",
    "tests/test_scenario.py",
    "tests/policy_host/test_policy_http.py",
    "tests/smtp/test_smtp_relay.py",
    "tests/smtp/test_smtp_relay_attacks.py",
    "tests/smtp/test_smtp_relay_fuzz.py",
]
TEST_LINE = re.compile(r"^(tests/\S+::\S+):$")
PASSING = re.compile(r"^\s+- (\d+) passing, (\d+) failing")


def count_examples(output: str) -> dict[str, tuple[int, int]]:
    """Per property test: (passing, failing) examples summed over hypothesis' phases."""
    counts: dict[str, tuple[int, int]] = {}
    current = ""
    for line in output.splitlines():
        if match := TEST_LINE.match(line):
            current = match.group(1)
            counts.setdefault(current, (0, 0))
        elif (match := PASSING.match(line)) and current:
            passing, failing = counts[current]
            counts[current] = (passing + int(match.group(1)), failing + int(match.group(2)))
    return counts


def run_one(target: str, env: dict[str, str]) -> tuple[dict[str, tuple[int, int]], int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", target],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    summary = [ln for ln in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    tail = summary[-1] if summary else result.stdout[-2000:] + result.stderr[-2000:]
    return count_examples(result.stdout), result.returncode, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4000,
                        help="examples per property (default 4000)")
    parser.add_argument("targets", nargs="*", default=TARGETS)
    args = parser.parse_args(argv)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "deep",
           "HYPOTHESIS_DEEP_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    total = failing = properties = 0
    status = 0
    for target in args.targets:  # one process per file: figures so far survive a cut-off
        t0 = time.monotonic()
        counts, code, tail = run_one(target, env)
        for test, (passing, failed) in sorted(counts.items()):
            print(f"{passing:>8} passing {failed:>3} failing  {test}")
        total += sum(p for p, _ in counts.values())
        failing += sum(f for _, f in counts.values())
        properties += len(counts)
        status = status or code
        print(f"  {target}: {tail} ({time.monotonic() - t0:.0f} s); examples so far: {total}",
              flush=True)
    print(f"properties: {properties}  examples: {total}  failing examples: {failing}  "
          f"exit: {status}  wall time: {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
