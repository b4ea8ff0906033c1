"""The zone file format: a BIND master-file subset plus two lab directives.

One record a line::

    ; comment
    $ORIGIN victim.test.          ; optional: names without a trailing dot are relative to it
    $TTL 300                      ; optional: the TTL of records that give none
    victim.test.  300 IN MX 10 mx1.victim.test.
    _mta-sts      IN TXT "v=STSv1; id=20240101;"
                  TXT "a second record for the same owner (leading blank = same owner)"
    $FAIL mta-sts.victim.test. servfail        ; every type
    $FAIL victim.test. truncate MX             ; only MX queries
    $AD _25._tcp.mx1.victim.test.

Without ``$ORIGIN`` every name is absolute, with or without its trailing dot. ``@`` is the
origin. TXT values are quoted strings with ``\\"``, ``\\\\`` and ``\\DDD`` (a decimal code
point 0-255) escapes; several strings on one line are joined into one logical value. Not
supported: parentheses (multi-line records), ``$INCLUDE``, TTL units (``1h``), classes other
than IN. This module only tokenizes; ``Zone`` validates names and values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from fake_dns.errors import ZoneError

_BLANK = " \t"
_UINT = re.compile(r"[0-9]{1,10}")
# Where names sit inside each type's value, so relative ones can be qualified.
_NAME_FIELDS: dict[str, tuple[int, ...]] = {"MX": (1,), "CNAME": (0,), "NS": (0,), "SOA": (0, 1)}


@dataclass(frozen=True)
class Item:
    """One parsed line: a record, a ``$FAIL`` or an ``$AD``."""

    kind: Literal["record", "fail", "ad"]
    line: int
    name: str
    rtype: str | None = None
    value: str = ""
    ttl: int = 300


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool


class RecordLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def rtype(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def ttl(self) -> int: ...


def parse_uint(text: str, limit: int, what: str) -> int:
    """An ASCII decimal integer 0..limit, or ZoneError."""
    if not _UINT.fullmatch(text) or int(text) > limit:
        raise ZoneError(f"{what} must be an integer 0-{limit}, not {text[:40]!r}")
    return int(text)


def tokenize(line: str) -> list[Token]:
    """Split one line into tokens; ``;`` starts a comment outside quotes."""
    tokens: list[Token] = []
    buf: list[str] = []
    in_word = quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            if i + 1 >= len(line):
                raise ZoneError("backslash at the end of the line")
            digits = line[i + 1:i + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit():
                if int(digits) > 255:
                    raise ZoneError(f"escape \\{digits} is above 255")
                buf.append(chr(int(digits)))
                i += 4
            else:
                buf.append(line[i + 1])
                i += 2
            in_word = in_word or not quoted
            continue
        if quoted:
            if ch == '"':
                tokens.append(Token("".join(buf), True))
                buf, quoted = [], False
                if i + 1 < len(line) and line[i + 1] not in _BLANK + ";":
                    raise ZoneError("a closing quote must be followed by a blank")
            else:
                buf.append(ch)
        elif ch == '"':
            if in_word:
                raise ZoneError("a quote inside a word")
            quoted = True
        elif ch in _BLANK or ch == ";":
            if in_word:
                tokens.append(Token("".join(buf), False))
                buf, in_word = [], False
            if ch == ";":
                break
        elif ch in "()":
            raise ZoneError("parentheses (multi-line records) are not supported")
        else:
            buf.append(ch)
            in_word = True
        i += 1
    if quoted:
        raise ZoneError("unterminated quoted string")
    if in_word:
        tokens.append(Token("".join(buf), False))
    return tokens


class _Parser:
    def __init__(self) -> None:
        self.origin: str | None = None
        self.default_ttl = 300
        self.owner: str | None = None

    def qualify(self, name: str) -> str:
        if name == "@":
            if self.origin is None:
                raise ZoneError("'@' needs a $ORIGIN")
            return self.origin
        if name.endswith(".") or self.origin is None:
            return name
        return f"{name}.{self.origin}"

    def words(self, tokens: list[Token], what: str) -> list[str]:
        for token in tokens:
            if token.quoted:
                raise ZoneError(f"quoted string not allowed in {what}")
        return [t.text for t in tokens]

    def directive(self, lineno: int, tokens: list[Token]) -> Item | None:
        head, args = tokens[0].text.upper(), self.words(tokens[1:], tokens[0].text)
        if head == "$ORIGIN" and len(args) == 1:
            self.origin = args[0] if args[0].endswith(".") else args[0] + "."
            return None
        if head == "$TTL" and len(args) == 1:
            self.default_ttl = parse_uint(args[0], 2**31 - 1, "$TTL")
            return None
        if head == "$FAIL" and len(args) in (2, 3):
            rtype = args[2].upper() if len(args) == 3 else None
            return Item("fail", lineno, self.qualify(args[0]), rtype, args[1].lower())
        if head == "$AD" and len(args) == 1:
            return Item("ad", lineno, self.qualify(args[0]))
        usage = {"$ORIGIN": "$ORIGIN name", "$TTL": "$TTL seconds",
                 "$FAIL": "$FAIL name failure [TYPE]", "$AD": "$AD name"}
        if head in usage:
            raise ZoneError(f"usage: {usage[head]}")
        raise ZoneError(f"unknown directive {tokens[0].text!r}")

    def record(self, lineno: int, tokens: list[Token], continued: bool) -> Item:
        if continued:
            if self.owner is None:
                raise ZoneError("a line starting with a blank needs an owner on an earlier line")
            owner, rest = self.owner, tokens
        else:
            owner = self.qualify(self.words(tokens[:1], "a name")[0])
            rest = tokens[1:]
        self.owner = owner
        ttl: int | None = None
        seen_class = False
        while rest and not rest[0].quoted:
            word = rest[0].text
            if ttl is None and word[:1].isdigit():
                ttl = parse_uint(word, 2**31 - 1, "TTL")
            elif not seen_class and word.upper() in ("IN", "CH", "CS", "HS"):
                if word.upper() != "IN":
                    raise ZoneError(f"only class IN is supported, not {word}")
                seen_class = True
            else:
                break
            rest = rest[1:]
        if not rest:
            raise ZoneError("missing record type")
        rtype = self.words(rest[:1], "the record type")[0].upper()
        data = rest[1:]
        if not data:
            raise ZoneError(f"missing {rtype} value")
        if rtype == "TXT":
            value = "".join(t.text for t in data)
        else:
            parts = self.words(data, f"a {rtype} value")
            for i in _NAME_FIELDS.get(rtype, ()):
                if i < len(parts):
                    parts[i] = self.qualify(parts[i])
            value = " ".join(parts)
        return Item("record", lineno, owner, rtype, value,
                    self.default_ttl if ttl is None else ttl)


def parse_zone(text: str) -> Iterator[Item]:
    """Yield the items of a zone file; ZoneError carries the line number."""
    if not isinstance(text, str):
        raise ZoneError("zone text must be a string")
    parser = _Parser()
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        try:
            tokens = tokenize(line)
            if not tokens:
                continue
            continued = line[:1] in _BLANK
            if not continued and not tokens[0].quoted and tokens[0].text.startswith("$"):
                item = parser.directive(lineno, tokens)
                if item is not None:
                    yield item
                continue
            yield parser.record(lineno, tokens, continued)
        except ZoneError as exc:
            raise ZoneError(exc.message, lineno) from None


def quote(value: str) -> str:
    """A TXT value as one quoted string; control characters as ``\\DDD``."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_zone(records: Iterable[RecordLike],
                failures: Iterable[tuple[str, str | None, str]],
                authenticated: Iterable[str]) -> str:
    """The text ``parse_zone`` reads back to the same zone; every name absolute."""
    lines = ["; fake_dns zone"]
    for r in records:
        value = quote(r.value) if r.rtype == "TXT" else r.value
        lines.append(f"{r.name}. {r.ttl} IN {r.rtype} {value}")
    for name, rtype, failure in failures:
        lines.append(f"$FAIL {name}. {failure}" + (f" {rtype}" if rtype else ""))
    lines.extend(f"$AD {name}." for name in authenticated)
    return "\n".join(lines) + "\n"
