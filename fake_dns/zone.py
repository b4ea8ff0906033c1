"""The zone the fake DNS server answers from: records, failure modes and the AD flag.

A ``Zone`` is plain data plus one pure lookup, ``answer(qname, qtype)``. The server turns an
``Answer`` into a DNS message; attacks transform one zone into another (``copy()`` first).

Values are kept in a normalized presentation format, so two zones that mean the same compare
equal and ``from_text(to_text())`` round-trips:

- ``A`` ``127.1.2.3``; ``AAAA`` ``::1`` (compressed form)
- ``MX`` ``10 mx1.victim.test.``; ``CNAME``/``NS`` ``target.test.`` (targets absolute, with dot)
- ``TXT`` the raw text, one logical string (the server splits it into 255-byte strings)
- ``TLSA`` ``3 1 1 <hex>`` (hex lower-case); ``SOA`` ``mname rname serial refresh retry expire min``
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from dnslib import QTYPE

from fake_dns.errors import ZoneError
from fake_dns.text import format_zone, parse_uint, parse_zone

DEFAULT_TTL = 300
MAX_TTL = 2**31 - 1
MAX_TXT = 60000
"""Bytes of one TXT value (UTF-8), so any answer still fits a 64 KiB TCP message."""
CNAME_DEPTH = 8
"""How many CNAME links the in-zone chase follows before it gives up (SERVFAIL)."""

RECORD_TYPES: tuple[str, ...] = ("A", "AAAA", "MX", "TXT", "CNAME", "TLSA", "NS", "SOA")

_GENERIC_TYPE = re.compile(r"TYPE[0-9]{1,5}")
_LABEL = re.compile(r"\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class Failure(StrEnum):
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    NO_ANSWER = "no-answer"
    """No reply at all, over UDP and TCP."""
    TRUNCATE = "truncate"
    """UDP reply with the TC bit and no answer; TCP answers normally."""
    REFUSED = "refused"


@dataclass(frozen=True)
class ZoneRecord:
    name: str
    rtype: str
    value: str
    ttl: int = DEFAULT_TTL

    def __str__(self) -> str:
        return f"{self.rtype} {self.value}"


@dataclass(frozen=True)
class Answer:
    """What the zone says about one question. The server applies ``failure`` per transport."""

    rcode: str
    records: tuple[ZoneRecord, ...] = ()
    authority: tuple[ZoneRecord, ...] = ()
    failure: Failure | None = None
    ad: bool = False
    aa: bool = True


def normalize_name(name: str) -> str:
    """Lower-case, no trailing dot; raises ZoneError for a name DNS cannot carry."""
    if not isinstance(name, str):
        raise ZoneError(f"name must be a string, not {type(name).__name__}")
    if not name.isascii():
        raise ZoneError(f"name must be ASCII: {name[:40]!r}")
    norm = name.lower()
    if norm.endswith("."):
        norm = norm[:-1]
    if not norm:
        raise ZoneError("empty name (the root is not supported)")
    if len(norm) > 253:
        raise ZoneError(f"name longer than 253 characters: {name[:40]}...")
    for label in norm.split("."):
        if not _LABEL.fullmatch(label):
            raise ZoneError(f"bad label {label!r} in name {name!r}")
    return norm


def normalize_type(rtype: str) -> str:
    """Any type dnslib knows, or ``TYPEnnn`` (for queries and failures), upper-case."""
    if not isinstance(rtype, str):
        raise ZoneError(f"type must be a string, not {type(rtype).__name__}")
    upper = rtype.upper()
    if upper not in QTYPE.reverse and not _GENERIC_TYPE.fullmatch(upper):
        raise ZoneError(f"unknown record type {rtype!r}")
    return upper


def _target(value: str) -> str:
    return normalize_name(value) + "."


def _u16(text: str, what: str) -> int:
    return parse_uint(text, 65535, what)


def _u8(text: str, what: str) -> int:
    return parse_uint(text, 255, what)


def _u32(text: str, what: str) -> int:
    return parse_uint(text, 2**32 - 1, what)


def normalize_value(rtype: str, value: str) -> str:
    """The canonical presentation of ``value`` for ``rtype``; raises ZoneError if invalid."""
    if not isinstance(value, str):
        raise ZoneError(f"{rtype} value must be a string, not {type(value).__name__}")
    if rtype == "TXT":
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ZoneError("TXT value is not encodable as UTF-8") from None
        if size > MAX_TXT:
            raise ZoneError(f"TXT value of {size} bytes is over the {MAX_TXT}-byte limit")
        return value
    parts = value.split()
    try:
        if rtype == "A" and len(parts) == 1:
            return str(ipaddress.IPv4Address(parts[0]))
        if rtype == "AAAA" and len(parts) == 1:
            addr = ipaddress.IPv6Address(parts[0])
            if addr.scope_id is None:
                return addr.compressed
    except ValueError as exc:
        raise ZoneError(f"bad {rtype} address {value!r}: {exc}") from None
    if rtype in ("CNAME", "NS") and len(parts) == 1:
        return _target(parts[0])
    if rtype == "MX" and len(parts) == 2:
        return f"{_u16(parts[0], 'MX preference')} {_target(parts[1])}"
    if rtype == "TLSA" and len(parts) >= 4:
        usage, selector, mtype = (_u8(p, "TLSA field") for p in parts[:3])
        data = "".join(parts[3:]).lower()
        if len(data) % 2 or not re.fullmatch(r"[0-9a-f]+", data):
            raise ZoneError(f"TLSA data must be an even number of hex digits: {value!r}")
        return f"{usage} {selector} {mtype} {data}"
    if rtype == "SOA" and len(parts) == 7:
        times = " ".join(str(_u32(p, "SOA timer")) for p in parts[2:])
        return f"{_target(parts[0])} {_target(parts[1])} {times}"
    if rtype not in RECORD_TYPES:
        raise ZoneError(f"unsupported record type {rtype!r} (supported: {', '.join(RECORD_TYPES)})")
    raise ZoneError(f"bad {rtype} value {value!r}")


def _ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise ZoneError(f"TTL must be an integer 0-{MAX_TTL}, not {ttl!r}")
    return ttl


class Zone:
    """One authoritative zone holding every name of a world. Not thread-safe."""

    def __init__(self) -> None:
        self._records: list[ZoneRecord] = []
        self._failures: dict[tuple[str, str | None], Failure] = {}
        self._authenticated: set[str] = set()

    # --- changing the zone -------------------------------------------------------------

    def add(self, name: str, rtype: str, value: str, ttl: int = DEFAULT_TTL) -> ZoneRecord:
        """Add a record (an identical name/type/value replaces the old one's TTL)."""
        rtype_n = normalize_type(rtype)
        if rtype_n not in RECORD_TYPES:
            raise ZoneError(f"unsupported record type {rtype!r} (supported: "
                            f"{', '.join(RECORD_TYPES)})")
        record = ZoneRecord(normalize_name(name), rtype_n, normalize_value(rtype_n, value),
                            _ttl(ttl))
        for i, old in enumerate(self._records):
            if (old.name, old.rtype, old.value) == (record.name, record.rtype, record.value):
                self._records[i] = record
                return record
        self._records.append(record)
        return record

    def remove(self, name: str, rtype: str | None = None) -> int:
        """Remove every record of ``name`` (or only those of ``rtype``); returns how many."""
        norm = normalize_name(name)
        rtype_n = normalize_type(rtype) if rtype is not None else None
        keep = [r for r in self._records
                if not (r.name == norm and (rtype_n is None or r.rtype == rtype_n))]
        removed = len(self._records) - len(keep)
        self._records = keep
        return removed

    def fail(self, name: str, failure: Failure | str, rtype: str | None = None) -> None:
        """Make queries for ``name`` (all types, or only ``rtype``) fail this way."""
        try:
            how = Failure(failure)
        except ValueError:
            choices = ", ".join(f.value for f in Failure)
            raise ZoneError(f"unknown failure {failure!r} (one of: {choices})") from None
        key = (normalize_name(name), normalize_type(rtype) if rtype is not None else None)
        self._failures[key] = how

    def clear_failure(self, name: str, rtype: str | None = None) -> None:
        """Forget the failures of ``name``: all of them, or only the one for ``rtype``."""
        norm = normalize_name(name)
        rtype_n = normalize_type(rtype) if rtype is not None else None
        for key in list(self._failures):
            if key[0] == norm and (rtype_n is None or key[1] == rtype_n):
                del self._failures[key]

    def authenticate(self, name: str, authenticated: bool = True) -> None:
        """Answers for ``name`` carry the AD bit (or no longer do)."""
        norm = normalize_name(name)
        if authenticated:
            self._authenticated.add(norm)
        else:
            self._authenticated.discard(norm)

    # --- reading the zone --------------------------------------------------------------

    def records(self, name: str | None = None, rtype: str | None = None) -> list[ZoneRecord]:
        """The records in insertion order, optionally only those of a name and/or type."""
        norm = normalize_name(name) if name is not None else None
        rtype_n = normalize_type(rtype) if rtype is not None else None
        return [r for r in self._records
                if (norm is None or r.name == norm) and (rtype_n is None or r.rtype == rtype_n)]

    def failures(self) -> Mapping[tuple[str, str | None], Failure]:
        """``(name, type or None) -> Failure`` (a copy)."""
        return dict(self._failures)

    def authenticated(self) -> frozenset[str]:
        return frozenset(self._authenticated)

    def with_ttl(self, ttl: int) -> Zone:
        """A copy whose every record has this TTL (failures and AD marks kept)."""
        out = self.copy()
        out._records = [dataclasses.replace(r, ttl=ttl) for r in out._records]
        return out

    def copy(self) -> Zone:
        return _copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Zone):
            return NotImplemented
        return (set(self._records) == set(other._records)
                and self._failures == other._failures
                and self._authenticated == other._authenticated)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"Zone({len(self._records)} records, {len(self._failures)} failures, "
                f"{len(self._authenticated)} authenticated)")

    # --- the lookup the server uses ----------------------------------------------------

    def exists(self, name: str) -> bool:
        """True if ``name`` owns records or is an empty non-terminal (an ancestor of one)."""
        norm = normalize_name(name)
        suffix = "." + norm
        return any(r.name == norm or r.name.endswith(suffix) for r in self._records)

    def failure_for(self, name: str, rtype: str) -> Failure | None:
        """The per-type failure wins over the name-wide one."""
        key = normalize_name(name)
        typed = self._failures.get((key, normalize_type(rtype)))
        return typed if typed is not None else self._failures.get((key, None))

    def answer(self, qname: str, qtype: str) -> Answer:
        """Pure lookup: what the server should say, failures included.

        A CNAME at a name answers every other type with the CNAME plus the in-zone chase of
        its target (loop-safe, at most ``CNAME_DEPTH`` links). Along the chase the first
        failure met applies: nxdomain/servfail/refused end the answer there; no-answer and
        truncate are left to the server (per transport), carried with the normal answer.
        ``ad`` is set only if every name along the chase is authenticated.
        """
        name = normalize_name(qname)
        rtype = normalize_type(qtype)
        chain: list[ZoneRecord] = []
        ad = True
        pending: Failure | None = None
        while True:
            ad = ad and name in self._authenticated
            failure = self.failure_for(name, rtype)
            if failure is Failure.NXDOMAIN:
                return Answer("NXDOMAIN", tuple(chain), self._soa_for(name), failure, ad)
            if failure in (Failure.SERVFAIL, Failure.REFUSED):
                assert failure is not None
                return Answer(failure.name, (), (), failure, False, aa=False)
            pending = pending or failure
            here = [r for r in self._records if r.name == name]
            cnames = [r for r in here if r.rtype == "CNAME"]
            if cnames and rtype not in ("CNAME", "ANY"):
                chain.append(cnames[0])
                name = cnames[0].value.rstrip(".")
                if len(chain) > CNAME_DEPTH or any(r.name == name for r in chain):
                    return Answer("SERVFAIL", (), (), pending, False, aa=False)
                continue
            matched = [r for r in here if rtype == "ANY" or r.rtype == rtype]
            if matched:
                return Answer("NOERROR", (*chain, *matched), (), pending, ad)
            rcode = "NOERROR" if self.exists(name) else "NXDOMAIN"
            return Answer(rcode, tuple(chain), self._soa_for(name), pending, ad)

    def _soa_for(self, name: str) -> tuple[ZoneRecord, ...]:
        """The SOA of the closest enclosing name that has one (for negative answers)."""
        labels = name.split(".")
        for i in range(len(labels)):
            owner = ".".join(labels[i:])
            soa = [r for r in self._records if r.name == owner and r.rtype == "SOA"]
            if soa:
                return (soa[0],)
        return ()

    # --- text format -------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str) -> Zone:
        """Parse the master-file subset described in ``fake_dns.text``."""
        zone = cls()
        for item in parse_zone(text):
            try:
                if item.kind == "record":
                    zone.add(item.name, item.rtype or "", item.value, item.ttl)
                elif item.kind == "fail":
                    zone.fail(item.name, item.value, item.rtype)
                else:
                    zone.authenticate(item.name)
            except ZoneError as exc:
                raise ZoneError(exc.message, item.line) from None
        return zone

    def to_text(self) -> str:
        return format_zone(
            self._records,
            [(name, rtype, f.value) for (name, rtype), f in self._failures.items()],
            sorted(self._authenticated),
        )

    @classmethod
    def from_records(cls, records: Iterable[ZoneRecord]) -> Zone:
        zone = cls()
        for r in records:
            zone.add(r.name, r.rtype, r.value, r.ttl)
        return zone
