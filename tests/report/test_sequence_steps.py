"""The sequence diagram from hand-made evidence: each kind of attacker action is marked, and
no evidence a results file may hold (merge reads files) breaks the drawing."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lab.sequence_steps import ATTACK, MX, PROXY, SENDER, steps
from lab.sequence_svg import sequence_svg


def _line(t: float, leg: str, direction: str, text: str, note: str = "") -> dict[str, Any]:
    line = {"t": t, "leg": leg, "dir": direction, "tls": "none", "text": text}
    return {**line, "note": note} if note else line


def _record(*transcript: dict[str, Any]) -> dict[str, Any]:
    close = {"t": 9.0, "source": "proxy", "kind": "close", "transcript": list(transcript)}
    return {"observed": "not-delivered", "expected": ["not-delivered"],
            "fired": {"x": ["mx1: did it"]}, "evidence": [close]}


def test_relayed_line_is_one_arrow_and_a_stripped_capability_is_struck() -> None:
    rec = _record(_line(1, "client", "in", "EHLO a.test"), _line(1, "server", "out", "EHLO a.test"),
                  _line(2, "server", "in", "250-mx1"), _line(2, "server", "in", "250-STARTTLS"),
                  _line(2, "server", "in", "250 HELP"),
                  _line(3, "client", "out", "250-mx1"), _line(3, "client", "out", "250 HELP"))
    got = steps(rec, [{"name": "x", "place": "smtp"}])
    assert [(s.lanes, s.via) for s in got] == [((SENDER, MX), True), ((MX, PROXY), False),
                                               ((PROXY, SENDER), False)]
    changed = got[2]
    assert changed.mark == ATTACK and changed.attack == "x"
    assert ("250-STARTTLS", "struck") in changed.parts and ("250 HELP", "") in changed.parts
    svg = sequence_svg(rec, [{"name": "x", "place": "smtp"}])
    assert "<tspan class='p-struck'>" in svg and "data-attack='x'" in svg


def test_answered_injected_and_dropped_lines_are_marked() -> None:
    rec = _record(_line(1, "client", "in", "STARTTLS"),
                  _line(2, "client", "out", "454 TLS not available", "proxy"),
                  _line(3, "client", "out", "421 closing", "injected"),
                  _line(4, "client", "in", "QUIT", "dropped"))
    got = steps(rec, [{"name": "x", "place": "smtp"}])
    assert [s.badge for s in got] == ["", "answered by the attacker", "injected by the attacker",
                                      "dropped by the attacker"]
    assert [p for s in got[1:] for _, p in s.parts] == ["added", "added", "struck"]


def test_forged_dns_answer_and_accepted_forged_certificate() -> None:
    rec = {"observed": "intercepted", "expected": ["not-delivered"],
           "fired": {"spoof-mx": ["served MX v.test (NOERROR)"]},
           "evidence": [
               {"t": 1, "source": "dns", "kind": "query", "name": "v.test", "qtype": "MX",
                "rcode": "NOERROR", "answers": ["MX 10 mx.attacker.test."]},
               {"t": 2, "source": "proxy", "kind": "tls", "leg": "client", "ok": True,
                "mode": "intercept", "cert": "self-signed", "cert_name": "mx1.v.test"}]}
    got = steps(rec, [{"name": "spoof-mx", "place": "dns"}])
    assert got[1].badge == "forged by spoof-mx" and got[1].parts[0][1] == "added"
    assert got[2].mark == "alarm" and "ACCEPTED" in got[2].parts[0][0]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_keys = st.sampled_from(["name", "qtype", "rcode", "answers", "failure", "applied", "status",
                         "content_type", "aborted", "host", "path", "cert", "sni", "error",
                         "attack", "detail", "leg", "ok", "mode", "cert_name", "version",
                         "client_leg", "tls_version", "mx", "reason", "transcript"])
_line_st = st.fixed_dictionaries(
    {"t": st.floats(0, 10), "leg": st.sampled_from(["client", "server"]),
     "dir": st.sampled_from(["in", "out"]), "text": st.text(max_size=30)},
    optional={"tls": st.sampled_from(["none", "tls", "intercepted", "tunnel"]),
              "note": st.sampled_from(["", "proxy", "injected", "dropped", "incomplete"])})
_event = st.builds(
    lambda base, extra, lines: {**extra, **base, **({"transcript": lines} if lines else {})},
    st.builds(lambda t, sk: {"t": t, "source": sk[0], "kind": sk[1]}, st.floats(0, 10),
              st.sampled_from([("dns", "query"), ("policy", "fetch"), ("policy", "tls-failed"),
                               ("policy", "handshake"), ("proxy", "attack-fired"),
                               ("proxy", "tls"), ("proxy", "message"), ("proxy", "close"),
                               ("sink", "message"), ("sender", "status"), ("other", "x")])),
    st.dictionaries(_keys, _json, max_size=6), st.lists(_line_st, max_size=6))


@given(st.lists(_event, max_size=8), st.dictionaries(st.text(max_size=5),
                                                     st.lists(st.text(max_size=10),
                                                              max_size=2), max_size=2))
def test_any_evidence_draws(evidence: list[dict[str, Any]], fired: dict[str, list[str]]) -> None:
    rec = {"observed": "intercepted", "expected": ["not-delivered"], "fired": fired,
           "evidence": evidence}
    svg = sequence_svg(rec, [{"name": n, "place": "dns"} for n in fired])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
