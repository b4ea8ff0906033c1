"""Soak: run the catalogue N times against a sender and print every phase whose verdict or
observed outcome changed between runs, with the evidence of the odd run.

    python bench/soak.py [SCENARIO|THEME ...] [--rounds N] [--sender NAME]... [--backend B]
                         [-j N] [--hogs K] [--hog-limit SECONDS] [--out DIR] [--keep]
    python bench/soak.py --analyse DIR      # compare the rounds an earlier soak left in DIR

Each round is a separate ``mtasts-lab run`` (a fresh process, as CI runs it) writing its
JSON to ``--out`` (a temporary directory by default, kept when something flipped). ``--hogs
K`` starts K busy-loop processes for the whole soak: each one ends by itself after
``--hog-limit`` seconds, dies with the soak (parent-death signal) and is killed by its PID
when the soak ends, also on Ctrl-C, SIGTERM or an error (an interrupted soak still compares
the rounds it finished). The hogs share the rounds' session on purpose: with Linux autogroup,
busy loops in another session barely load the lab. Prints figures; exit status 1 when any
phase flipped or a round could not run, 130 when interrupted, 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOG = ("import time\n"
       "end = time.monotonic() + {limit}\n"
       "while time.monotonic() < end:\n"
       "    pass\n")
MAX_EVENTS = 40
"""Evidence lines printed per odd run (the whole record is in its JSON)."""

Key = tuple[str, str, str]
"""(scenario, phase, sender)."""


@dataclass(frozen=True)
class Seen:
    """What one round recorded for one phase."""

    round: int
    verdict: str
    observed: str | None
    record: Mapping[str, Any]
    json_path: Path

    @property
    def outcome(self) -> tuple[str, str | None]:
        return self.verdict, self.observed


def _die_with_parent() -> None:
    """In the hog, before exec: SIGKILL when the soak process dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def cpu_hogs(count: int, limit_s: float) -> Iterator[list[int]]:
    """``count`` busy loops, bounded three ways; yields their PIDs."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", HOG.format(limit=float(limit_s))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                preexec_fn=_die_with_parent))
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # by its PID, never by name
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def run_round(args: argparse.Namespace, index: int, out: Path) -> tuple[Path, int, float]:
    """One ``mtasts-lab run``; returns its JSON path, exit status and wall time."""
    path = out / f"round-{index:03d}.json"
    log = out / f"round-{index:03d}.log"
    argv = [sys.executable, "-m", "lab.cli", "run", *args.scenario, "--backend", args.backend,
            "-j", str(args.jobs), "-q", "--json", str(path)]
    for name in args.sender:
        argv += ["--sender", name]
    if args.grace is not None:
        argv += ["--grace", str(args.grace)]
    started = time.monotonic()
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)
        try:
            code = proc.wait()
        except BaseException:
            # let the run take its lab down (namespaces, run directory), then insist
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    return path, code, time.monotonic() - started


def load_round(path: Path, index: int) -> dict[Key, Seen]:
    data = json.loads(path.read_text())
    return {(r["scenario"], r["phase"], r["sender"]):
            Seen(index, r["verdict"], r.get("observed"), r, path) for r in data["runs"]}


def flips(rounds: Sequence[Mapping[Key, Seen]]) -> dict[Key, list[Seen]]:
    """Phases whose (verdict, observed outcome) differ between rounds (or that are missing
    from some round)."""
    by_key: dict[Key, list[Seen]] = defaultdict(list)
    for seen in rounds:
        for key, value in seen.items():
            by_key[key].append(value)
    return {key: values for key, values in sorted(by_key.items())
            if len({v.outcome for v in values}) > 1 or len(values) != len(rounds)}


def _event_line(event: Mapping[str, Any], t0: float) -> str:
    skip = {"t", "source", "kind", "transcript", "data"}
    fields = ", ".join(f"{k}={v}" for k, v in event.items() if k not in skip and v not in
                       (None, "", [], {}))
    return f"      +{float(event.get('t', t0)) - t0:7.3f}s {event.get('source')} " \
           f"{event.get('kind')}: {fields[:160]}"


def describe(key: Key, values: Sequence[Seen], rounds: int) -> list[str]:
    """The flip, the usual outcome, and the evidence of each odd run."""
    counts = Counter(v.outcome for v in values)
    usual, _ = counts.most_common(1)[0]
    tally = ", ".join(f"{verdict}/{observed}: {n}" for (verdict, observed), n
                      in counts.most_common())
    missing = rounds - len(values)
    lines = [f"FLIP {key[0]} [{key[1]}] {key[2]}: {tally}"
             + (f", missing from {missing} round(s)" if missing else "")]
    for seen in values:
        if seen.outcome == usual and len(counts) > 1:
            continue
        rec = seen.record
        lines.append(f"  round {seen.round}: {seen.verdict} ({seen.observed}), "
                     f"{rec.get('duration_s')} s, status {rec.get('status')}")
        lines.append(f"    why: {rec.get('why')}")
        lines.append(f"    reason: {rec.get('reason')}")
        lines.append(f"    fired: {rec.get('fired')}")
        lines.append(f"    json: {seen.json_path}")
        evidence = list(rec.get("evidence") or ())
        if evidence:
            t0 = float(evidence[0].get("t", 0.0))
            lines.append("    events:")
            lines += [_event_line(e, t0) for e in evidence[:MAX_EVENTS]]
            if len(evidence) > MAX_EVENTS:
                lines.append(f"      ... {len(evidence) - MAX_EVENTS} more in the JSON")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("scenario", nargs="*", help="scenario ids or themes (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sender", action="append", help="default: reference")
    parser.add_argument("--backend", default="loopback")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--grace", type=float)
    parser.add_argument("--hogs", type=int, default=0, help="CPU hogs for the whole soak")
    parser.add_argument("--hog-limit", type=float, default=3600.0,
                        help="each hog ends by itself after this many seconds")
    parser.add_argument("--out", type=Path, help="where each round's JSON and log go")
    parser.add_argument("--keep", action="store_true", help="keep --out even without flips")
    parser.add_argument("--analyse", type=Path, metavar="DIR",
                        help="run nothing: compare the round-*.json an earlier soak left in DIR")
    args = parser.parse_args(argv)
    for flag, value, low in (("--rounds", args.rounds, 1), ("-j", args.jobs, 1),
                             ("--hogs", args.hogs, 0)):
        if value < low:
            parser.error(f"{flag}: at least {low}, not {value}")
    if not 0 < args.hog_limit < 86400:
        parser.error(f"--hog-limit: between 0 and 86400 seconds, not {args.hog_limit}")
    args.sender = args.sender or ["reference"]
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: hogs killed, rounds so far told


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.analyse is not None:  # the rounds of an earlier (maybe interrupted) soak
        paths = sorted(args.analyse.glob("round-*.json"))
        print(f"soak: analysing {len(paths)} round(s) in {args.analyse}")
        return report([load_round(p, int(p.stem.split("-")[1])) for p in paths], [], [],
                      args, 0.0, args.analyse, interrupted=False)
    out = args.out or Path(tempfile.mkdtemp(prefix="mtasts-lab-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[Key, Seen]] = []
    failed: list[str] = []
    walls: list[float] = []
    started = time.monotonic()
    interrupted = False
    try:
        with cpu_hogs(args.hogs, args.hog_limit) as pids:
            if pids:
                print(f"soak: {len(pids)} CPU hog(s), PIDs {pids}, each ends by itself "
                      f"after {args.hog_limit:g} s", flush=True)
            for index in range(1, args.rounds + 1):
                path, code, wall = run_round(args, index, out)
                walls.append(wall)
                try:
                    seen = load_round(path, index)
                except (OSError, ValueError, KeyError) as exc:
                    failed.append(f"round {index}: exit {code}, no results ({exc}); "
                                  f"see {path.with_suffix('.log')}")
                    print(failed[-1], flush=True)
                    continue
                rounds.append(seen)
                verdicts = Counter(s.verdict for s in seen.values())
                print(f"round {index}/{args.rounds}: exit {code}, {len(seen)} phases, "
                      f"{dict(sorted(verdicts.items()))}, {wall:.1f} s", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print(f"soak: interrupted after {len(rounds)} complete round(s)", flush=True)
    return report(rounds, failed, walls, args, time.monotonic() - started, out, interrupted)


def report(rounds: list[dict[Key, Seen]], failed: list[str], walls: list[float],
           args: argparse.Namespace, wall_total: float, out: Path, interrupted: bool) -> int:
    """Print the flips and the summary line; the exit status."""
    flipped = flips(rounds)
    for key, values in flipped.items():
        print()
        print("\n".join(describe(key, values, len(rounds))))
    phases = len({key for seen in rounds for key in seen})
    median = f"{sorted(walls)[len(walls) // 2]:.0f} s" if walls else "-"
    print()
    print(f"soak: {len(rounds)} runs of {phases} phases ({', '.join(args.sender)} on "
          f"{args.backend}, -j {args.jobs}, {args.hogs} hog(s)); {len(flipped)} flip(s); "
          f"{len(failed)} round(s) without results; wall time {wall_total:.0f} s "
          f"(per round median {median})")
    bad = bool(flipped or failed)
    if bad or args.keep or args.out or args.analyse or interrupted:
        print(f"soak: rounds' JSON and logs in {out}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if bad else 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
