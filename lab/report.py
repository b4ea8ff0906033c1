"""Results: the terminal table, the JSON contract, JUnit XML."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from lab import __version__
from lab.narrate import narrate
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
from lab.runner import Record

# worst first: the cell of a scenario shows its worst phase
_SEVERITY = [ERROR, INCONCLUSIVE, UNEXPECTED_PASS, FAIL, NOT_EXERCISED, "advisory", SKIPPED,
             KNOWN_FAILURE, PASS]


def _cell_verdict(records: Sequence[Record]) -> str:
    labels = ["advisory" if r.verdict == FAIL and r.advisory else r.verdict for r in records]
    return min(labels, key=_SEVERITY.index)


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
    parts = [f"{counts[v]} {v}" for v in reversed(_SEVERITY) if counts[v]]
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
    return {
        "tool": "mtasts-lab",
        "version": __version__,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "senders": list(senders),
        "exit_code": exit_code,
        "summary": dict(Counter(r.verdict for r in records)),
        **extra,
        "runs": [r.as_dict(evidence=evidence) for r in records],
    }


def junit(records: Sequence[Record]) -> ET.Element:
    """One test suite per sender, one test case per scenario phase."""
    root = ET.Element("testsuites", name="mtasts-lab")
    by_sender: dict[str, list[Record]] = {}
    for r in records:
        by_sender.setdefault(r.sender, []).append(r)
    for sender, recs in by_sender.items():
        suite = ET.SubElement(root, "testsuite", name=f"mtasts-lab.{sender}",
                              tests=str(len(recs)),
                              failures=str(sum(r.verdict in (FAIL, UNEXPECTED_PASS)
                                               and not r.advisory for r in recs)),
                              errors=str(sum(r.verdict in (ERROR, INCONCLUSIVE) for r in recs)),
                              skipped=str(sum(r.verdict in (KNOWN_FAILURE, SKIPPED)
                                              for r in recs)),
                              time=f"{sum(r.duration_s for r in recs):.3f}")
        for r in recs:
            case = ET.SubElement(suite, "testcase", classname=f"{sender}.{r.scenario}",
                                 name=r.phase, time=f"{r.duration_s:.3f}")
            text = (f"expected {' or '.join(r.expected)}, observed {r.observed}\n"
                    f"reason: {r.reason}\nrefs: {', '.join(r.refs)}")
            if r.verdict in (FAIL, UNEXPECTED_PASS) and not r.advisory:
                ET.SubElement(case, "failure", message=r.why, type=r.verdict).text = text
            elif r.verdict in (ERROR, INCONCLUSIVE):
                ET.SubElement(case, "error", message=r.why, type=r.verdict).text = text
            elif r.verdict == KNOWN_FAILURE:
                ET.SubElement(case, "skipped", message=f"known failure: {r.why}")
            elif r.verdict == SKIPPED:
                ET.SubElement(case, "skipped", message=r.why)
            ET.SubElement(case, "system-out").text = "\n".join(
                f"{e.get('source')} {e.get('kind')}: "
                + json.dumps({k: v for k, v in e.items()
                              if k not in ("source", "kind", "transcript")}, default=str)
                for e in r.evidence)
    return root


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


def html(records: Sequence[Record], *, title: str = "mtasts-lab results") -> str:
    """One self-contained page: the verdict table, then each phase with its evidence."""
    senders = list(dict.fromkeys(r.sender for r in records))
    scenarios = list(dict.fromkeys(r.scenario for r in records))
    cells: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        cells.setdefault((r.scenario, r.sender), []).append(r)
    out = [f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .6em;"
           "border-bottom:1px solid #ddd;text-align:left}.pass{color:#070}"
           ".known-failure,.skipped{color:#777}.fail,.unexpected-pass,.inconclusive,"
           ".error{color:#b00;font-weight:bold}pre{background:#f6f6f6;padding:1em;"
           "overflow-x:auto}</style>",
           f"<h1>{escape(title)}</h1><p>{escape(summary(records))}</p><table><tr>"
           "<th>scenario</th>" + "".join(f"<th>{escape(s)}</th>" for s in senders) + "</tr>"]
    for s in scenarios:
        row = [f"<td>{escape(s)}</td>"]
        for x in senders:
            verdict = _cell_verdict(cells[(s, x)]) if (s, x) in cells else "-"
            anchor = f"{x}-{s}".replace("/", "-")
            row.append(f"<td class='{escape(verdict)}'><a href='#{escape(anchor)}'>"
                       f"{escape(verdict)}</a></td>")
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</table>")
    for (s, x), recs in cells.items():
        anchor = f"{x}-{s}".replace("/", "-")
        out.append(f"<h2 id='{escape(anchor)}'>{escape(x)}: {escape(s)}</h2>")
        for r in recs:
            out.append(f"<p class='{escape(r.verdict)}'>{escape(r.phase)}: {escape(r.verdict)}"
                       f" &mdash; {escape(r.why)}</p><pre>{escape(narrate(r))}</pre>")
    return "\n".join(out) + "\n"


def write_html(path: Path, records: Sequence[Record]) -> None:
    write_atomically(path, html(records).encode())
