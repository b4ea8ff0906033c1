"""chasquid's logs, read as they are written: the mail log (its own decisions) and the
debug log (``-v 1``: which check refused).

Mail log lines (``mail_log_path: "<stdout>"``)::

    <date> <time> <qid> from=<from> queued ip=<client ip:port> to=[<rcpt> ...]
    <date> <time> <qid> from=<from> to=<rcpt> sent
    <date> <time> <qid> from=<from> to=<rcpt> failed (temporary|permanent): <reason>

chasquid does not log the Message-ID: the adapter tells this parser which submitting
connection (its local ``ip:port``) carried which message, and the ``queued`` line ties the
queue id to it. Debug lines (``Courier.SMTP <rcpt>: ...``, ``STSCache.Fetch <domain>: ...``)
are evidence about the messages to that recipient or domain.

Which mechanism refused is in the reason: ``... for STS policy`` is MTA-STS (the connection's
security level is below TLS_SECURE under an enforce policy), ``Security level check failed``
is chasquid's own per-domain memory (``domaininfo``), ``skipped as per MTA-STA policy`` an MX
that the policy does not list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.senders.base import BOUNCED, DEFERRED, SENT

_DATE = r"(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? )?"
_QUEUED = re.compile(_DATE + r"(?P<qid>\S+) from=(?P<frm>\S*) queued ip=(?P<ip>\S+) "
                     r"to=\[(?P<to>[^\]]*)\]\s*$")
_RESULT = re.compile(_DATE + r"(?P<qid>\S+) from=(?P<frm>\S*) to=(?P<to>\S+) "
                     r"(?:(?P<sent>sent)|failed \((?P<kind>temporary|permanent)\): "
                     r"(?P<reason>.*))\s*$")
_DEBUG = re.compile(r"(?:Courier\.SMTP (?P<rcpt>\S+)|STSCache\.\w+ (?P<domain>[^\s:]+)):")

MTA_STS = "mta-sts"
DOMAININFO = "domaininfo"


def mechanism(reason: str) -> str:
    """Which of chasquid's checks a refusal came from ('' when neither says so)."""
    if "for STS policy" in reason or "as per MTA-STA policy" in reason:
        return MTA_STS
    if "Security level check failed" in reason:
        return DOMAININFO
    return ""


@dataclass(frozen=True)
class ChasquidStatus:
    message_id: str
    queue_id: str
    status: str
    reason: str
    mechanism: str
    log_line: str


@dataclass
class ChasquidLog:
    """Feed log lines; get (Message-IDs a line is about, the decision if it is one)."""

    by_client: dict[str, str] = field(default_factory=dict)
    by_qid: dict[str, str] = field(default_factory=dict)
    rcpt_of: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)

    def expect(self, client: str, message_id: str, rcpt: str) -> None:
        """The message ``message_id`` to ``rcpt`` was submitted from ``client`` (ip:port)."""
        self.by_client[client] = message_id
        self.rcpt_of[message_id] = rcpt.lower()

    def forget(self) -> None:
        self.by_client.clear()
        self.by_qid.clear()
        self.rcpt_of.clear()
        self.decided.clear()

    def pending(self) -> list[str]:
        return [m for m in self.rcpt_of if m not in self.decided]

    def feed(self, line: str) -> tuple[list[str], ChasquidStatus | None]:
        text = line.strip()
        m = _QUEUED.match(text)
        if m is not None:
            mid = self.by_client.get(m["ip"])
            if mid is None:
                return [], None
            self.by_qid[m["qid"]] = mid
            return [mid], None
        m = _RESULT.match(text)
        if m is not None:
            mid = self.by_qid.get(m["qid"])
            if mid is None:
                return [], None
            if mid in self.decided:
                return [mid], None
            self.decided.add(mid)
            if m["sent"]:
                return [mid], ChasquidStatus(mid, m["qid"], SENT, "", "", line)
            reason = m["reason"] or ""
            status = DEFERRED if m["kind"] == "temporary" else BOUNCED
            return [mid], ChasquidStatus(mid, m["qid"], status, reason, mechanism(reason),
                                         line)
        m = _DEBUG.search(text)
        if m is not None:
            if m["rcpt"]:
                who = m["rcpt"].lower()
                return [mid for mid in self.pending() if self.rcpt_of[mid] == who], None
            domain = (m["domain"] or "").lower()
            return [mid for mid in self.pending()
                    if self.rcpt_of[mid].rpartition("@")[2] == domain], None
        return [], None
