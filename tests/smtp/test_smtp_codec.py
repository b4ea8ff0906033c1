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


def replies_in(parser: ReplyParser) -> list[Reply]:
    out = []
    while (reply := parser.next_reply()) is not None:
        out.append(reply)
    return out


def commands_in(parser: CommandParser) -> list[Item]:
    out: list[Item] = []
    while (command := parser.next_command()) is not None:
        out.append(command)
    return out


def feed_replies(chunks: list[bytes]) -> tuple[list[Reply], bool]:
    parser, out = ReplyParser(), []
    for chunk in chunks:
        parser.feed(chunk)
        try:
            while (reply := parser.next_reply()) is not None:
                out.append(reply)
        except SmtpSyntaxError:
            return out, True
    return out, False


def feed_commands(chunks: list[bytes]) -> tuple[list[Item], bool]:
    """Commands only (as if the server refused DATA and STARTTLS)."""
    parser, out = CommandParser(), []
    for chunk in chunks:
        parser.feed(chunk)
        try:
            while (command := parser.next_command()) is not None:
                out.append(command)
        except SmtpSyntaxError:
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
    parser.feed(b"250-mx1.victim.test\n250-PIPEL")
    assert replies_in(parser) == []
    assert parser.pending() == b"250-mx1.victim.test\n250-PIPEL"
    parser.feed(b"INING\r\n250 STARTTLS\r\n")
    (reply,) = replies_in(parser)
    assert reply == Reply(250, ("mx1.victim.test", "PIPELINING", "STARTTLS"))
    assert reply.encode() == b"250-mx1.victim.test\n250-PIPELINING\r\n250 STARTTLS\r\n"
    assert reply.has_keyword("STARTTLS")
    parser.feed(b"354\r\n")
    assert replies_in(parser) == [Reply(354, ("",))]


@pytest.mark.parametrize("bad", [b"hello\r\n", b"25 x\r\n", b"250x\r\n", b"650 no\r\n",
                                 b"250-a\r\n251 b\r\n"])
def test_malformed_reply_raises_after_the_earlier_replies(bad: bytes) -> None:
    parser = ReplyParser()
    parser.feed(b"220 ok\r\n" + bad)
    assert parser.next_reply() == Reply(220, ("ok",))
    with pytest.raises(SmtpSyntaxError):
        parser.next_reply()
    parser.feed(b"250 fine\r\n")
    with pytest.raises(SmtpSyntaxError):  # broken for good
        parser.next_reply()


def test_line_limits() -> None:
    parser = CommandParser(max_line=10)
    parser.feed(b"NOOP 12345\r\n")
    assert parser.next_command() == Command("NOOP", "12345", b"NOOP 12345\r\n")
    parser.feed(b"NOOP 1234567")
    with pytest.raises(SmtpSyntaxError, match="longer than 10"):
        parser.next_command()
    replies = ReplyParser(max_line=10)
    replies.feed(b"250 " + b"x" * 20)
    with pytest.raises(SmtpSyntaxError, match="longer than"):
        replies.next_reply()
    replies = ReplyParser(max_lines=3)
    replies.feed(b"250-a\r\n" * 4)
    with pytest.raises(SmtpSyntaxError, match="lines"):
        replies.next_reply()


def test_message_content_is_taken_whole() -> None:
    parser = CommandParser()
    body = b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    parser.feed(b"DATA\r\n" + body[:9])
    assert parser.next_command() == Command("DATA", "", b"DATA\r\n")
    assert parser.next_message() is None and parser.pending() == body[:9]
    parser.feed(body[9:] + b"QUIT\r\n")
    assert parser.next_message() == MessageData(body)
    assert commands_in(parser) == [Command("QUIT", "", b"QUIT\r\n")]
    assert MessageData(body).content() == b"Subject: x\r\n\r\n.dot\r\n"
    assert MessageData(b".\r\n").content() == b""


def test_discard_pending_takes_the_trailing_plaintext() -> None:
    parser = CommandParser()
    parser.feed(b"STARTTLS\r\nMAIL FROM:<a@x.test>\r\n")
    assert parser.next_command() == Command("STARTTLS", "", b"STARTTLS\r\n")
    assert parser.discard_pending() == b"MAIL FROM:<a@x.test>\r\n"
    assert parser.pending() == b""


def test_message_size_limit() -> None:
    parser = CommandParser(max_message=20)
    parser.feed(b"x" * 30 + b"\r\n.\r\n")
    with pytest.raises(SmtpSyntaxError, match="message longer"):
        parser.next_message()
    unterminated = CommandParser(max_message=20)
    unterminated.feed(b"x" * 25)
    with pytest.raises(SmtpSyntaxError, match="message longer"):
        unterminated.next_message()
