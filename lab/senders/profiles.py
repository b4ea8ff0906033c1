"""Profiles of the reference sender: compliant variants and mutants, as data.

A ``Profile`` is a set of switches, all off for the reference sender itself. Each switch is
read at the one place its rule is enforced (discovery, the policy parser, the fetch, the
cache, MX matching, the SMTP/TLS client, DANE). A *variant* turns on one choice the RFC
allows; a *mutant* turns on one violation of a MUST (or, for a SHOULD rule such as C4, one
miss of that SHOULD). ``--sender reference:<profile>``
selects one (see ``lab.registry``). docs/VARIANTS.md is generated from ``PROFILES``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

Kind = Literal["variant", "mutant"]


@dataclass(frozen=True)
class Profile:
    # --- compliant choices (RFC-allowed) ---
    background_first_fetch: bool = False
    """First contact: deliver without a policy and fetch it in the background."""
    refetch_always: bool = False
    """Fetch the policy on every message, whatever the id."""
    ignore_id_while_cached: bool = False
    """While a cached policy is valid, do not look at the TXT record at all."""
    defer_not_next_mx: bool = False
    """Under enforce, defer at the first MX that fails the policy instead of trying the next."""
    clamp_max_age: bool = False
    """A max_age over one year is clamped to one year instead of rejected."""
    unbounded_fetch: bool = False
    """No time or size bound on the policy fetch."""
    defer_on_servfail: bool = False
    """A failed (SERVFAIL, timeout) TXT lookup with nothing cached defers the message."""
    strict_tls_always: bool = False
    """Verified TLS towards every MX, even without a policy."""
    # --- violations (each breaks one MUST) ---
    txt_join_spaces: bool = False
    first_of_several_txt: bool = False
    ignore_cname: bool = False
    mode_case_insensitive: bool = False
    last_field_wins: bool = False
    follow_redirects: bool = False
    fetch_any_cert: bool = False
    accept_error_body: bool = False
    http_caching: bool = False
    fetch_no_sni: bool = False
    drop_cache_without_txt: bool = False
    failed_fetch_wipes: bool = False
    cache_never_expires: bool = False
    parent_fallback: bool = False
    recipient_policy_via_smart_host: bool = False
    wildcard_any_depth: bool = False
    skip_mx_match: bool = False
    cert_against_patterns: bool = False
    mx_any_cert: bool = False
    cn_fallback: bool = False
    plaintext_fallback: bool = False
    bounce_without_recheck: bool = False
    no_sni: bool = False
    allow_tls10: bool = False
    read_injected: bool = False
    sts_overrides_dane: bool = False
    dane_without_ad: bool = False
    # --- misses of a SHOULD ---
    no_proactive_refresh: bool = False


COMPLIANT = Profile()


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    kind: Kind
    switch: str
    """The one ``Profile`` field this profile turns on."""
    rule: str
    """The checklist id the profile relies on (variant) or breaks (mutant)."""
    section: str
    says: str
    """What the RFC says there, in the lab's words."""

    @property
    def profile(self) -> Profile:
        return replace(COMPLIANT, **{self.switch: True})


def _v(name: str, switch: str, rule: str, section: str, says: str) -> ProfileSpec:
    return ProfileSpec(name, "variant", switch, rule, section, says)


def _m(name: str, switch: str, rule: str, section: str, says: str) -> ProfileSpec:
    return ProfileSpec(name, "mutant", switch, rule, section, says)


PROFILES: tuple[ProfileSpec, ...] = (
    _v("background-fetch", "background_first_fetch", "First contact",
       "RFC 8461 5.1, Appendix B",
       "with nothing cached, a sender may fetch the policy asynchronously and deliver the "
       "message meanwhile as though the domain had no policy"),
    _v("refetch-always", "refetch_always", "C2", "RFC 8461 5.1",
       "a sender may unconditionally check for a new policy on every delivery"),
    _v("ignore-id-cached", "ignore_id_while_cached", "C2", "RFC 8461 3.3, 5.1",
       "nothing obliges a sender to look at the TXT id while its cached policy is valid; "
       "the id only tells it that a refetch is due"),
    _v("defer-not-next-mx", "defer_not_next_mx", "A3", "RFC 8461 8.4",
       "trying the next MX is recommended (lowercase), not required; deferring complies"),
    _v("clamp-max-age", "clamp_max_age", "P1", "RFC 8461 3.2",
       "max_age has a maximum of 31557600; a larger value is grammatical and a sender may "
       "clamp it"),
    _v("no-fetch-bounds", "unbounded_fetch", "F3", "RFC 8461 3.3",
       "senders MAY bound the policy fetch in time and size; they need not"),
    _v("defer-on-servfail", "defer_on_servfail", "C1", "RFC 8461 5, 5.1",
       "a temporary DNS failure leaves the policy unknown; delaying delivery is a "
       "temporary failure, which the RFC prefers"),
    _v("strict-tls", "strict_tls_always", "A1", "RFC 8461 5; RFC 3207",
       "a sender may demand verified TLS of every MX; MTA-STS only sets the floor"),
    _m("txt-joined-with-spaces", "txt_join_spaces", "D3", "RFC 8461 3.1",
       "a TXT record of several strings is their concatenation, with nothing between them"),
    _m("first-of-several-txt", "first_of_several_txt", "D1", "RFC 8461 3.1",
       "several STS records mean no policy; this mutant takes the first"),
    _m("ignores-cname", "ignore_cname", "D2", "RFC 8461 3.1",
       "the _mta-sts name may be a CNAME; the sender must follow it"),
    _m("mode-case-insensitive", "mode_case_insensitive", "P1", "RFC 8461 3.2",
       "mode is exactly enforce, testing or none; 'Enforce' is invalid, so no policy"),
    _m("last-field-wins", "last_field_wins", "P1", "RFC 8461 3.2",
       "of a repeated field only the first counts (mx excepted)"),
    _m("follows-redirects", "follow_redirects", "F2", "RFC 8461 3.3",
       "HTTP 3xx redirects MUST NOT be followed"),
    _m("fetch-any-cert", "fetch_any_cert", "F1", "RFC 8461 3.3",
       "the policy host's certificate must be valid for mta-sts.<domain> and trusted"),
    _m("accepts-error-body", "accept_error_body", "F2", "RFC 8461 3.3",
       "only a 200 response is a policy; the body of a 404 or 500 is not"),
    _m("http-caching", "http_caching", "F2", "RFC 8461 3.3",
       "HTTP caching MUST NOT be used (no conditional requests, no 304)"),
    _m("fetch-no-sni", "fetch_no_sni", "F4", "RFC 8461 7.1, 3.3",
       "the policy fetch is an HTTPS request to mta-sts.<domain> with SNI for that name"),
    _m("drops-cache-without-txt", "drop_cache_without_txt", "C1", "RFC 8461 3.3, 5.1",
       "with no live policy, a valid cached policy MUST be applied"),
    _m("failed-fetch-wipes-cache", "failed_fetch_wipes", "C2", "RFC 8461 3.3",
       "a failed fetch of a new policy keeps the cached one"),
    _m("cache-never-expires", "cache_never_expires", "C3", "RFC 8461 3.2, 3.3",
       "a cached policy lives max_age seconds, then it is gone"),
    _m("parent-domain-fallback", "parent_fallback", "S1", "RFC 8461 3.4",
       "the policy domain is the recipient domain; a parent's policy never applies"),
    _m("recipient-policy-via-smart-host", "recipient_policy_via_smart_host", "S1",
       "RFC 8461 3.4",
       "relaying through a smart host, the smart host's domain is the policy domain, not the "
       "recipient's"),
    _m("two-label-wildcard", "wildcard_any_depth", "M1", "RFC 8461 4.1",
       "'*.' matches exactly one left-most label"),
    _m("skips-mx-match", "skip_mx_match", "M1", "RFC 8461 4.1",
       "under enforce, an MX that matches no mx pattern is not used"),
    _m("cert-against-patterns", "cert_against_patterns", "M2", "RFC 8461 4.2",
       "the MX certificate names the MX host itself, not merely some policy pattern"),
    _m("mx-any-cert", "mx_any_cert", "M2", "RFC 8461 4.2",
       "the MX certificate chains to a trusted root and is in date"),
    _m("cn-fallback", "cn_fallback", "M2", "RFC 8461 4.2; RFC 6125 6.4.4",
       "the MX host is named by a DNS-ID (subjectAltName), not by the subject's CN"),
    _m("plaintext-fallback", "plaintext_fallback", "A1", "RFC 8461 5",
       "under enforce a sender never delivers to an MX that offers no STARTTLS"),
    _m("bounces-without-recheck", "bounce_without_recheck", "A2", "RFC 8461 5.1",
       "before failing a message permanently, the sender checks DNS for a new policy id"),
    _m("no-sni", "no_sni", "T1", "RFC 8461 7.1",
       "SNI names the MX host"),
    _m("accepts-tls-1.0", "allow_tls10", "T2", "RFC 8461 7.2; RFC 8996",
       "TLS 1.0 and 1.1 MUST NOT be used"),
    _m("reads-injected-replies", "read_injected", "I1", "RFC 3207 4.2",
       "the client discards what it learned before TLS; plaintext after the 220 is not a "
       "reply inside TLS"),
    _m("sts-overrides-dane", "sts_overrides_dane", "X1", "RFC 8461 2",
       "MTA-STS MUST NOT override a failing DANE check"),
    _m("dane-without-ad", "dane_without_ad", "X1", "RFC 7672 2.2",
       "TLSA records count only when DNSSEC-validated (AD bit); unsigned ones are ignored"),
    _m("never-refreshes", "no_proactive_refresh", "C4", "RFC 8461 3.3, 10.2",
       "a SHOULD: refresh a cached policy before it expires, so that an attacker who blocks "
       "the fetch when it expires does not end the protection"),
)

BY_NAME: dict[str, ProfileSpec] = {p.name: p for p in PROFILES}
VARIANTS: tuple[ProfileSpec, ...] = tuple(p for p in PROFILES if p.kind == "variant")
MUTANTS: tuple[ProfileSpec, ...] = tuple(p for p in PROFILES if p.kind == "mutant")
SWITCHES: tuple[str, ...] = tuple(f.name for f in fields(Profile))


def profile_names() -> list[str]:
    return [p.name for p in PROFILES]
