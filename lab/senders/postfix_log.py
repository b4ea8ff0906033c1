"""Reading Postfix's own log as it is written: which message got which status, and why.

Pure and sans-IO: ``PostfixLog.feed(line)`` returns what the line tells about the messages the
lab injected. The adapter feeds it every line Postfix writes to ``maillog_file =
/dev/stdout`` and every line of the MTA-STS resolver's log.

* The cleanup line ``QID: message-id=<...>`` ties a queue id to a Message-ID.
* The delivery agent's line ``QID: to=<...>, relay=HOST[ADDR]:PORT, ..., dsn=D,
  status=sent|deferred|bounced (TEXT)`` is the sender's decision; the first one per message
  is the one that counts (a deferral is not waited out).
* Lines of a delivery process that carry no queue id (``Verified TLS connection established
  to ...``, ``warning: ...``) are held per process and handed over as evidence of the message
  that process names next.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_LINE = re.compile(
    r"(?P<prog>postfix(?:-[\w.-]+)?/(?P<daemon>[\w/-]+))\[(?P<pid>\d+)\]:\s+(?P<rest>.*)$")
_QID = re.compile(r"^(?P<qid>[0-9A-F]{6,16}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}z"
                  r"[0-9A-Za-z]+):\s+(?P<text>.*)$")
_MESSAGE_ID = re.compile(r"^message-id=(?P<mid><[^>]*>|\S+)")
_STATUS = re.compile(r"\bstatus=(?P<status>sent|deferred|bounced|expired)\s*(?:\((?P<why>.*)\))?$")
_FIELD = re.compile(r"\b(?P<key>to|relay|dsn|delay)=(?P<value>[^,]*)")
_RELAY = re.compile(r"^(?P<host>[^\[\s]+)(?:\[(?P<addr>[^\]]*)\](?::(?P<port>\d+))?)?")


@dataclass(frozen=True)
class Status:
    message_id: str
    queue_id: str
    status: str
    dsn: str
    text: str
    mx: str
    relay: str
    rcpt: str
    log_line: str

    @property
    def reason(self) -> str:
        return f"{self.dsn} {self.text}".strip()


@dataclass(frozen=True)
class Evidence:
    message_id: str
    queue_id: str
    line: str


Item = Status | Evidence


@dataclass
class PostfixLog:
    """Feed lines; get statuses and evidence for the Message-IDs that were ``expect``ed."""

    expected: dict[str, str] = field(default_factory=dict)
    """Message-ID -> policy domain: the recipient's, or the smart host's (for matching
    resolver lines)."""
    qid_to_mid: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    _held: dict[str, list[str]] = field(default_factory=dict)

    def expect(self, message_id: str, rcpt: str, smart_host: str | None = None) -> None:
        self.expected[message_id] = (smart_host or rcpt.rpartition("@")[2]).lower()

    def forget(self) -> None:
        self.expected.clear()
        self.qid_to_mid.clear()
        self.decided.clear()
        self._held.clear()

    def queue_id_of(self, message_id: str) -> str | None:
        for qid, mid in self.qid_to_mid.items():
            if mid == message_id:
                return qid
        return None

    def feed(self, line: str) -> list[Item]:
        line = line.rstrip("\r\n")
        m = _LINE.search(line)
        if m is None:
            return []
        proc = f"{m['daemon']}[{m['pid']}]"
        q = _QID.match(m["rest"])
        if q is None:
            held = self._held.setdefault(proc, [])
            held.append(line)
            del held[:-20]
            return []
        qid, text = q["qid"], q["text"]
        out: list[Item] = []
        mid_match = _MESSAGE_ID.match(text)
        if mid_match and mid_match["mid"] in self.expected:
            self.qid_to_mid[qid] = mid_match["mid"]
        mid = self.qid_to_mid.get(qid)
        held = self._held.pop(proc, [])
        if mid is None:
            return []
        out += [Evidence(mid, qid, h) for h in held]
        out.append(Evidence(mid, qid, line))
        status = _STATUS.search(text)
        if status and mid not in self.decided:
            self.decided.add(mid)
            fields = {f["key"]: f["value"].strip() for f in _FIELD.finditer(text)}
            relay = fields.get("relay", "")
            r = _RELAY.match(relay)
            mx = r["host"] if r and r["host"] != "none" else ""
            out.append(Status(mid, qid, status["status"], fields.get("dsn", ""),
                              status["why"] or "", mx, relay,
                              fields.get("to", "").strip("<>"), line))
        return out

    def feed_resolver(self, line: str) -> list[Evidence]:
        """A resolver log line is evidence for each undecided message to a domain it names."""
        line = line.rstrip("\r\n")
        lower = line.lower()
        return [Evidence(mid, self.queue_id_of(mid) or "", line)
                for mid, domain in self.expected.items()
                if mid not in self.decided and domain and _names(lower, domain)]

    def feed_all(self, lines: Iterable[str]) -> list[Item]:
        return [item for line in lines for item in self.feed(line)]


def _names(line: str, domain: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(domain)}(?![\w-]|\.[\w-])", line) is not None
