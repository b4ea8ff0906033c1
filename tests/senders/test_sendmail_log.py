"""sendmail's log parser and its syslog socket (no Docker): queue ids tied through the
``from=`` line's msgid, the first ``stat=`` decides."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lab.senders.base import BOUNCED, DEFERRED, SENT
from lab.senders.sendmail import sendmail_mc
from lab.senders.sendmail_log import READY, SendmailLog, relay_command, strip_syslog

MID = "<4f1c0de2a9b84e0c9d1f@sender.test>"
FROM = ("sendmail[41]: 5B23M1ab000041: from=<probe@sender.test>, size=532, class=0, "
        f"nrcpts=1, msgid={MID}, relay=root@localhost")
SENT_LINE = ("sendmail[43]: 5B23M1ab000041: to=<user@victim.test>, delay=00:00:00, "
             "xdelay=00:00:00, mailer=esmtp, pri=30532, relay=mx1.victim.test. [10.254.0.11], "
             "dsn=2.0.0, stat=Sent (OK: queued by mtasts-lab sink)")
DEFERRED_LINE = SENT_LINE.replace("dsn=2.0.0, stat=Sent (OK: queued by mtasts-lab sink)",
                                  "dsn=4.7.0, stat=Deferred: 450 4.7.0 STS lookup temp fail")
BOUNCED_LINE = SENT_LINE.replace("dsn=2.0.0, stat=Sent (OK: queued by mtasts-lab sink)",
                                 "dsn=5.1.1, stat=User unknown")


def _log() -> SendmailLog:
    log = SendmailLog()
    log.expect(MID)
    return log


def test_the_from_line_ties_the_queue_id_and_the_first_stat_decides() -> None:
    log = _log()
    assert log.feed(FROM) == (MID, None)
    assert log.queue_id(MID) == "5B23M1ab000041"
    mid, status = log.feed(SENT_LINE)
    assert mid == MID and status is not None and status.status == SENT
    assert status.mx == "mx1.victim.test" and status.dsn == "2.0.0"
    assert status.reason.startswith("Sent (OK")
    # a later line about the same queue id decides nothing
    assert log.feed(DEFERRED_LINE) == (MID, None)


def test_deferred_and_bounced_keep_the_reason() -> None:
    for line, want in ((DEFERRED_LINE, DEFERRED), (BOUNCED_LINE, BOUNCED)):
        log = _log()
        log.feed(FROM)
        _, status = log.feed(line)
        assert status is not None and status.status == want
        assert status.reason in line and status.queue_id == "5B23M1ab000041"


def test_a_ruleset_refusal_before_a_bare_deferral_is_the_reason() -> None:
    log = _log()
    log.feed(FROM)
    refusal = ("sendmail[43]: 5B23M1ab000041: ruleset=tls_rcpt, arg1=user@victim.test, "
               "relay=mx2.victim.test., reject=450 4.7.0 user@victim.test... mx2.victim.test "
               "not found in mx1.victim.test")
    assert log.feed(refusal) == (MID, None)
    _, status = log.feed(DEFERRED_LINE.replace(
        "dsn=4.7.0, stat=Deferred: 450 4.7.0 STS lookup temp fail", "dsn=4.2.0, stat=Deferred"))
    assert status is not None and status.status == DEFERRED
    assert status.reason == ("Deferred (tls_rcpt: 450 4.7.0 user@victim.test... "
                             "mx2.victim.test not found in mx1.victim.test)")


def test_other_messages_and_other_lines_are_ignored() -> None:
    log = _log()
    assert log.feed(FROM.replace(MID, "<other@sender.test>")) == (None, None)
    assert log.feed(SENT_LINE) == (None, None)
    log.feed(FROM)
    starttls = ("sendmail[43]: STARTTLS=client, relay=mx1.victim.test., version=TLSv1.3, "
                "verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256")
    assert log.feed(starttls) == (None, None)
    log.forget()
    assert log.feed(SENT_LINE) == (None, None)


def test_syslog_prefix_is_stripped() -> None:
    assert strip_syslog(f"<22>Dec  2 02:40:00 {FROM}\n") == FROM
    assert strip_syslog(f"<22>{FROM}") == FROM
    assert strip_syslog(FROM) == FROM


@given(st.text(max_size=300))
def test_any_line_is_safe(line: str) -> None:
    log = _log()
    log.feed(FROM)
    mid, status = log.feed(line)
    assert mid in (None, MID)
    assert status is None or status.message_id == MID


def test_the_syslog_socket_prints_each_datagram(tmp_path: Path) -> None:
    path = tmp_path / "log"
    argv = list(relay_command(str(path)))  # what the adapter runs: its source, no lab import
    with subprocess.Popen([sys.executable, *argv[1:]], stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == READY
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(f"<22>Dec  2 02:40:00 {FROM}".encode(), str(path))
            assert proc.stdout.readline().strip() == FROM
        finally:
            proc.kill()


def test_the_mc_uses_the_shipped_sts_feature_and_the_lab_ca(tmp_path: Path) -> None:
    text = sendmail_mc(tmp_path, tmp_path / "certs" / "lab-ca.pem")
    assert "FEATURE(`sts')dnl" in text
    assert f"define(`confCACERT', `{tmp_path}/certs/lab-ca.pem')dnl" in text
    assert f"define(`QUEUE_DIR', `{tmp_path}/mqueue')dnl" in text
