"""The HTML report that teaches: per scenario what the attacker does and what a compliant
sender does, the RFC references, and per sender the baseline beside the attack, each phase
with its verdict on top and a sequence diagram of what happened.

One self-contained page: inline CSS and SVG, no script, no font or image to fetch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from lab.narrate import narrate
from lab.report_css import CSS
from lab.report_text import expected_words, received_lines
from lab.run_record import Record
from lab.sequence_svg import sequence_svg

Info = Mapping[str, Any]

_OUTCOME_TEXT = {
    "intercepted": "The attacker decrypted the session and read the message.",
    "delivered-plaintext": "The message reached the MX in plaintext, readable by anyone on "
                           "the path.",
    "delivered-tls": "Delivered to the genuine MX over TLS.",
    "not-delivered": "The sender did not deliver the message.",
}
_LABEL = {"pass": "PASS", "fail": "FAIL", "known-failure": "KNOWN FAILURE",
          "unexpected-pass": "UNEXPECTED PASS", "inconclusive": "INCONCLUSIVE",
          "error": "ERROR", "skipped": "SKIPPED", "not-exercised": "NOT EXERCISED"}
_RFC = re.compile(r"^RFC (\d+)(?: ([\d.]+))?")


def _anchor(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _alarm(r: Record) -> bool:
    """The message was exposed to the attacker where it should not have been."""
    return r.observed in ("intercepted", "delivered-plaintext") and \
        r.observed not in r.expected


def _label(r: Record) -> str:
    return "advisory" if r.verdict == "fail" and r.advisory else r.verdict


def _verdict_block(r: Record, info: Info | None) -> str:
    label = _label(r)
    classes = f"verdict v-{label}" + (" v-alarm" if _alarm(r) else "")
    title = "ADVISORY (should-level miss)" if label == "advisory" else \
        _LABEL.get(r.verdict, r.verdict.upper())
    lines = []
    if r.verdict == "known-failure":
        lines.append(f"A real failure of {r.sender}, listed as known in the catalogue (it "
                     "does not fail the run, and it is not harmless).")
    if r.observed:
        lines.append(_OUTCOME_TEXT.get(r.observed, f"Observed {r.observed}."))
    if _alarm(r):
        lines.append("A compliant sender would not have let this happen.")
    lines.append(f"Expected {' or '.join(r.expected)} ({r.level}), observed "
                 f"{r.observed or 'nothing'}" + (f", sender status {r.status}" if r.status
                                                 else "") + ".")
    if r.why:
        lines.append(f"Why: {r.why}")
    paragraphs = "".join(f"<p>{escape(x)}</p>" for x in lines)
    return (f"<div class='{classes}' data-verdict='{escape(r.verdict)}'>"
            f"<div class='label'>{escape(r.phase)}: {escape(title)}</div>{paragraphs}</div>")


def _attacks_block(r: Record, info: Info | None) -> str:
    phase_info = (info or {}).get("phases", {}).get(r.phase, {})
    summaries = {a.get("name"): a.get("summary", "") for a in phase_info.get("attacks", [])}
    if not r.attacks:
        return "<p>No attack: the same world as the attack phases, to show the sender " \
               "can deliver at all.</p>"
    items = []
    for name in r.attacks:
        proof = r.fired.get(name) or []
        did = "; ".join(proof[:3]) if proof else "never fired (the sender was not tested by it)"
        items.append(f"<li><b>{escape(name)}</b>: {escape(summaries.get(name, ''))}"
                     f"<br><span class='mono'>{escape(did)}</span></li>")
    return f"<p>What the attacker did:</p><ul class='attack-list'>{''.join(items)}</ul>"


def _reports_block(r: Record) -> str:
    """The TLS report the phase expected, beside each report that arrived (pretty JSON)."""
    if r.report_expected is None:
        return ""
    items = [f"<p>Expected: {escape(expected_words(r.report_expected))}.</p>"]
    if not r.reports:
        items.append("<p>Received: no TLS report for the domain.</p>")
    for report in r.reports:
        lines = received_lines(report)
        items.append(f"<p>Received: {escape(lines[0])}</p>"
                     f"<pre class='tlsrpt'>{escape(chr(10).join(lines[1:]))}</pre>")
    return f"<section class='tlsrpt-reports'><h4>TLS report</h4>{''.join(items)}</section>"


def phase_html(r: Record, info: Info | None) -> str:
    phase_info = (info or {}).get("phases", {}).get(r.phase, {})
    diagram = sequence_svg(r.as_dict(), phase_info.get("attacks", []),
                           title=f"{r.sender}: {r.scenario} [{r.phase}]")
    reason = f"<p>The sender said: <span class='mono'>{escape(r.reason)}</span></p>" \
        if r.reason else ""
    return (f"<article class='phase' id='{_anchor(r.sender, r.scenario, r.phase)}'>"
            f"{_verdict_block(r, info)}<div class='body'>{_attacks_block(r, info)}{reason}"
            f"{_reports_block(r)}"
            f"<figure>{diagram}</figure>"
            f"<details><summary>Transcript, step by step</summary><pre>{escape(narrate(r))}"
            "</pre></details></div></article>")


def _refs(refs: Sequence[str]) -> str:
    items = []
    for ref in refs:
        m = _RFC.match(ref)
        if m:
            url = f"https://www.rfc-editor.org/rfc/rfc{m.group(1)}" + \
                (f"#section-{m.group(2)}" if m.group(2) else "")
            items.append(f"<li><a href='{url}'>{escape(ref)}</a></li>")
        else:
            items.append(f"<li>{escape(ref)}</li>")
    return f"<ul class='refs'>{''.join(items)}</ul>"


def _story(info: Info | None) -> str:
    if not info:
        return ""
    out = ["<div class='story'>"]
    if info.get("attacker_does"):
        out.append(f"<div class='attacker'><h3>What the attacker does</h3>"
                   f"<p>{escape(info['attacker_does'])}</p></div>")
    if info.get("compliant_does"):
        out.append(f"<div class='compliant'><h3>What a compliant sender does</h3>"
                   f"<p>{escape(info['compliant_does'])}</p></div>")
    out.append("</div>")
    teach = "".join(f"<p>{escape(' '.join(p.split()))}</p>"
                    for p in str(info.get("teach", "")).split("\n\n") if p.strip())
    if teach:
        out.append(f"<details open><summary>Why it matters</summary>{teach}</details>")
    return "".join(out)


def scenario_html(scenario: str, recs: Sequence[Record], info: Info | None) -> str:
    refs = list(info.get("refs", [])) if info else (list(recs[0].refs) if recs else [])
    head = [f"<section class='scenario' id='{_anchor(scenario)}'><h2>{escape(scenario)}</h2>"]
    if info:
        mode = info.get("mode") or "no policy"
        head.append(f"<p>{escape(info.get('summary', ''))} <i>(policy: {escape(mode)})</i></p>")
    head += [_refs(refs), _story(info)]
    senders = list(dict.fromkeys(r.sender for r in recs))
    for sender in senders:
        mine = [r for r in recs if r.sender == sender]
        head.append(f"<h3>Sender {escape(sender)}</h3><div class='pair'>")
        head += [phase_html(r, info) for r in mine]
        head.append("</div>")
    head.append("</section>")
    return "".join(head)


def _overview(records: Sequence[Record]) -> str:
    from lab.report import _cell_verdict

    senders = list(dict.fromkeys(r.sender for r in records))
    scenarios = list(dict.fromkeys(r.scenario for r in records))
    rows = ["<tr><th>scenario</th>" + "".join(f"<th>{escape(s)}</th>" for s in senders)
            + "</tr>"]
    for s in scenarios:
        cells = [f"<td><a href='#{_anchor(s)}'>{escape(s)}</a></td>"]
        for x in senders:
            recs = [r for r in records if r.scenario == s and r.sender == x]
            if not recs:
                cells.append("<td>-</td>")
                continue
            v = _cell_verdict(recs)
            alarm = " v-alarm" if any(_alarm(r) for r in recs) else ""
            first = next((r for r in recs if _label(r) == v), recs[0])
            cells.append(f"<td class='v-{escape(v)}{alarm}'><a href='#"
                         f"{_anchor(x, s, first.phase)}'>{escape(v)}</a></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table class='overview'>{''.join(rows)}</table></div>"


_LEGEND = ("<ul class='legend'><li class='lg-pass'>pass</li><li class='lg-alarm'>the "
           "attacker got the message (fail, or a known failure)</li><li class='lg-known'>"
           "known failure</li><li class='lg-adv'>advisory / unexpected pass</li>"
           "<li class='lg-skip'>skipped</li></ul><p>In the diagrams: one arrow from sender "
           "to MX is a line the attacker relayed unchanged; orange is the attacker's doing "
           "(struck-through text was removed by it, red text forged or injected); a red "
           "dashed arrow was read by the attacker; green is TLS.</p>")


def html(records: Sequence[Record], *, scenarios: Mapping[str, Info] | None = None,
         title: str = "mtasts-lab results") -> str:
    """The whole page; ``scenarios`` is the explain data per scenario id (JSON results
    ``scenarios``); missing entries are looked up in the built-in catalogue."""
    from lab.report import summary

    infos = dict(scenarios or {})
    order = list(dict.fromkeys(r.scenario for r in records))
    for sid in order:
        if sid not in infos:
            found = _catalogue_info(sid)
            if found:
                infos[sid] = found
    body = [f"<h1>{escape(title)}</h1><p>{escape(summary(records))}</p>", _LEGEND,
            _overview(records)]
    body += [scenario_html(s, [r for r in records if r.scenario == s], infos.get(s))
             for s in order]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _catalogue_info(scenario_id: str) -> dict[str, Any] | None:
    from lab.scenario import ScenarioError, select
    from lab.scenario_info import scenario_info

    try:
        found = select([scenario_id])
    except (ScenarioError, OSError):
        return None
    return scenario_info(found[0]) if len(found) == 1 else None
