"""A phase's evidence as the steps of a sequence diagram (drawn by lab/sequence_svg.py).

Lanes: DNS and the policy host on the side, then sender, attacker (the proxy), genuine MX.
A line the proxy relays unchanged is one arrow from sender to MX (or back); a line it
changes, drops, answers itself or injects is drawn as two arrows with the attack's effect
marked: a removed capability struck through, a forged certificate flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DNS, POLICY, SENDER, PROXY, MX = range(5)
LANES = ("DNS", "policy host", "sender", "attacker (proxy)", "genuine MX")

# marks (CSS classes of the drawing)
PLAIN, TLS, ATTACK, ALARM, GOOD = "plain", "tls", "attack", "alarm", "good"

Part = tuple[str, str]
"""(text, style): style "" plain, "struck" removed by the attacker, "added" forged by it."""


@dataclass
class Step:
    t: float
    lanes: tuple[int, int]
    """(from, to) of an arrow; (a, b) with ``note`` the lanes a note box spans."""
    parts: list[Part]
    mark: str = PLAIN
    badge: str = ""
    """A short label of what the attacker did here (shown beside the arrow)."""
    note: bool = False
    via: bool = False
    """An arrow relayed through the attacker's lane unchanged."""
    attack: str = ""
    """The attack whose effect this step shows (data-attack in the SVG)."""


@dataclass
class _Ctx:
    record: Mapping[str, Any]
    dns_fired: dict[str, str] = field(default_factory=dict)
    smtp_attacks: list[str] = field(default_factory=list)

    @property
    def exposed_is_failure(self) -> bool:
        observed = self.record.get("observed")
        return observed in ("intercepted", "delivered-plaintext") and \
            observed not in (self.record.get("expected") or ())


def _context(record: Mapping[str, Any], attacks: Sequence[Mapping[str, Any]]) -> _Ctx:
    places = {a.get("name"): a.get("place") for a in attacks}
    ctx = _Ctx(record)
    for name, proofs in (record.get("fired") or {}).items():
        if places.get(name) == "dns":
            ctx.dns_fired.update({p: name for p in _texts(proofs)})
        elif places.get(name, "smtp") == "smtp":
            ctx.smtp_attacks.append(name)
    return ctx


def _texts(value: Any) -> list[str]:
    """A list field of an event as strings, whatever a results file holds there."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)] if value else []


def _dns(e: Mapping[str, Any], ctx: _Ctx) -> list[Step]:
    t = float(e.get("t", 0.0))
    proof = f"served {e.get('qtype')} {e.get('name')} ({e.get('rcode')})"
    attack = ctx.dns_fired.get(proof, "")
    failure = e.get("failure")
    answer = "; ".join(_texts(e.get("answers"))) or str(e.get("rcode") or "no answer")
    if failure:
        answer = f"{answer} ({failure})"
    mark = ATTACK if attack or failure else PLAIN
    return [Step(t, (SENDER, DNS), [(f"{e.get('qtype')} {e.get('name')}?", "")]),
            Step(t, (DNS, SENDER), [(answer, "added" if mark == ATTACK else "")], mark,
                 badge=f"forged by {attack}" if attack else ("" if not failure else "failure"),
                 attack=attack)]


def _policy(e: Mapping[str, Any], ctx: _Ctx) -> list[Step]:
    t = float(e.get("t", 0.0))
    applied = _texts(e.get("applied"))
    kind = e.get("kind")
    if kind == "fetch":
        reply = f"{e.get('status')} {e.get('content_type') or ''}".strip()
        if e.get("aborted"):
            reply += f" (aborted: {e.get('aborted')})"
        return [Step(t, (SENDER, POLICY), [(f"GET https://{e.get('host')}{e.get('path')}", "")]),
                Step(t, (POLICY, SENDER), [(reply, "added" if applied else "")],
                     ATTACK if applied else PLAIN, badge=", ".join(applied),
                     attack=", ".join(applied))]
    if kind == "tls-failed":
        return [Step(t, (POLICY, SENDER), [(f"TLS refused: {e.get('cert')} certificate "
                                            f"({e.get('error')})", "")], GOOD, note=True)]
    if kind == "handshake" and e.get("cert") not in (None, "valid"):
        return [Step(t, (POLICY, SENDER), [(f"forged: {e.get('cert')} certificate for "
                                            f"{e.get('sni')}", "forged")], ATTACK, note=True,
                     badge=", ".join(applied), attack=", ".join(applied))]
    return []


def _proxy(e: Mapping[str, Any], ctx: _Ctx) -> list[Step]:
    t = float(e.get("t", 0.0))
    kind = e.get("kind")
    if kind == "attack-fired":
        return [Step(t, (PROXY, PROXY), [(f"{e.get('attack')}: {e.get('detail')}", "")],
                     ATTACK, note=True, attack=str(e.get("attack")))]
    if kind == "tls" and e.get("leg") == "client":
        cert = e.get("cert") or "genuine"
        if e.get("ok"):
            forged = e.get("mode") == "intercept"
            text = (f"sender ACCEPTED the attacker's {cert} certificate for "
                    f"{e.get('cert_name')}: the attacker decrypts the session") if forged \
                else f"TLS with the sender ({e.get('version')})"
            return [Step(t, (SENDER, PROXY), [(text, "forged" if forged else "")],
                         ALARM if forged else TLS, note=True)]
        return [Step(t, (SENDER, PROXY), [(f"forged {cert} certificate for "
                                           f"{e.get('cert_name')}", "forged"),
                                          (f"sender refused it ({e.get('error')})", "")],
                     GOOD, note=True)]
    if kind == "tls" and e.get("leg") == "server":
        state = f"TLS to the MX ({e.get('version')})" if e.get("ok") else \
            f"TLS to the MX failed ({e.get('error')})"
        return [Step(t, (PROXY, MX), [(state, "")], TLS, note=True)]
    if kind == "message":
        leg = e.get("client_leg")
        if leg == "intercepted":
            return [Step(t, (SENDER, PROXY), [("the attacker read the message", "")], ALARM,
                         note=True)]
        if leg == "plaintext":
            return [Step(t, (SENDER, PROXY), [("the message crossed the attacker in "
                                               "plaintext", "")],
                         ALARM if ctx.exposed_is_failure else PLAIN, note=True)]
    if kind == "close":
        lines = e.get("transcript")
        return _transcript([x for x in lines if isinstance(x, Mapping)]
                           if isinstance(lines, list) else [], ctx)
    return []


def _sink(e: Mapping[str, Any], ctx: _Ctx) -> list[Step]:
    if e.get("kind") != "message":
        return []
    over = e.get("tls_version") or "plaintext"
    good = e.get("tls_version") and not ctx.exposed_is_failure
    return [Step(float(e.get("t", 0.0)), (MX, MX), [(f"received the message over {over}", "")],
                 GOOD if good else (ALARM if ctx.exposed_is_failure else PLAIN), note=True)]


def _sender(e: Mapping[str, Any], ctx: _Ctx) -> list[Step]:
    if e.get("kind") != "status":
        return []
    return [Step(float(e.get("t", 0.0)), (SENDER, SENDER),
                 [(f"{e.get('status')}: {e.get('reason')}", "")], PLAIN, note=True)]


# ---------------------------------------------------------------- the SMTP transcript

@dataclass
class _Group:
    t: float
    leg: str
    dir: str
    tls: str
    note: str
    lines: list[str]


def _groups(transcript: Iterable[Mapping[str, Any]]) -> list[_Group]:
    out: list[_Group] = []
    for line in transcript:
        key = (str(line.get("leg")), str(line.get("dir")), str(line.get("tls")),
               str(line.get("note", "")))
        text = str(line.get("text", "")).rstrip("\r\n")
        last = out[-1] if out else None
        if (last and (last.leg, last.dir, last.tls, last.note) == key and not text.startswith("[")
                and not last.lines[-1].startswith("[") and float(line.get("t", 0)) == last.t):
            last.lines.append(text)
        else:
            out.append(_Group(float(line.get("t", 0.0)), *key, [text]))
    return out


_LANE_OF = {("client", "in"): (SENDER, PROXY), ("client", "out"): (PROXY, SENDER),
            ("server", "out"): (PROXY, MX), ("server", "in"): (MX, PROXY)}


def _leg_mark(g: _Group) -> str:
    if g.tls == "intercepted":
        return ALARM
    return TLS if g.tls in ("tls", "tunnel") else PLAIN


def _changed(src: _Group, dst: _Group) -> list[Part]:
    """The relayed reply with what the attacker removed struck through and what it added."""
    sent = {ln.strip()[4:].upper() for ln in dst.lines}
    parts: list[Part] = []
    for ln in src.lines:
        parts.append((ln, "" if ln.strip()[4:].upper() in sent else "struck"))
    got = {ln.strip()[4:].upper() for ln in src.lines}
    parts += [(ln, "added") for ln in dst.lines if ln.strip()[4:].upper() not in got]
    return parts


def _transcript(transcript: Iterable[Mapping[str, Any]], ctx: _Ctx) -> list[Step]:
    steps: list[Step] = []
    # a transcript line that names no known leg and direction has no lane to be drawn in
    groups = [g for g in _groups(transcript) if (g.leg, g.dir) in _LANE_OF]
    attack = ", ".join(ctx.smtp_attacks)
    i = 0
    while i < len(groups):
        g = groups[i]
        nxt = groups[i + 1] if i + 1 < len(groups) else None
        if g.lines[0].startswith("["):
            lanes = (SENDER, PROXY) if g.leg == "client" else (PROXY, MX)
            steps.append(Step(g.t, lanes, [(g.lines[0].strip("[]"), "")], _leg_mark(g),
                              note=True))
            i += 1
            continue
        inbound = g.dir == "in"
        relay_leg = "server" if g.leg == "client" else "client"
        if inbound and not g.note and nxt and nxt.leg == relay_leg and nxt.dir == "out":
            if nxt.lines == g.lines and not nxt.note:
                ends = (SENDER, MX) if g.leg == "client" else (MX, SENDER)
                mark = ALARM if ALARM in (_leg_mark(g), _leg_mark(nxt)) else _leg_mark(g)
                steps.append(Step(g.t, ends, [(ln, "") for ln in g.lines], mark, via=True))
            else:
                steps.append(Step(g.t, _LANE_OF[(g.leg, "in")], [(ln, "") for ln in g.lines],
                                  _leg_mark(g)))
                steps.append(Step(nxt.t, _LANE_OF[(nxt.leg, "out")], _changed(g, nxt), ATTACK,
                                  badge="changed by the attacker", attack=attack))
            i += 2
            continue
        parts = [(ln, "added" if g.note in ("proxy", "injected") else "") for ln in g.lines]
        if g.note == "dropped":
            parts = [(ln, "struck") for ln in g.lines]
        badge = {"proxy": "answered by the attacker", "injected": "injected by the attacker",
                 "dropped": "dropped by the attacker", "incomplete": "incomplete"}.get(g.note, "")
        mark = ATTACK if g.note in ("proxy", "injected", "dropped") else _leg_mark(g)
        steps.append(Step(g.t, _LANE_OF[(g.leg, g.dir)], parts, mark, badge=badge,
                          attack=attack if mark == ATTACK else ""))
        i += 1
    return steps


_BY_SOURCE = {"dns": _dns, "policy": _policy, "proxy": _proxy, "sink": _sink,
              "sender": _sender}


def steps(record: Mapping[str, Any], attacks: Sequence[Mapping[str, Any]] = ()) -> list[Step]:
    """The diagram's steps in time order."""
    ctx = _context(record, attacks)
    out: list[Step] = []
    for event in record.get("evidence") or ():
        handler = _BY_SOURCE.get(str(event.get("source")))
        if handler:
            out += handler(event, ctx)
    return sorted(out, key=lambda s: s.t)
