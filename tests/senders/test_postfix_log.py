"""Reading Postfix's log: Message-ID -> queue id -> first status, with its evidence."""

from __future__ import annotations

from lab.senders.postfix_log import Evidence, PostfixLog, Status

MID = "<a1b2@sender.test>"
LOG = [
    "Nov 29 07:34:16 sender postfix/pickup[9700]: 837D2164153: uid=0 from=<probe@sender.test>",
    f"Nov 29 07:34:16 sender postfix/cleanup[9706]: 837D2164153: message-id={MID}",
    "Nov 29 07:34:16 sender postfix/qmgr[9699]: 837D2164153: from=<probe@sender.test>, "
    "size=443, nrcpt=1 (queue active)",
    "Nov 29 07:34:16 sender postfix/smtp[9708]: Verified TLS connection established to "
    "mx1.victim.test[198.18.0.11]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
    "Nov 29 07:34:16 sender postfix/smtp[9708]: 837D2164153: to=<rcpt@victim.test>, "
    "relay=mx1.victim.test[198.18.0.11]:25, delay=0.31, delays=0.06/0.04/0.21/0.01, "
    "dsn=4.7.4, status=deferred (TLS is required, but was not offered by host "
    "mx1.victim.test[198.18.0.11])",
    "Nov 29 07:34:18 sender postfix/smtp[9708]: 837D2164153: to=<rcpt@victim.test>, "
    "relay=mx1.victim.test[198.18.0.11]:25, delay=2.1, dsn=2.0.0, status=sent (250 OK)",
]


def test_first_status_decides_and_carries_the_reason() -> None:
    log = PostfixLog()
    log.expect(MID, "rcpt@victim.test")
    items = log.feed_all(LOG)
    statuses = [i for i in items if isinstance(i, Status)]
    assert len(statuses) == 1
    status = statuses[0]
    assert (status.message_id, status.queue_id, status.status) == (MID, "837D2164153",
                                                                   "deferred")
    assert status.dsn == "4.7.4"
    assert status.reason.startswith("4.7.4 TLS is required, but was not offered")
    assert (status.mx, status.rcpt) == ("mx1.victim.test", "rcpt@victim.test")
    assert status.log_line == LOG[4]
    evidence = [i.line for i in items if isinstance(i, Evidence)]
    # The pickup line precedes the message-id line, so it is not known to be ours.
    assert evidence == LOG[1:]


def test_held_process_lines_go_to_the_next_message_of_that_process() -> None:
    log = PostfixLog()
    log.expect(MID, "rcpt@victim.test")
    log.feed(LOG[1])
    other = "Nov 29 07:34:16 sender postfix/smtp[1]: Untrusted TLS connection established"
    assert log.feed(other) == []
    assert log.feed(LOG[3]) == []
    items = log.feed(LOG[4])
    assert [i.line for i in items if isinstance(i, Evidence)] == [LOG[3], LOG[4]]


def test_unknown_messages_and_noise_are_ignored() -> None:
    log = PostfixLog()
    log.expect("<other@sender.test>", "x@elsewhere.test")
    assert log.feed_all(LOG) == []
    assert log.feed("not a postfix line") == []
    assert log.feed("Nov 29 07:34:06 sender postfix/trivial-rewrite[9519]: warning: x") == []


def test_bounced_without_relay_and_forget() -> None:
    log = PostfixLog()
    log.expect(MID, "rcpt@victim.test")
    log.feed(LOG[1])
    (status,) = [i for i in log.feed(
        "Nov 29 07:34:06 sender postfix/error[9520]: 837D2164153: to=<rcpt@victim.test>, "
        "relay=none, delay=0.06, dsn=5.1.2, status=bounced (Host or domain name not found)")
        if isinstance(i, Status)]
    assert (status.status, status.mx, status.reason) == (
        "bounced", "", "5.1.2 Host or domain name not found")
    log.forget()
    assert log.feed_all(LOG) == []


def test_resolver_lines_name_the_domain() -> None:
    log = PostfixLog()
    log.expect(MID, "rcpt@Victim.test")
    hit = "2026-11-29 07:34:16 DEBUG    STS: Lookup PERFORMED: domain = victim.test"
    miss = "2026-11-29 07:34:16 DEBUG    STS: Lookup PERFORMED: domain = notvictim.test"
    sub = "2026-11-29 07:34:16 DEBUG    STS: Lookup PERFORMED: domain = victim.test.example"
    assert [e.line for e in log.feed_resolver(hit)] == [hit]
    assert log.feed_resolver(miss) == []
    assert log.feed_resolver(sub) == []
    log.feed_all(LOG)  # decided: later resolver lines are not about this message
    assert log.feed_resolver(hit) == []
