"""The evidence of one phase told step by step, in the order it happened (for teachers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lab.report_text import expected_words, received_lines
from lab.run_record import Record

_ARROW = {("client", "in"): "sender -> proxy", ("client", "out"): "proxy  -> sender",
          ("server", "in"): "MX     -> proxy", ("server", "out"): "proxy  -> MX    "}


def _text(value: Any) -> str:
    return str(value).rstrip("\r\n").replace("\r\n", "\n")


def step(event: Mapping[str, Any]) -> Iterator[str]:
    """Readable lines for one evidence event (empty for events that say nothing new)."""
    source, kind = event.get("source"), event.get("kind")
    if source == "dns" and kind == "query":
        answers = "; ".join(event.get("answers") or ()) or event.get("rcode", "")
        failure = f" [attack: {event['failure']}]" if event.get("failure") else ""
        yield f"DNS     {event.get('qtype')} {event.get('name')} -> {answers}{failure}"
    elif source == "policy" and kind == "fetch":
        applied = f" [attack: {', '.join(event['applied'])}]" if event.get("applied") else ""
        yield (f"HTTPS   GET https://{event.get('host')}{event.get('path')} -> "
               f"{event.get('status')} {event.get('content_type') or ''}{applied}")
    elif source == "policy" and kind == "tls-failed":
        yield (f"HTTPS   TLS to {event.get('sni')} failed ({event.get('cert')} certificate): "
               f"{event.get('error')}")
    elif source == "proxy" and kind == "attack-fired":
        yield f"ATTACK  {event.get('attack')} on {event.get('mx')}: {event.get('detail')}"
    elif source == "proxy" and kind == "tls" and event.get("leg") == "client":
        state = "completed" if event.get("ok") else f"failed: {event.get('error')}"
        yield (f"TLS     sender <-> proxy ({event.get('mode')}, {event.get('cert')} certificate "
               f"for {event.get('cert_name')}, SNI {event.get('sni')}) {state}")
    elif source == "proxy" and kind == "close":
        yield f"SMTP    session with {event.get('mx')} ended ({event.get('reason')}):"
        for line in event.get("transcript") or ():
            yield from _transcript_line(line)
    elif source == "sink" and kind == "message":
        over = event.get("tls_version") or "plaintext"
        yield (f"MX      genuine MX {event.get('mx')} received {event.get('message_id')} over "
               f"{over}")
    elif source == "collector" and kind == "tlsrpt-report":
        status = f" -> {event['status']}" if event.get("status") is not None else ""
        yield (f"REPORT  {event.get('transport')} TLS report for "
               f"{', '.join(event.get('policy_domains') or []) or '?'} reached the collector "
               f"({event.get('content_type')}, {event.get('size')} bytes){status}")
    elif source == "sender" and kind == "tlsrpt-submit" and not event.get("ok"):
        yield f"SENDER  TLS report to {event.get('uri')} failed: {event.get('error')}"
    elif source == "sender" and kind in ("status", "log"):
        text = (f"{event.get('status')}: {event.get('reason')}" if kind == "status"
                else str(event.get("line")))
        yield f"SENDER  {text}"


def _timeline(evidence: list[dict[str, Any]]) -> list[tuple[float, list[str]]]:
    """Events in time order; a session's transcript lines each at their own time."""
    items: list[tuple[float, list[str]]] = []
    for event in evidence:
        if event.get("source") == "proxy" and event.get("kind") == "close":
            items.append((float(event.get("t", 0.0)), [
                f"SMTP    session with {event.get('mx')} ended ({event.get('reason')})"]))
            for line in event.get("transcript") or ():
                items.append((float(line.get("t", 0.0)), list(_transcript_line(line))))
        else:
            items.append((float(event.get("t", 0.0)), list(step(event))))
    return sorted(items, key=lambda item: item[0])


def _transcript_line(line: Mapping[str, Any]) -> Iterator[str]:
    arrow = _ARROW.get((str(line.get("leg")), str(line.get("dir"))), "?")
    tls = "" if line.get("tls") in (None, "none") else f" [{line.get('tls')}]"
    note = f"   <- {line['note']}" if line.get("note") else ""
    for text in _text(line.get("text", "")).split("\n"):
        yield f"SMTP    {arrow}{tls}  {text}{note}"


def _once(lines: list[str]) -> list[str]:
    """Drop a SENDER line that an earlier one already said (an adapter's log line and its
    status event carry the same words)."""
    out: list[str] = []
    said: list[str] = []
    for line in lines:
        if line.startswith("SENDER  "):
            text = line[len("SENDER  "):]
            if any(text in earlier for earlier in said):
                continue
            said.append(text)
        out.append(line)
    return out


def narrate(record: Record) -> str:
    lines = [f"--- {record.sender}: {record.scenario} [{record.phase}] ---"]
    told = [line for _, step_lines in _timeline(record.evidence) for line in step_lines]
    lines += ["  " + line for line in _once(told)]
    for attack, evidence in record.fired.items():
        proof = "; ".join(evidence[:3]) + (" ..." if len(evidence) > 3 else "")
        lines.append(f"  FIRED   {attack}: {proof}" if evidence
                     else f"  FIRED   {attack}: never (the sender was not tested by it)")
    if record.report_expected is not None:
        lines.append(f"  EXPECTED {expected_words(record.report_expected)}")
        for report in record.reports:
            lines += ["  RECEIVED " + line if i == 0 else "           " + line
                      for i, line in enumerate(received_lines(report))]
        if not record.reports:
            lines.append("  RECEIVED no TLS report for the domain")
    verdict = (f"  VERDICT {record.verdict}: expected {' or '.join(record.expected)}, "
               f"observed {record.observed}.")
    why = (record.why or "").strip()
    if why and why.rstrip(".") not in verdict:
        verdict += f" {why}"
    lines.append(verdict)
    return "\n".join(lines)
