"""Print the catalogue's mutation score: mutants killed, compliant variants clean.

    python bench/mutation_score.py [-j 2] [--full] [--only NAME ...]

Loopback only; the lab's reference sender family (lab/senders/profiles.py). Each mutant runs
against the scenarios covering the checklist id it breaks (``--full``: the whole catalogue).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from lab.mutation import score
from lab.runner import quiet_tls_eof_warnings
from lab.scenario import load_catalogue
from lab.senders.profiles import MUTANTS, VARIANTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="mutants against every scenario")
    parser.add_argument("--only", nargs="*", default=None, help="profile names to run")
    args = parser.parse_args()
    quiet_tls_eof_warnings()
    keep = set(args.only) if args.only is not None else None
    variants = [v for v in VARIANTS if keep is None or v.name in keep]
    mutants = [m for m in MUTANTS if keep is None or m.name in keep]
    t0 = time.monotonic()
    result = asyncio.run(score(load_catalogue(), jobs=args.jobs, full=args.full,
                               variants=variants, mutants=mutants))
    for line in result.lines():
        print(line)
    for name, why in result.killed.items():
        print(f"  {name}: {'killed by ' + why[0] if why else 'SURVIVED'}"
              + (f" (+{len(why) - 1} more)" if len(why) > 1 else ""))
    print(f"{time.monotonic() - t0:.1f}s")
    return 0 if not result.survivors and not result.dirty_variants else 1


if __name__ == "__main__":
    sys.exit(main())
