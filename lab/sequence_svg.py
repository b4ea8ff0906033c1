"""Draw a phase's steps (lab/sequence_steps.py) as an inline SVG sequence diagram.

No script, no external font: the page's CSS styles the classes (``seq-*``, ``m-<mark>``,
``p-struck``, ``p-added``, ``p-forged``). Sizes are in SVG units; the figure scales to the
page width through its viewBox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from lab.sequence_steps import LANES, Step, steps

LANE_X = (54, 158, 280, 436, 592)
WIDTH = 664
TOP = 44
LINE_H = 14
CHAR_W = 6.6  # 11px monospace
MAX_STEPS = 90


def _words(text: str, per_line: int) -> list[str]:
    """``text`` cut at spaces (or hard, for a word longer than a line)."""
    out: list[str] = []
    for word in text.split(" "):
        while len(word) > per_line:
            out.append(word[:per_line])
            word = word[per_line:]
        out.append(word)
    return out


def _wrap(parts: Sequence[tuple[str, str]], width: float) -> list[list[tuple[str, str]]]:
    """Parts laid out in lines of at most ``width`` units, broken at spaces; a new part
    starts on the current line when it fits."""
    per_line = max(10, int(width / CHAR_W))
    lines: list[list[tuple[str, str]]] = [[]]
    used = 0
    for text, style in parts:
        piece: list[str] = []
        for word in _words(text, per_line):
            need = len(word) + (1 if used or piece else 0)
            if used + need > per_line and (used or piece):
                if piece:
                    lines[-1].append((" ".join(piece), style))
                lines.append([])
                used, piece, need = 0, [], len(word)
            piece.append(word)
            used += need
        if piece:
            lines[-1].append((" ".join(piece), style))
    return [ln for ln in lines if ln] or [[("", "")]]


def _tspans(line: Sequence[tuple[str, str]]) -> str:
    out = []
    for i, (text, style) in enumerate(line):
        cls = f" class='p-{style}'" if style else ""
        gap = " " if i else ""
        out.append(f"<tspan{cls}>{escape(gap + text)}</tspan>")
    return "".join(out)


def _data(step: Step) -> str:
    attrs = f" data-mark='{step.mark}'"
    if step.attack:
        attrs += f" data-attack='{escape(step.attack)}'"
    return attrs


def _note(step: Step, y: float) -> tuple[str, float]:
    a, b = sorted(step.lanes)
    pad = 58 if a != b else 100
    x1 = max(2.0, LANE_X[a] - pad)
    x2 = min(WIDTH - 2.0, LANE_X[b] + pad)
    if x2 - x1 < 2 * pad:  # at the page edge: keep the width, move inwards
        x1, x2 = (x1, x1 + 2 * pad) if x1 <= 2.0 else (x2 - 2 * pad, x2)
    lines = _wrap(step.parts, x2 - x1 - 10)
    height = LINE_H * len(lines) + 8
    texts = "".join(
        f"<text x='{(x1 + x2) / 2:.1f}' y='{y + 14 + k * LINE_H:.1f}' text-anchor='middle'>"
        f"{_tspans(line)}</text>" for k, line in enumerate(lines))
    svg = (f"<g class='seq-note m-{step.mark}'{_data(step)}>"
           f"<rect x='{x1:.1f}' y='{y + 2:.1f}' width='{x2 - x1:.1f}' height='{height:.1f}' "
           f"rx='4'/>{texts}</g>")
    return svg, height + 6


def _arrow(step: Step, y: float) -> tuple[str, float]:
    src, dst = step.lanes
    xa, xb = LANE_X[src], LANE_X[dst]
    lo, hi = min(xa, xb), max(xa, xb)
    label_w = max(hi - lo - 8, 150)
    lines = _wrap(step.parts, label_w)
    if step.badge:
        lines.append([(f"<< {step.badge}", "badge")])
    cx = min(max((xa + xb) / 2, label_w / 2 + 2), WIDTH - label_w / 2 - 2)
    texts = "".join(
        f"<text x='{cx:.1f}' y='{y + 12 + k * LINE_H:.1f}' text-anchor='middle'>"
        f"{_tspans(line)}</text>" for k, line in enumerate(lines))
    ay = y + 6 + LINE_H * len(lines)
    tip = -7 if xb > xa else 7
    head = (f"<polygon points='{xb:.1f},{ay:.1f} {xb + tip:.1f},{ay - 4:.1f} "
            f"{xb + tip:.1f},{ay + 4:.1f}'/>")
    via = (f"<circle cx='{LANE_X[3]}' cy='{ay:.1f}' r='3' class='seq-via'/>"
           if step.via else "")
    svg = (f"<g class='seq-arrow m-{step.mark}'{_data(step)}>{texts}"
           f"<line x1='{xa:.1f}' y1='{ay:.1f}' x2='{xb + tip:.1f}' y2='{ay:.1f}'/>{head}{via}"
           "</g>")
    return svg, ay - y + 8


def _lanes(record: Mapping[str, Any]) -> tuple[str, ...]:
    """The lane names; the MX lane names the host when the sender reached just one (under
    a DNS attack it may be the attacker's own MX)."""
    hosts = {str(e.get("mx")) for e in record.get("evidence") or ()
             if e.get("source") == "sink" and e.get("kind") == "connect"}
    if len(hosts) == 1:
        return (*LANES[:4], f"MX {hosts.pop()}"[:19])
    return LANES


def sequence_svg(record: Mapping[str, Any], attacks: Sequence[Mapping[str, Any]] = (),
                 *, title: str = "") -> str:
    """The diagram of one phase record (a results-JSON run) as an ``<svg>`` element."""
    all_steps = steps(record, attacks)
    shown = all_steps[:MAX_STEPS]
    body: list[str] = []
    y = float(TOP)
    for step in shown:
        part, used = (_note if step.note else _arrow)(step, y)
        body.append(part)
        y += used
    if len(all_steps) > len(shown):
        body.append(f"<text x='{WIDTH / 2}' y='{y + 14:.1f}' text-anchor='middle' "
                    f"class='seq-more'>... {len(all_steps) - len(shown)} more steps: "
                    "see the transcript</text>")
        y += 22
    if not shown:
        body.append(f"<text x='{WIDTH / 2}' y='{y + 14:.1f}' text-anchor='middle' "
                    "class='seq-more'>no events were recorded for this phase</text>")
        y += 22
    height = y + 10
    heads = "".join(
        f"<g class='seq-lane{' seq-side' if i < 2 else ''}'>"
        f"<line x1='{x}' y1='30' x2='{x}' y2='{height - 4:.1f}'/>"
        f"<rect x='{x - 64 if i == 4 else x - 50}' y='4' width='{128 if i == 4 else 100}' "
        f"height='24' rx='5'/><text x='{x}' y='20' text-anchor='middle'>{escape(name)}</text>"
        "</g>" for i, (x, name) in enumerate(zip(LANE_X, _lanes(record), strict=True)))
    label = escape(title or "sequence diagram")
    return (f"<svg class='seq' viewBox='0 0 {WIDTH} {height:.0f}' role='img' "
            f"aria-label='{label}' xmlns='http://www.w3.org/2000/svg' "
            f"data-steps='{len(all_steps)}'><title>{label}</title>{heads}{''.join(body)}</svg>")
