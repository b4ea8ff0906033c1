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
TARGETS = [
    "tests/smtp/test_smtp_relay.py",
    "tests/smtp/test_smtp_relay_attacks.py",
    "tests/smtp/test_smtp_relay_fuzz.py",
    "tests/smtp/test_smtp_codec.py",
    "tests/senders/test_mtasts.py",
    "tests/senders/test_policy_fetch.py",
    "tests/policy_host/test_policy_http.py",
    "tests/fake_dns/test_dns_zone.py",
    "tests/fake_dns/test_dns_text.py",
    "tests/test_scenario.py",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4000,
                        help="examples per property (default 4000)")
    parser.add_argument("targets", nargs="*", default=TARGETS)
    args = parser.parse_args(argv)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "deep",
           "HYPOTHESIS_DEEP_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", *args.targets],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    counts = count_examples(result.stdout)
    for test, (passing, failing) in sorted(counts.items()):
        print(f"{passing:>8} passing {failing:>3} failing  {test}")
    total = sum(p for p, _ in counts.values())
    failing = sum(f for _, f in counts.values())
    summary = [ln for ln in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    print(f"properties: {len(counts)}  examples: {total}  failing examples: {failing}  "
          f"wall time: {elapsed:.0f} s")
    print(f"pytest: {summary[-1] if summary else result.stdout[-2000:]}")
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-2000:], sep="\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
