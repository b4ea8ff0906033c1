"""What a sending MTA owes the recipient: the checklist ids scenarios declare in ``covers``.

From RFC 8461 (MTA-STS), RFC 3207 (STARTTLS), RFC 8996 (TLS 1.0/1.1), RFC 7672 (DANE) and
RFC 8460 (TLS-RPT). The level is the RFC's own capitalised keyword for the obligation; where
an id mixes two ("must (keep) / may (refetch)"), each scenario grades its phase at the level
of what that phase tests. A test keeps every id covered by at least one scenario, except the
ids in ``NOT_YET_COVERED`` (with the reason there).
"""

from __future__ import annotations

from typing import NamedTuple


class Obligation(NamedTuple):
    id: str
    section: str
    level: str
    text: str


CHECKLIST: tuple[Obligation, ...] = (
    Obligation("D1", "RFC 8461 3.1", "must", "one TXT record at _mta-sts.<domain> starting "
               "v=STSv1 with an sts-id of 1-32 letters and digits; zero, several or invalid "
               "STS records mean no live policy; extra fields are allowed"),
    Obligation("D2", "RFC 8461 3.1", "must", "the TXT name may be a CNAME chain"),
    Obligation("D3", "RFC 8461 3.1", "must", "a TXT record of several strings is read as "
               "their concatenation, without spaces"),
    Obligation("P1", "RFC 8461 3.2", "must", "policy fields: version STSv1, mode exactly "
               "enforce, testing or none, max_age digits, mx unless mode none; invalid policy "
               "means no policy; the first of a repeated field counts; a max_age over the "
               "maximum may be clamped or refused"),
    Obligation("P2", "RFC 8461 3.2", "should", "the policy's media type is text/plain"),
    Obligation("F1", "RFC 8461 3.3", "must", "the policy host's certificate is valid for "
               "mta-sts.<domain> (SAN), chains to a trusted root and is in date"),
    Obligation("F2", "RFC 8461 3.3", "must", "only HTTP 200 counts; redirects are not "
               "followed; HTTP caching is not used"),
    Obligation("F3", "RFC 8461 3.3", "may", "the fetch may be bounded in time and size"),
    Obligation("F4", "RFC 8461 7.1", "must", "SNI on the policy fetch names "
               "mta-sts.<domain>"),
    Obligation("C1", "RFC 8461 3.3, 5.1", "must", "a valid cached policy applies when no "
               "live one can be had; a valid TXT with no fetchable policy and nothing cached "
               "means no policy"),
    Obligation("C2", "RFC 8461 3.3, 5.1", "must", "a failed fetch of a new policy keeps the "
               "old one (MUST); refetching on a new id or on every message is allowed, not "
               "required (MAY)"),
    Obligation("C3", "RFC 8461 3.2, 3.3", "must", "a cached policy expires after max_age; an "
               "expired cache with a failed fetch means no policy"),
    Obligation("C4", "RFC 8461 3.3, 10.2", "should", "refresh the cached policy "
               "proactively, before it expires"),
    Obligation("S1", "RFC 8461 3.4", "must", "the policy domain is the recipient domain; "
               "a subdomain never falls back to its parent's policy; a smart host's own "
               "domain is the policy domain"),
    Obligation("M1", "RFC 8461 4.1", "must", "each MX must match an mx pattern; *. matches "
               "exactly one left-most label; case-insensitive"),
    Obligation("M2", "RFC 8461 4.2", "must", "the MX certificate chains to a trusted root, "
               "is in date (RFC 5280 path validation) and names the MX host itself"),
    Obligation("A1", "RFC 8461 5", "must", "enforce: never deliver to an MX that fails M1, "
               "M2 or offers no STARTTLS; testing may deliver as though nothing failed; none "
               "is no policy"),
    Obligation("A2", "RFC 8461 5, 5.1", "must", "no permanent failure before a DNS check for "
               "a new policy id (MUST); failures are temporary, a deferral (SHOULD)"),
    Obligation("A3", "RFC 8461 8.4", "should", "an MX that fails the policy is skipped like "
               "an unreachable one and the next MX is tried (lowercase 'recommended'; "
               "deferring complies)"),
    Obligation("T1", "RFC 8461 7.1", "must", "SNI names the MX host"),
    Obligation("T2", "RFC 8461 7.2, RFC 8996", "must", "TLS 1.2 or newer; TLS 1.0 and 1.1 "
               "are not used"),
    Obligation("X1", "RFC 8461 2", "must", "MTA-STS never overrides a failing DANE check"),
    Obligation("FC", "RFC 8461 5.1, Appendix B", "may", "first contact: with nothing cached, "
               "a sender may deliver while it fetches the policy in the background"),
    Obligation("I1", "RFC 3207 4.2", "must", "discard everything learned before TLS; "
               "plaintext injected before the handshake is not read as protected replies"),
    Obligation("R1", "RFC 8460 3", "must", "TLS-RPT discovery: exactly one valid "
               "v=TLSRPTv1 record with rua= at _smtp._tls.<domain>"),
    Obligation("R2", "RFC 8460 4.3, 4.4", "must", "a JSON report per policy domain with the "
               "RFC's fields"),
    Obligation("R3", "RFC 8460 4.3", "must", "the result type names what failed"),
    Obligation("R4", "RFC 8460 5.3, 5.4", "must", "reports submitted by HTTPS POST or mail in "
               "the RFC's formats"),
    Obligation("R5", "RFC 8460 5.3.1", "must", "reports are delivered despite TLS failures "
               "on the way to the report address"),
    Obligation("R6", "RFC 8460 5.5", "should", "a failed report submission is retried"),
)

IDS: frozenset[str] = frozenset(o.id for o in CHECKLIST)
BY_ID: dict[str, Obligation] = {o.id: o for o in CHECKLIST}
NOT_YET_COVERED_WHY: dict[str, str] = {
    **{f"R{i}": "TLS-RPT scenarios are a later issue" for i in range(1, 7)},
}
NOT_YET_COVERED: frozenset[str] = frozenset(NOT_YET_COVERED_WHY)
