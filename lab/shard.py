"""Shards for CI matrices: ``run --shard K/N`` runs a stable slice of the work, ``merge``
combines the shards' JSON results into one.

The work is the list of (scenario, sender) pairs. The pairs are ordered by the SHA-256 of
``sender/scenario`` and dealt out in turn, so a shard's slice depends only on the pairs
(never on the machine, the Python hash seed or the order of arguments) and the shards differ
in size by at most one pair.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lab.results_schema import errors

T = TypeVar("T")
_SPEC = re.compile(r"^(\d{1,6})/(\d{1,6})$", re.ASCII)


class ShardError(ValueError):
    """A bad shard spec or an unreadable shard file: one line, exit 2."""


def parse(spec: str) -> tuple[int, int]:
    """``"K/N"`` with 1 <= K <= N."""
    shown = spec if spec and spec.isprintable() and spec.strip() == spec else repr(spec)
    m = _SPEC.fullmatch(spec.strip())
    if not m:
        raise ShardError(f"--shard {shown}: expected K/N, e.g. 1/4")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ShardError(f"--shard {shown}: K must be between 1 and N (N at least 1)")
    return k, n


def _key(sender: str, scenario_id: str) -> str:
    return hashlib.sha256(f"{sender}/{scenario_id}".encode()).hexdigest()


def slice_of(pairs: Iterable[tuple[str, str, T]], k: int, n: int) -> list[tuple[str, str, T]]:
    """The pairs (sender, scenario id, payload) of shard ``k`` of ``n``."""
    ordered = sorted(pairs, key=lambda p: (_key(p[0], p[1]), p[0], p[1]))
    return [p for i, p in enumerate(ordered) if i % n == k - 1]


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


S = TypeVar("S", bound=_HasId)


def work(spec: tuple[int, int] | None, scenarios: Sequence[S],
         sender_names: Sequence[str]) -> dict[str, list[S]]:
    """Per sender, the scenarios a run (or shard K of N) runs, in the given order."""
    if spec is None:
        return {name: list(scenarios) for name in sender_names}
    picked = {(x, sid) for x, sid, _ in
              slice_of([(x, s.id, None) for x in sender_names for s in scenarios], *spec)}
    return {x: [s for s in scenarios if (x, s.id) in picked] for x in sender_names}


def sender_groups(by_sender: Mapping[str, Sequence[_HasId]]) -> list[list[str]]:
    """Senders with the same scenarios run together on one lab (unsharded: one group)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, mine in by_sender.items():
        if mine:
            groups.setdefault(tuple(s.id for s in mine), []).append(name)
    return list(groups.values())


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ShardError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: not JSON ({exc})") from None
    problems = errors(doc)
    if problems:
        raise ShardError(f"{path}: {problems[0]}")
    loaded: dict[str, Any] = doc
    return loaded


def merge(paths: Sequence[Path]) -> dict[str, Any]:
    """One results document from the shards' documents; refuses a phase twice."""
    if not paths:
        raise ShardError("merge: name at least one JSON results file")
    docs = [(Path(p), _read(Path(p))) for p in paths]
    senders: list[str] = []
    backends: list[str] = []
    scenarios: dict[str, Any] = {}
    shards: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], Path] = {}
    runs: list[dict[str, Any]] = []
    for path, doc in docs:
        senders += [s for s in doc["senders"] if s not in senders]
        if doc["backend"] not in backends:
            backends.append(doc["backend"])
        scenarios.update(doc.get("scenarios") or {})
        shards.append({**(doc.get("shard") or {"index": 1, "count": 1}), "file": str(path)})
        for run in doc["runs"]:
            key = (run["scenario"], run["phase"], run["sender"])
            if key in seen:
                raise ShardError(f"{path}: runs: {key[0]} [{key[1]}] with {key[2]} is also in "
                                 f"{seen[key]}")
            seen[key] = path
            runs.append(run)
    counts = {s.get("count") for s in shards}
    if len(counts) > 1:
        raise ShardError(f"{docs[-1][0]}: shard.count: shards of different splits "
                         f"({', '.join(sorted(str(c) for c in counts))})")
    order = {s: i for i, s in enumerate(senders)}
    runs.sort(key=lambda r: (order.get(r["sender"], 0), r["scenario"]))
    count = counts.pop() or 1
    missing = sorted(set(range(1, count + 1)) - {s.get("index") for s in shards})
    return {"senders": senders, "missing_shards": missing, "backend": "+".join(backends),
            "scenarios": scenarios, "merged_from": shards, "runs": runs}


def report_merged(merged: Mapping[str, Any], *, json_out: Path | None = None,
                  junit_out: Path | None = None, html_out: Path | None = None) -> int:
    """Print the table of the merged shards and write the files; the exit status (1 when
    something failed or a shard is missing)."""
    from lab import report
    from lab.run_record import exit_code

    records = [report.record_from_dict(r) for r in merged["runs"]]
    code = exit_code(records)
    if merged["missing_shards"]:
        print(f"mtasts-lab: shards {', '.join(map(str, merged['missing_shards']))} of "
              f"{merged['merged_from'][0]['count']} are missing: the report is incomplete",
              file=sys.stderr)
        code = 1
    print(report.table(records))
    print()
    print(report.summary(records))
    for line in report.problems(records):
        print("  " + line)
    if json_out:
        doc = report.as_json(records, backend=merged["backend"], senders=merged["senders"],
                             exit_code=code, scenarios=merged["scenarios"],
                             merged_from=merged["merged_from"])
        doc["runs"] = list(merged["runs"])  # as read: keeps fields this version does not know
        report.write_json(json_out, doc)
    if junit_out:
        report.write_junit(junit_out, records)
    if html_out:
        report.write_html(html_out, records, merged["scenarios"])
    return code
