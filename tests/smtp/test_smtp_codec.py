"""The SMTP parsers: round trips, chunking invariance, arbitrary bytes, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.smtp.codec import (
    CommandParser,
    Item,
    MessageData,
    ReplyParser,
    SmtpSyntaxError,
)
from lab.smtp.types import Command, Reply

text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
    str.rstrip)
utf8_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                    max_size=40).map(str.rstrip)
replies = st.builds(Reply, st.integers(200, 599), st.lists(utf8_text, min_size=1,
                                                           max_size=6).map(tuple))
verbs = st.sampled_from(["EHLO", "HELO", "MAIL", "RCPT", "RSET", "NOOP", "QUIT", "VRFY", "X-Y"])
commands = st.builds(Command, verbs, text.filter(lambda s: not s.startswith(" ")))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def feed_replies(chunks: list[bytes]) -> tuple[list[Reply], bool]:
    parser, out = ReplyParser(), []
    for chunk in chunks:
        try:
            out += parser.feed(chunk)
        except SmtpSyntaxError as exc:
            out += [r for r in exc.items if isinstance(r, Reply)]
            return out, True
    return out, False


def feed_commands(chunks: list[bytes]) -> tuple[list[Item], bool]:
    parser, out = CommandParser(), []
    for chunk in chunks:
        try:
            out += parser.feed(chunk)
            while parser.held:  # act as a server that refuses DATA and STARTTLS
                out += parser.resume()
        except SmtpSyntaxError as exc:
            out += [i for i in exc.items if isinstance(i, Command | MessageData)]
            return out, True
    return out, False


@given(st.lists(replies, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_reply_round_trip_in_any_chunks(items: list[Reply], cuts: list[int]) -> None:
    data = b"".join(r.encode() for r in items)
    parsed, failed = feed_replies(split(data, cuts))
    assert not failed
    assert parsed == items
    assert b"".join(r.encode() for r in parsed) == data


@given(st.lists(commands, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_command_round_trip_in_any_chunks(items: list[Command], cuts: list[int]) -> None:
    data = b"".join(c.encode() for c in items)
    parsed, failed = feed_commands(split(data, cuts))
    assert not failed
    assert [(c.verb, c.arg) for c in parsed if isinstance(c, Command)] == \
        [(c.verb, c.arg) for c in items]
    assert b"".join(c.encode() for c in parsed if isinstance(c, Command)) == data


@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=8))
def test_arbitrary_bytes_parse_the_same_in_any_chunks(data: bytes, cuts: list[int]) -> None:
    assert feed_replies(split(data, cuts)) == feed_replies([data])
    assert feed_commands(split(data, cuts)) == feed_commands([data])


@given(st.binary(max_size=300))
def test_arbitrary_lines_are_relayed_byte_for_byte(data: bytes) -> None:
    parsed, failed = feed_commands([data])
    assert not failed
    raw = b"".join(c.raw for c in parsed if isinstance(c, Command))
    assert data.startswith(raw)


def test_multiline_reply_with_bare_lf_and_partial_lines() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-mx1.victim.test\n250-PIPEL") == []
    assert parser.pending() == b"250-mx1.victim.test\n250-PIPEL"
    (reply,) = parser.feed(b"INING\r\n250 STARTTLS\r\n")
    assert reply == Reply(250, ("mx1.victim.test", "PIPELINING", "STARTTLS"))
    assert reply.encode() == b"250-mx1.victim.test\n250-PIPELINING\r\n250 STARTTLS\r\n"
    assert reply.has_keyword("STARTTLS")
    assert parser.feed(b"354\r\n") == [Reply(354, ("",))]


@pytest.mark.parametrize("bad", [b"hello\r\n", b"25 x\r\n", b"250x\r\n", b"650 no\r\n",
                                 b"250-a\r\n251 b\r\n"])
def test_malformed_reply_raises_with_earlier_replies(bad: bytes) -> None:
    parser = ReplyParser()
    with pytest.raises(SmtpSyntaxError) as info:
        parser.feed(b"220 ok\r\n" + bad)
    assert info.value.items == [Reply(220, ("ok",))]
    with pytest.raises(SmtpSyntaxError):
        parser.feed(b"250 fine\r\n")


def test_line_limits() -> None:
    parser = CommandParser(max_line=10)
    assert parser.feed(b"NOOP 12345\r\n") == [Command("NOOP", "12345", b"NOOP 12345\r\n")]
    with pytest.raises(SmtpSyntaxError, match="longer than 10"):
        parser.feed(b"NOOP 1234567")
    with pytest.raises(SmtpSyntaxError, match="longer than"):
        ReplyParser(max_line=10).feed(b"250 " + b"x" * 20)
    with pytest.raises(SmtpSyntaxError, match="lines"):
        ReplyParser(max_lines=3).feed(b"250-a\r\n" * 4)


def test_data_mode_waits_for_354_and_takes_the_content_whole() -> None:
    parser = CommandParser()
    body = b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    items = parser.feed(b"DATA\r\n" + body[:9])
    assert [i.verb for i in items if isinstance(i, Command)] == ["DATA"]
    assert parser.held and parser.pending() == body[:9]
    assert parser.start_data() == []
    assert parser.feed(body[9:] + b"QUIT\r\n") == [MessageData(body), Command("QUIT", "",
                                                                            b"QUIT\r\n")]
    assert MessageData(body).content() == b"Subject: x\r\n\r\n.dot\r\n"
    assert MessageData(b".\r\n").content() == b""


def test_data_refused_resumes_commands() -> None:
    parser = CommandParser()
    parser.feed(b"DATA\r\nRSET\r\n")
    assert parser.resume() == [Command("RSET", "", b"RSET\r\n")]


def test_starttls_holds_trailing_plaintext() -> None:
    parser = CommandParser()
    items = parser.feed(b"STARTTLS\r\nMAIL FROM:<a@x.test>\r\n")
    assert items == [Command("STARTTLS", "", b"STARTTLS\r\n")]
    assert parser.discard_pending() == b"MAIL FROM:<a@x.test>\r\n"
    assert parser.pending() == b""


def test_message_size_limit() -> None:
    parser = CommandParser(max_message=20)
    parser.feed(b"DATA\r\n")
    parser.start_data()
    with pytest.raises(SmtpSyntaxError, match="message longer"):
        parser.feed(b"x" * 30 + b"\r\n.\r\n")
