"""Reports and report messages for the TLS-RPT tests."""

from __future__ import annotations

import copy
import email.policy
import gzip
import json
from email.message import EmailMessage
from typing import Any

from lab.tlsrpt import GZIP_TYPE, JSON_TYPE, REPORT_MAILBOX

REPORT: dict[str, Any] = {
    "organization-name": "Sender Org",
    "date-range": {"start-datetime": "2026-12-01T00:00:00Z",
                   "end-datetime": "2026-12-01T23:59:59Z"},
    "contact-info": "tlsrpt@sender.test",
    "report-id": "2026-12-01T00:00:00Z_victim.test",
    "policies": [{
        "policy": {"policy-type": "sts",
                   "policy-string": ["version: STSv1", "mode: enforce",
                                     "mx: mx1.victim.test", "max_age: 86400"],
                   "policy-domain": "victim.test", "mx-host": ["mx1.victim.test"]},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 1},
        "failure-details": [{"result-type": "starttls-not-supported",
                             "sending-mta-ip": "127.0.0.1",
                             "receiving-mx-hostname": "mx1.victim.test",
                             "receiving-ip": "127.0.0.11", "failed-session-count": 1}],
    }],
}
FILENAME = "sender.test!victim.test!1764547200!1764633599!1.json"


def report(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(REPORT)
    out.update(changes)
    return out


def body(obj: Any = None, *, gz: bool = False) -> bytes:
    data = json.dumps(REPORT if obj is None else obj).encode()
    return gzip.compress(data) if gz else data


def mail(obj: Any = None, *, gz: bool = True, filename: str | None = None,
         headers: dict[str, str | None] | None = None, dkim: str | None = "v=1; a=rsa-sha256; "
         "d=sender.test; s=tlsrpt; h=from:to:subject; bh=AAAA; b=BBBB",
         report_type: str = "tlsrpt") -> bytes:
    """A report message as RFC 8460 5.3.1 describes it (the DKIM signature is only shaped
    like one: the lab checks its tags, not its cryptography)."""
    msg = EmailMessage()
    fields: dict[str, str | None] = {
        "From": "tlsrpt@sender.test", "To": REPORT_MAILBOX, "Subject":
        "Report Domain: victim.test Submitter: sender.test Report-ID: <1@sender.test>",
        "Message-ID": "<1@sender.test>", "TLS-Report-Domain": "victim.test",
        "TLS-Report-Submitter": "sender.test"}
    fields.update(headers or {})
    for name, value in fields.items():
        if value is not None:
            msg[name] = value
    if dkim is not None:
        msg["DKIM-Signature"] = dkim
    msg.set_content("This is an aggregate TLS report from sender.test.\n")
    name = filename or (FILENAME + ".gz" if gz else FILENAME)
    kind = GZIP_TYPE if gz else JSON_TYPE
    msg.add_attachment(body(obj, gz=gz), maintype="application", subtype=kind.split("/")[1],
                       filename=name)
    msg.replace_header("Content-Type", msg["Content-Type"].replace(
        "multipart/mixed", f'multipart/report; report-type="{report_type}"'))
    return msg.as_bytes(policy=email.policy.SMTP)
