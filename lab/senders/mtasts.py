"""Client-side MTA-STS logic (RFC 8461), pure: no sockets, no clock of its own.

- ``parse_sts_record`` / ``discover``: the TXT record at ``_mta-sts.<domain>`` (3.1, D1).
- ``parse_policy``: the policy file (3.2, P1).
- ``mx_matches``: an MX host name against one ``mx`` pattern (4.1, M1).
- ``PolicyCache``: policies per policy domain, expiring after ``max_age`` (3.2, 3.3, C1-C3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from lab.senders.profiles import COMPLIANT, Profile

Mode = Literal["enforce", "testing", "none"]

MAX_MAX_AGE = 31557600
"""The largest ``max_age`` a policy may carry (one year, RFC 8461 3.2)."""

# --- the TXT record (RFC 8461 3.1) -------------------------------------------------------

_WSP = "[ \t]"
_SEP = re.compile(f"{_WSP}*;{_WSP}*")
_STS_PREFIX = re.compile(f"v=STSv1{_WSP}*;")
_ID_VALUE = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # printable, no "=", ";" or space


def is_sts_record(txt: str) -> bool:
    """Whether a TXT string is an STS record at all: ``v=STSv1`` then ``;``.

    RFC 8461 3.1 discards records that do not begin with ``v=STSv1;``; the ABNF's separator
    also allows blanks before the ``;`` (erratum 6285), so both spellings count here.
    ``v=STSv10;`` is not an STS record.
    """
    return _STS_PREFIX.match(txt) is not None


def parse_sts_record(txt: str) -> str | None:
    """The policy ``id`` of a valid ``v=STSv1`` record, or None when it is not valid.

    Grammar (3.1): ``v=STSv1`` first, then one or more ``;``-separated fields (blanks around
    ``;`` allowed, one trailing ``;`` allowed); ``id=`` 1 to 32 letters and digits; other
    fields are ``name=value`` extensions and are ignored. A field named ``id`` whose value is
    not a valid id makes the record invalid (a stricter reading of the ABNF, see README).
    """
    if not txt.startswith("v=STSv1"):
        return None
    parts = _SEP.split(txt[len("v=STSv1"):])
    if parts[0] != "" or len(parts) < 2:
        return None  # something glued to the version, or no field at all
    fields = parts[1:]
    if fields[-1] == "":
        fields = fields[:-1]  # one trailing separator
    if not fields:
        return None
    found: str | None = None
    for field in fields:
        name, eq, value = field.partition("=")
        if not eq:
            return None
        if name == "id":
            if not _ID_VALUE.fullmatch(value):
                return None
            found = found or value
        elif not (_EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value)):
            return None
    return found


def discover(records: Sequence[str], profile: Profile = COMPLIANT) -> str | None:
    """The policy id from every TXT string at ``_mta-sts.<domain>``, or None (no policy).

    Records that are not STS records are ignored; zero or several STS records, or one that
    is syntactically invalid, mean no policy (3.1).
    """
    sts = [r for r in records if is_sts_record(r)]
    if profile.first_of_several_txt:
        sts = sts[:1]
    if len(sts) != 1:
        return None
    return parse_sts_record(sts[0])


# --- the policy file (RFC 8461 3.2) -------------------------------------------------------

class PolicyError(ValueError):
    """The policy text is not a valid STSv1 policy."""


@dataclass(frozen=True)
class StsPolicy:
    mode: Mode
    max_age: int
    mx: tuple[str, ...]
    version: str = "STSv1"

    def matches(self, host: str, profile: Profile = COMPLIANT) -> bool:
        """Whether an MX host name matches any of the policy's ``mx`` patterns."""
        return any(mx_matches(pattern, host, profile) for pattern in self.mx)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_MODES: tuple[Mode, ...] = ("enforce", "testing", "none")


def parse_policy(text: str, profile: Profile = COMPLIANT) -> StsPolicy:
    """Parse a policy file; raise ``PolicyError`` when it is not a valid STSv1 policy.

    Lines end in LF or CRLF; each is ``name: value`` (blanks after the colon and at the line
    end allowed); empty lines are skipped. Field names and values are case-sensitive. Only the
    first of a repeated field counts, except ``mx``, which collects every value. Unknown
    fields are ignored.
    """
    first: dict[str, str] = {}
    mx: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        line = line.rstrip(" \t")
        if not line:
            continue
        name, colon, value = line.partition(":")
        value = value.lstrip(" \t")
        if not colon or not _FIELD_NAME.fullmatch(name) or not value:
            raise PolicyError(f"line {number} is not a 'name: value' field: {line[:60]!r}")
        if "\r" in value or any(ord(c) < 0x20 and c != "\t" for c in value):
            raise PolicyError(f"line {number} holds control characters")
        if name == "mx":
            if not _MX_PATTERN.fullmatch(value):
                raise PolicyError(f"line {number}: invalid mx pattern {value!r}")
            mx.append(value)
        elif profile.last_field_wins:
            first[name] = value
        else:
            first.setdefault(name, value)
    version = first.get("version")
    if version != "STSv1":
        raise PolicyError(f"version must be STSv1, got {version!r}")
    mode = first.get("mode")
    if profile.mode_case_insensitive and mode is not None:
        mode = mode.lower()
    if mode not in _MODES:
        raise PolicyError(f"mode must be enforce, testing or none, got {mode!r}")
    raw_age = first.get("max_age")
    if raw_age is None or not _MAX_AGE.fullmatch(raw_age):
        raise PolicyError(f"max_age must be a number of seconds, got {raw_age!r}")
    max_age = int(raw_age)
    if max_age > MAX_MAX_AGE and profile.clamp_max_age:
        max_age = MAX_MAX_AGE
    if max_age > MAX_MAX_AGE:
        raise PolicyError(f"max_age {max_age} exceeds {MAX_MAX_AGE}")
    if mode != "none" and not mx:
        raise PolicyError(f"mode {mode} needs at least one mx pattern")
    return StsPolicy(mode=_mode(mode), max_age=max_age, mx=tuple(mx))


def _mode(value: str) -> Mode:
    for mode in _MODES:
        if mode == value:
            return mode
    raise PolicyError(f"unknown mode {value!r}")


# --- MX matching (RFC 8461 4.1) -----------------------------------------------------------

def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def mx_matches(pattern: str, host: str, profile: Profile = COMPLIANT) -> bool:
    """Whether ``host`` matches one ``mx`` pattern.

    Case-insensitive; a trailing dot is ignored. ``*.example.test`` matches exactly one
    left-most label (``mx1.example.test``), not ``a.b.example.test`` nor ``example.test``.
    """
    pattern, host = _norm(pattern), _norm(host)
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        if profile.wildcard_any_depth:
            return host.endswith(pattern[1:]) and not host.startswith("*")
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and label != "*" and rest == pattern[2:]
    return host == pattern


# --- the policy cache (RFC 8461 3.3, 5.1) ---------------------------------------------------

@dataclass(frozen=True)
class CachedPolicy:
    domain: str
    policy: StsPolicy
    id: str
    fetched_at: float

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.policy.max_age


class PolicyCache:
    """Policies per policy domain (the recipient domain exactly: no parent fallback, S1).

    An entry expires ``max_age`` seconds after it was fetched (C3). ``clock`` is monotonic
    seconds and injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 profile: Profile = COMPLIANT) -> None:
        self._clock = clock
        self._expires = not profile.cache_never_expires
        self._entries: dict[str, CachedPolicy] = {}

    def get(self, domain: str) -> CachedPolicy | None:
        """The unexpired entry for ``domain``, or None (an expired entry is dropped)."""
        key = _norm(domain)
        entry = self._entries.get(key)
        if entry is not None and self._expires and self._clock() >= entry.expires_at:
            del self._entries[key]
            return None
        return entry

    def put(self, domain: str, policy: StsPolicy, policy_id: str) -> CachedPolicy:
        entry = CachedPolicy(_norm(domain), policy, policy_id, self._clock())
        self._entries[entry.domain] = entry
        return entry

    def drop(self, domain: str) -> None:
        self._entries.pop(_norm(domain), None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
