"""Start-up and run times of the compose backend, against netns for the same sender (figures,
never asserted).

    DOCKER_HOST=unix:///var/lib/mtasts-lab-docker/docker.sock \\
      python bench/compose.py [--cold] [--cold-base] [--sender postfix] [--no-netns]
                              [--json-dir DIR] [SCENARIO ...]

* ``--cold-base``: remove the lab's images, rebuild the base images too (mmdebstrap | docker
  import), then the images, then bring the lab up and start the sender: the cold start with
  the base image build included (the aim: under 120 s on a 2-core machine).
* ``--cold``: the same with the base images cached.
* always: warm start (images present, no containers: ``up()`` plus the sender's start),
  reuse start (containers kept running from the previous run), one command in the sender's
  container by ``docker exec`` and by the agent's command socket, then the catalogue (or the
  scenarios named) for the sender on netns (when this machine can: root and the sender
  installed; ``--no-netns`` skips it) and on compose, with the time per scenario side by
  side and compose/netns per scenario (the aim: within 2x).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from backend_compare import (
    cold_start,
    command_round_trips,
    comparison,
    run_on,
    start_compose,
)

from lab import backends, report, senders
from lab.backends.base import Backend
from lab.run_record import exit_code
from lab.runner import quiet_tls_eof_warnings
from lab.scenario import load_catalogue, select
from lab.senders.base import Sender


def netns_missing(sender: str) -> list[str]:
    backends.load_all()
    senders.load_all()
    cls = Sender.registry.get(sender)
    missing = list(Backend.registry.get("netns").check())
    check = getattr(cls, "check", None)
    if check is not None:
        missing += check()
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--cold-base", action="store_true")
    parser.add_argument("--sender", default="postfix")
    parser.add_argument("--no-netns", action="store_true")
    parser.add_argument("--json-dir", type=Path,
                        help="write each backend's results as DIR/<backend>-<sender>.json "
                             "(for scripts/compare-verdicts)")
    parser.add_argument("scenarios", nargs="*")
    args = parser.parse_args()
    quiet_tls_eof_warnings()
    figures: list[str] = []
    if args.cold_base:
        figures.append(cold_start(args.sender, base=True))
    if args.cold:
        figures.append(cold_start(args.sender, base=False))
    t_up, t_sender = asyncio.run(start_compose(args.sender, keep=True))
    figures.append(f"warm start (images built, no containers): up {t_up:.2f} s + "
                   f"{args.sender} {t_sender:.2f} s")
    t_up, t_sender = asyncio.run(start_compose(args.sender, keep=False))
    figures.append(f"reuse start (containers running): up {t_up:.2f} s + "
                   f"{args.sender} {t_sender:.2f} s")
    figures.append(asyncio.run(command_round_trips(args.sender)))
    scenarios = select(args.scenarios) if args.scenarios else load_catalogue()
    runs = {}
    missing = [] if args.no_netns else netns_missing(args.sender)
    if not args.no_netns and not missing:
        runs["netns"] = run_on("netns", args.sender, scenarios)
    elif missing:
        figures.append(f"netns skipped: {'; '.join(missing)}")
    runs["compose"] = run_on("compose", args.sender, scenarios)
    figures += comparison(runs, args.sender)
    if args.json_dir is not None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
        for name, (runner, _) in runs.items():
            path = args.json_dir / f"{name}-{args.sender}.json"
            report.write_json(path, report.as_json(
                runner.records, backend=name, senders=[args.sender],
                exit_code=exit_code(runner.records)))
            figures.append(f"results: {path}")
    print(f"compose bench ({os.environ.get('DOCKER_HOST', 'default daemon')}), "
          f"{len(scenarios)} scenarios:")
    for line in figures:
        print("  " + line)
    records = [r for runner, _ in runs.values() for r in runner.records]
    for line in report.problems(records):
        print("  " + line)
    return exit_code(records)


if __name__ == "__main__":
    sys.exit(main())
