"""chasquid's log parser: queue ids tied through the submitting connection, decisions,
which check refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.senders.base import BOUNCED, DEFERRED, SENT
from lab.senders.chasquid_log import DOMAININFO, MTA_STS, ChasquidLog, mechanism

MID = "<abc@sender.test>"
QUEUED = ("2026-12-01 23:32:38.992394 zEKa75ehXM0 from=probe@sender.test queued "
          "ip=127.0.0.1:45394 to=[rcpt@victim.test]")
SENT_LINE = "2026-12-01 23:32:39.1 zEKa75ehXM0 from=probe@sender.test to=rcpt@victim.test sent"
STS_FAIL = ("2026-12-01 23:32:39.006881 zEKa75ehXM0 from=probe@sender.test to=rcpt@victim.test "
            "failed (temporary): all MXs returned transient failures (last: invalid security "
            "level (PLAIN) for STS policy)")
DINFO_FAIL = STS_FAIL.replace("invalid security level (PLAIN) for STS policy",
                              "Security level check failed (level:PLAIN)")


def _log() -> ChasquidLog:
    log = ChasquidLog()
    log.expect("127.0.0.1:45394", MID, "rcpt@victim.test")
    return log


def test_queue_id_is_tied_through_the_submitting_connection_and_sent_decides() -> None:
    log = _log()
    assert log.feed(QUEUED) == ([MID], None)
    mids, status = log.feed(SENT_LINE)
    assert mids == [MID] and status is not None and status.status == SENT
    assert status.queue_id == "zEKa75ehXM0"
    # a later line about the same queue id (a retry) decides nothing
    assert log.feed(STS_FAIL)[1] is None


def test_a_deferral_names_the_check_that_refused() -> None:
    for line, mech in ((STS_FAIL, MTA_STS), (DINFO_FAIL, DOMAININFO)):
        log = _log()
        log.feed(QUEUED)
        _, status = log.feed(line)
        assert status is not None and status.status == DEFERRED
        assert status.mechanism == mech and "PLAIN" in status.reason
    log = _log()
    log.feed(QUEUED)
    _, status = log.feed(STS_FAIL.replace("(temporary)", "(permanent)"))
    assert status is not None and status.status == BOUNCED


def test_other_connections_and_debug_lines() -> None:
    log = _log()
    assert log.feed(QUEUED.replace("45394", "1")) == ([], None)
    log.feed(QUEUED)
    debug = "_ smtp.go:105 Courier.SMTP rcpt@victim.test: error: all MXs returned transient"
    assert log.feed(debug) == ([MID], None)
    assert log.feed(". sts.go:450 STSCache.Fetch victim.test: fetched") == ([MID], None)
    assert log.feed(". sts.go:450 STSCache.Fetch other.test: fetched") == ([], None)
    assert mechanism("Could not dial: refused") == ""


@given(st.text(max_size=300))
def test_any_line_is_safe(line: str) -> None:
    log = _log()
    mids, status = log.feed(line)
    assert set(mids) <= {MID}
    assert status is None or status.message_id == MID
