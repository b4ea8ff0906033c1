"""Results: the terminal table, the JSON contract; JUnit XML (report_junit) and the HTML
report (report_html) written atomically."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab import __version__
from lab.oracle import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    KNOWN_FAILURE,
    NOT_EXERCISED,
    PASS,
    SKIPPED,
    UNEXPECTED_PASS,
)
from lab.report_html import html
from lab.report_junit import junit
from lab.results_schema import SCHEMA_VERSION
from lab.run_record import Record

__all__ = ["as_json", "html", "junit", "problems", "record_from_dict", "summary", "table",
           "write_html", "write_json", "write_junit"]

# worst first: the cell of a scenario shows its worst phase
_SEVERITY = [ERROR, INCONCLUSIVE, UNEXPECTED_PASS, FAIL, NOT_EXERCISED, "advisory", SKIPPED,
             KNOWN_FAILURE, PASS]


def _rank(label: str) -> int:
    """Worst first; a verdict this table does not know ranks just after error."""
    return _SEVERITY.index(label) if label in _SEVERITY else 1


def _cell_verdict(records: Sequence[Record]) -> str:
    labels = ["advisory" if r.verdict == FAIL and r.advisory else r.verdict for r in records]
    return min(labels, key=_rank)


def table(records: Sequence[Record]) -> str:
    """A row per scenario, a column per sender; the cell is the worst verdict of its phases."""
    senders = list(dict.fromkeys(r.sender for r in records))
    scenarios = list(dict.fromkeys(r.scenario for r in records))
    cells: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        cells.setdefault((r.scenario, r.sender), []).append(r)
    header = ["scenario", *senders]
    rows = [[s, *[_cell_verdict(cells[(s, x)]) if (s, x) in cells else "-" for x in senders]]
            for s in scenarios]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def summary(records: Sequence[Record]) -> str:
    counts = Counter(_cell_verdict([r]) for r in records)
    parts = [f"{counts[v]} {v}" for v in sorted(counts, key=_rank, reverse=True)]
    return f"{len(records)} phases: " + ", ".join(parts)


def problems(records: Sequence[Record]) -> list[str]:
    """One line per record that fails the run or is advisory, with why."""
    out = []
    for r in records:
        if r.fails_run or r.advisory or r.verdict in (SKIPPED, NOT_EXERCISED):
            label = "advisory" if r.advisory else r.verdict
            out.append(f"{label}: {r.scenario} [{r.phase}] {r.sender}: {r.why}")
    return out


def as_json(records: Sequence[Record], *, backend: str, senders: Sequence[str],
            exit_code: int, evidence: bool = True, **extra: Any) -> dict[str, Any]:
    """The results document (lab/schemas/results-1.schema.json, docs/RESULTS.md);
    ``extra`` adds top-level fields such as ``scenarios``, ``shard``, ``runs``."""
    return {
        "tool": "mtasts-lab",
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "senders": list(senders),
        "exit_code": exit_code,
        "summary": dict(Counter(r.verdict for r in records)),
        "runs": [r.as_dict(evidence=evidence) for r in records],
        **extra,
    }


def record_from_dict(data: Mapping[str, Any]) -> Record:
    """A record read back from the JSON results (fields this version does not know are
    left out of the Record; the merged JSON keeps them)."""
    known = {f.name for f in dataclasses.fields(Record)}
    return Record(**{k: v for k, v in data.items() if k in known})


def write_atomically(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a failed run never leaves a half-written report."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, document: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(document, indent=2, default=str).encode() + b"\n")


def write_junit(path: Path, records: Sequence[Record]) -> None:
    tree = ET.ElementTree(junit(records))
    ET.indent(tree)
    buf = io.BytesIO()
    tree.write(buf, encoding="utf-8", xml_declaration=True)
    write_atomically(path, buf.getvalue())


def write_html(path: Path, records: Sequence[Record],
               scenarios: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    write_atomically(path, html(records, scenarios=scenarios).encode())
