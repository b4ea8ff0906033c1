"""The ``_smtp._tls`` TXT record of RFC 8460 section 3: parse, format, discover.

The grammar (RFC 8460 3, ABNF of RFC 5234; ``%s`` is case-sensitive)::

    tlsrpt-record     = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
    field-delim       = *WSP ";" *WSP
    tlsrpt-field      = tlsrpt-rua / tlsrpt-extension    ; the rua field is required
    tlsrpt-version    = %s"v=TLSRPTv1"
    tlsrpt-rua        = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
    tlsrpt-uri        = URI   ; RFC 3986; commas, "!" and ";" MUST be percent-encoded
    tlsrpt-extension  = tlsrpt-ext-name "=" tlsrpt-ext-value
    tlsrpt-ext-name   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    tlsrpt-ext-value  = 1*(%x21-3A / %x3C / %x3E-7E)

Only ``mailto:`` and ``https:`` destinations are defined; a URI of another scheme is
grammatical and kept, but ``TlsrptRecord.destinations`` leaves it out. Several ``rua`` fields
are grammatical; their URIs are joined in order. A TXT record of several strings is their
concatenation without spaces (``join_strings``); ``discover`` applies the selection rule:
records that do not begin with the version field are discarded, and anything but exactly
one left means no TLS-RPT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VERSION = "v=TLSRPTv1"
SCHEMES = ("mailto", "https")

_WSP = "[ \t]"
_DELIM = re.compile(rf"{_WSP}*;{_WSP}*")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
# RFC 3986 URI characters (unreserved, sub-delims, gen-delims, pct-encoded) without the
# three RFC 8460 3 says MUST be encoded: "," "!" ";"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~$&'()*+=:@/?#\[\]]|%[0-9A-Fa-f]{2})*")
_URI_SEP = re.compile(rf"{_WSP}*,{_WSP}*")
_VERSION_START = re.compile(rf"^v=TLSRPTv1{_WSP}*;")


class RecordError(ValueError):
    """The text is not a TLS-RPT record (RFC 8460 3); the message says why."""


@dataclass(frozen=True)
class TlsrptRecord:
    rua: tuple[str, ...]
    """Every URI of the ``rua`` field(s), in order."""
    extensions: tuple[tuple[str, str], ...] = ()
    """Unknown ``name=value`` fields, in order (ignored by a reader, RFC 8460 3)."""

    @property
    def destinations(self) -> tuple[str, ...]:
        """The URIs a sender can report to: the ``mailto:`` and ``https:`` ones."""
        return tuple(u for u in self.rua if scheme_of(u) in SCHEMES)


def scheme_of(uri: str) -> str:
    return uri.partition(":")[0].lower()


def join_strings(strings: Iterable[str | bytes]) -> str:
    """A TXT record's strings as one text: concatenated without spaces (RFC 8460 3)."""
    parts = [s.decode("latin-1") if isinstance(s, bytes) else s for s in strings]
    return "".join(parts)


def _uri_problem(uri: str) -> str | None:
    if not _URI.fullmatch(uri):
        bad = sorted({c for c in uri if c in ",!;" or not 0x21 <= ord(c) <= 0x7e})
        if bad:
            return f"{uri!r} is not a URI: {''.join(bad)!r} must be percent-encoded"
        return f"{uri!r} is not a URI (RFC 3986)"
    scheme = scheme_of(uri)
    rest = uri.partition(":")[2]
    if scheme == "https" and not re.match(r"//[^/?#@]+", rest):
        return f"{uri!r}: an https URI needs a host"
    if scheme == "mailto" and not re.fullmatch(r"[^@/?#]+@[^@/?#]+(?:\?.*)?", rest):
        return f"{uri!r}: a mailto URI needs an address"
    return None


def parse(text: str) -> TlsrptRecord:
    """Parse one record (its strings already joined); RecordError when it is not one."""
    if not text.startswith(VERSION):
        raise RecordError(f"does not begin with {VERSION!r}")
    rest = text[len(VERSION):]
    if not rest:
        raise RecordError("has no rua field")
    fields: list[str] = []
    pos = 0
    while pos < len(rest):
        delim = _DELIM.match(rest, pos)
        if delim is None:
            raise RecordError(f"expected ';' at {rest[pos:pos + 20]!r}")
        pos = delim.end()
        if pos == len(rest):
            break  # the optional final delimiter
        end = rest.find(";", pos)
        end = len(rest) if end < 0 else end
        field = rest[pos:end].rstrip(" \t")
        pos = pos + len(field)
        if not field:
            raise RecordError("an empty field")
        fields.append(field)
    if not fields:
        raise RecordError("has no rua field")
    rua: list[str] = []
    seen_rua = False
    extensions: list[tuple[str, str]] = []
    for field in fields:
        if field.startswith("rua="):
            seen_rua = True
            value = field[4:]
            uris = _URI_SEP.split(value)
            for uri in uris:
                problem = _uri_problem(uri)
                if problem:
                    raise RecordError(f"rua: {problem}")
            rua += uris
            continue
        name, eq, value = field.partition("=")
        if not eq or not _EXT_NAME.fullmatch(name):
            raise RecordError(f"{field!r} is not a name=value field")
        if not _EXT_VALUE.fullmatch(value):
            raise RecordError(f"{field!r}: a value of printable characters without '=', "
                              "';' or space")
        extensions.append((name, value))
    if not seen_rua:
        raise RecordError("has no rua field (it is required)")
    return TlsrptRecord(tuple(rua), tuple(extensions))


def format_record(record: TlsrptRecord) -> str:
    """The record as one text: ``v=TLSRPTv1; rua=URI,URI; name=value``."""
    fields = [VERSION, "rua=" + ",".join(record.rua)]
    fields += [f"{name}={value}" for name, value in record.extensions]
    return "; ".join(fields)


def discover(records: Sequence[Sequence[str | bytes]]) -> TlsrptRecord | None:
    """The policy a sender finds in the TXT records at ``_smtp._tls.<domain>`` (each a list
    of strings), or None: records not beginning with the version field are discarded, and if
    not exactly one is left, or it is invalid, the domain has no TLS-RPT (RFC 8460 3)."""
    texts = [join_strings(r) for r in records]
    candidates = [t for t in texts if _VERSION_START.match(t)]
    if len(candidates) != 1:
        return None
    try:
        return parse(candidates[0])
    except RecordError:
        return None
