"""sendmail's log, read as it is written: a syslog socket of its own and a parser.

sendmail logs only through syslog(3). A sender container has no syslog daemon, so the
adapter runs ``relay_syslog`` (``relay_command``: its own source under ``python3 -c``, no lab
import, so it is up at once): it binds ``/dev/log``, the datagram socket the C library writes
to, and prints each message on stdout (the agent relays it to the container's log, where
the adapter reads it back). ``python -m lab.senders.sendmail_log SOCKET`` runs the same.

``SendmailLog`` ties a Message-ID to its queue id (the ``from=`` line names both) and turns
the first ``to=... stat=`` line of that queue id into the sender's decision: ``dsn=2.*`` sent,
``dsn=5.*`` bounced, anything else deferred; a ``ruleset=... reject=...`` line about the queue
id before it (FEATURE(sts)'s ``tls_rcpt`` refusing an MX) is added to the reason.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.senders.base import BOUNCED, DEFERRED, SENT
from lab.senders.message_log import MessageLog

READY = "sendmail-log: listening"

# "<22>Dec  2 02:40:00 sm-mta[123]: " (the prefix syslog(3) writes; the date is optional)
_SYSLOG = re.compile(r"^<\d{1,3}>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?")
_LINE = re.compile(r"^(?:\S+\[\d+\]: )?(?P<qid>[0-9A-Za-z]{14,20}): (?P<rest>.*)$")
_MSGID = re.compile(r"\bmsgid=(?P<mid><[^>\s]*>)")
_TO = re.compile(r"^to=<?(?P<rcpt>[^>,\s]*)>?,")
_STAT = re.compile(r"\bstat=(?P<stat>.*)$")
_REJECT = re.compile(r"^ruleset=(?P<ruleset>\w+), .*\breject=(?P<reject>.*)$")
_DSN = re.compile(r"\bdsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3})")
_RELAY = re.compile(r"\brelay=(?P<host>[^\s,\[]*)\.?\s*(?:\[(?P<addr>[^\]]+)\])?")


def strip_syslog(datagram: str) -> str:
    """A syslog datagram without its priority and timestamp: ``sm-mta[12]: QID: ...``."""
    return _SYSLOG.sub("", datagram.rstrip("\n\x00"), count=1)


@dataclass(frozen=True)
class SendmailStatus:
    message_id: str
    queue_id: str
    status: str
    reason: str
    dsn: str
    mx: str
    log_line: str


@dataclass
class SendmailLog(MessageLog):
    """Feed log lines; get the first decision for each expected Message-ID."""

    rejected: dict[str, str] = field(default_factory=dict)
    """queue id -> the last ``ruleset=... reject=...`` line's ruleset and text (a bare
    ``stat=Deferred`` after a ``tls_rcpt`` refusal says nothing more)."""

    def forget(self) -> None:
        super().forget()
        self.rejected.clear()

    def feed(self, line: str) -> tuple[str | None, SendmailStatus | None]:
        """(the Message-ID this line is about, its decision if the line is one)."""
        m = _LINE.match(line.strip())
        if m is None:
            return None, None
        qid, rest = m["qid"], m["rest"]
        mid = _MSGID.search(rest)
        if rest.startswith("from=") and mid and mid["mid"] in self.expected:
            self.qid_to_mid[qid] = mid["mid"]
        mid_of = self.qid_to_mid.get(qid)
        if mid_of is None or mid_of in self.decided:
            return mid_of, None
        reject = _REJECT.match(rest)
        if reject is not None:
            self.rejected[qid] = f"{reject['ruleset']}: {reject['reject'].strip()}"
        stat = _STAT.search(rest)
        if not _TO.match(rest) or stat is None:
            return mid_of, None
        reason = stat["stat"].strip()
        if qid in self.rejected and not reason.startswith("Sent"):
            reason = f"{reason} ({self.rejected[qid]})"
        dsn_m = _DSN.search(rest)
        dsn = dsn_m["dsn"] if dsn_m else ""
        status = SENT if dsn.startswith("2") or stat["stat"].startswith("Sent") else (
            BOUNCED if dsn.startswith("5") else DEFERRED)
        relay = _RELAY.search(rest)
        mx = relay["host"].rstrip(".") if relay else ""
        self.decided.add(mid_of)
        return mid_of, SendmailStatus(mid_of, qid, status, reason, dsn, mx, line)


def relay_syslog(path: str) -> None:
    """Bind the syslog socket ``path`` and print every message as one line, its syslog
    prefix removed. Self-contained (its imports inside, no lab import): the adapter runs its
    source with ``python3 -c`` so it starts at once even on a loaded machine."""
    import os
    import re
    import socket

    prefix = re.compile(r"^<\d{1,3}>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?")
    if os.path.lexists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    print("sendmail-log: listening", flush=True)
    while True:
        data = sock.recv(65536)
        for part in data.decode(errors="replace").splitlines():
            if part.strip():
                print(prefix.sub("", part.rstrip("\x00"), count=1), flush=True)


def relay_command(path: str) -> tuple[str, ...]:
    """``python3 -c <relay_syslog's source>`` for ``path``."""
    import inspect
    import textwrap

    code = textwrap.dedent(inspect.getsource(relay_syslog)) + f"\nrelay_syslog({path!r})\n"
    return ("python3", "-c", code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lab.senders.sendmail_log SOCKET", file=sys.stderr)
        return 2
    relay_syslog(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
