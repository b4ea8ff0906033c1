"""What a sending MTA owes the recipient: the checklist ids scenarios declare in ``covers``.

From RFC 8461 (MTA-STS), RFC 3207 (STARTTLS) and RFC 7672 (DANE). A test keeps every id
covered by at least one scenario (X1, DANE, excepted for now).
"""

from __future__ import annotations

from typing import NamedTuple


class Obligation(NamedTuple):
    id: str
    section: str
    level: str
    text: str


CHECKLIST: tuple[Obligation, ...] = (
    Obligation("D1", "RFC 8461 3.1", "must", "policy discovery: exactly one TXT record at "
               "_mta-sts.<domain> starting with v=STSv1 and a valid id"),
    Obligation("D2", "RFC 8461 3.1", "must", "the TXT name may be a CNAME chain"),
    Obligation("P1", "RFC 8461 3.2", "must", "policy fields: version, mode, max_age, mx; "
               "invalid policy means no policy; the first of a repeated field counts"),
    Obligation("P2", "RFC 8461 3.2", "should", "the policy's media type is text/plain"),
    Obligation("F1", "RFC 8461 3.3", "must", "the policy host's certificate is valid for "
               "mta-sts.<domain>, trusted and in date"),
    Obligation("F2", "RFC 8461 3.3", "must", "only HTTP 200 counts; redirects are not "
               "followed; HTTP caching is not used"),
    Obligation("F3", "RFC 8461 3.3", "may", "the fetch may be bounded in time and size"),
    Obligation("C1", "RFC 8461 3.3, 5.1", "must", "a valid cached policy applies when no "
               "live one can be had; with nothing cached, no policy"),
    Obligation("C2", "RFC 8461 3.3, 5.1", "must", "a new id means fetch the new policy; the "
               "same id keeps the cached one; a failed fetch keeps the old"),
    Obligation("C3", "RFC 8461 3.2", "must", "a cached policy expires after max_age"),
    Obligation("S1", "RFC 8461 3.4", "must", "the policy domain is the recipient domain; "
               "a subdomain never falls back to its parent's policy"),
    Obligation("M1", "RFC 8461 4.1", "must", "each MX must match an mx pattern; *. matches "
               "exactly one left-most label"),
    Obligation("M2", "RFC 8461 4.2", "must", "the MX certificate chains to a trusted root, "
               "is in date and names the MX host"),
    Obligation("A1", "RFC 8461 5", "must", "enforce: never deliver to an MX that fails M1, "
               "M2 or offers no STARTTLS; testing and none deliver"),
    Obligation("A2", "RFC 8461 5.1", "must", "failures under enforce are temporary: defer, "
               "never bounce"),
    Obligation("A3", "RFC 8461 8.4", "must", "an MX that fails the policy is skipped; the "
               "next MX is tried"),
    Obligation("T1", "RFC 8461 7.1", "must", "SNI names the MX host"),
    Obligation("T2", "RFC 8461 7.2", "must", "TLS 1.2 or newer"),
    Obligation("X1", "RFC 8461 2", "must", "MTA-STS never overrides a failing DANE check"),
    Obligation("I1", "RFC 3207 4.2", "must", "discard everything learned before TLS; "
               "plaintext injected before the handshake is not read as protected replies"),
)

IDS: frozenset[str] = frozenset(o.id for o in CHECKLIST)
NOT_YET_COVERED: frozenset[str] = frozenset({"X1"})
