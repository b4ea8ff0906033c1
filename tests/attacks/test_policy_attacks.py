"""The policy attacks as pure transforms of the policy host's answer, and their options."""

from __future__ import annotations

import pytest

from lab.attacks import Attack, PolicyAttack, load_all
from lab.attacks.policy_certificate import PolicyCertificate
from lab.attacks.policy_http_cache import PolicyHttpCache
from lab.attacks.policy_media_type import PolicyMediaType
from lab.attacks.policy_mitm import PolicyMitm
from lab.attacks.policy_oversize import PolicyOversize, pad
from lab.attacks.policy_redirect import PolicyRedirect
from lab.attacks.policy_status import PolicyStatus
from lab.attacks.policy_trickle import PolicyTrickle
from lab.attacks.policy_unreachable import PolicyUnreachable
from lab.extras import install_hint
from lab.pki import CertKind
from lab.policy_host.response import PolicyResponse
from lab.scenario import ScenarioError, load_text
from lab.senders.mtasts import parse_policy
from lab.senders.policy_fetch import HttpParseError, ResponseParser

POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmax_age: 86400\n"
GENUINE = PolicyResponse(body=POLICY)
NAMES = ["policy-certificate", "policy-http-cache", "policy-media-type", "policy-mitm",
         "policy-oversize", "policy-redirect", "policy-status", "policy-trickle",
         "policy-unreachable"]


def scenario_with(attack: str) -> str:
    return f"""
summary: s
refs: [r]
teach: t
world: {{policy: {{mode: enforce}}}}
phases:
  - attacks: [{attack}]
    expect: {{outcome: delivered-plaintext}}
"""


def test_every_policy_attack_is_registered_as_a_policy_attack() -> None:
    load_all()
    for name in NAMES:
        cls = Attack.registry.get(name)
        assert issubclass(cls, PolicyAttack) and cls.place == "policy"
        # alone, none of them makes a compliant sender refuse: each takes the policy away
        assert not cls.enforce_breaking


def test_redirect_moves_the_valid_policy_to_another_path() -> None:
    out = PolicyRedirect(status=302, path="/elsewhere.txt").transform(GENUINE, "victim.test")
    assert (out.status, out.reason) == (302, "Found")
    assert ("Location", "/elsewhere.txt") in out.headers
    assert out.also_serves == (("/elsewhere.txt", POLICY),)
    assert POLICY not in out.body
    assert out.applied == ("policy-redirect",)


@pytest.mark.parametrize("options", ["{status: 200}", "{status: 404}",
                                     "{path: /.well-known/mta-sts.txt}", "{path: relative}"])
def test_redirect_refuses_bad_options(options: str) -> None:
    with pytest.raises(ScenarioError, match="policy-redirect"):
        load_text(scenario_with(f"{{policy-redirect: {options}}}"), "x.yaml", "x")


def test_status_keeps_the_valid_body() -> None:
    out = PolicyStatus(status=500).transform(GENUINE, "victim.test")
    assert (out.status, out.reason, out.body) == (500, "Internal Server Error", POLICY)
    assert out.applied == ("policy-status",)


@pytest.mark.parametrize("status", [200, 301, 304, 600, 100])
def test_status_refuses_success_redirects_and_nonsense(status: int) -> None:
    with pytest.raises(ValueError, match="status"):
        PolicyStatus(status=status)


def test_media_type_can_remove_the_header() -> None:
    assert PolicyMediaType(content_type=None).transform(GENUINE, "d.test").content_type is None
    parsed = load_text(scenario_with("{policy-media-type: {content_type: null}}"), "x.yaml", "x")
    attack = parsed.phases[0].attacks[0]
    assert isinstance(attack, PolicyMediaType) and attack.content_type is None
    with pytest.raises(ValueError):
        PolicyMediaType(content_type="text/plain\r\nX: y")


def test_oversize_is_a_valid_policy_if_read_whole_but_over_64_kib() -> None:
    out = PolicyOversize(size=100_000).transform(GENUINE, "victim.test")
    assert len(out.body) == 100_000 and out.body.startswith(POLICY)
    assert parse_policy(out.body.decode()) == parse_policy(POLICY.decode())
    # the reference sender's bounded reader (64 KiB) gives up on it
    parser = ResponseParser(max_body=65536)
    with pytest.raises(HttpParseError, match="larger than 65536"):
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(out.body)
                    + out.body)


@pytest.mark.parametrize("size", [65537, 65600, 100_001])
def test_pad_hits_the_size_exactly_with_crlf_too(size: int) -> None:
    crlf = POLICY.replace(b"\n", b"\r\n")
    padded = pad(crlf, size)
    assert len(padded) == size
    assert parse_policy(padded.decode()).mode == "enforce"


def test_oversize_needs_more_than_64_kib() -> None:
    with pytest.raises(ValueError, match="size"):
        PolicyOversize(size=65536)


def test_trickle_certificate_unreachable() -> None:
    assert PolicyTrickle(bytes_per_s=4).transform(GENUINE, "d.test").trickle_bytes_per_s == 4
    with pytest.raises(ValueError):
        PolicyTrickle(bytes_per_s=0)
    cert = PolicyCertificate(certificate=CertKind.EXPIRED).transform(GENUINE, "d.test")
    assert cert.cert is CertKind.EXPIRED and cert.body == POLICY
    with pytest.raises(ValueError, match="valid"):
        PolicyCertificate(certificate=CertKind.VALID)
    down = PolicyUnreachable().transform(GENUINE, "d.test")
    assert down.reachable is False and down.applied == ("policy-unreachable",)


def test_http_cache_invites_caching_and_answers_304() -> None:
    out = PolicyHttpCache(etag='"x"').transform(GENUINE, "d.test")
    headers = dict(out.headers)
    assert headers["ETag"] == '"x"' and "max-age=" in headers["Cache-Control"]
    assert "Last-Modified" in headers
    assert out.not_modified and out.body == POLICY and out.status == 200


def test_attacks_compose_and_each_leaves_its_name() -> None:
    out = GENUINE
    for attack in (PolicyMediaType(content_type="text/html"), PolicyTrickle(),
                   PolicyCertificate()):
        out = attack.transform(out, "victim.test")
    assert out.applied == ("policy-media-type", "policy-trickle", "policy-certificate")
    assert (out.content_type, out.cert) == ("text/html", CertKind.SELF_SIGNED)


def test_mitm_plans_a_rewrite_to_a_valid_weaker_policy() -> None:
    out = PolicyMitm(mode="testing", max_age=60).transform(GENUINE, "victim.test")
    assert out.intercept is not None and out.intercept.attack == "policy-mitm"
    assert out.intercept.policy_text is not None
    forged = parse_policy(out.intercept.policy_text.decode())
    assert (forged.mode, forged.max_age, forged.mx) == ("testing", 60, ("*.victim.test",))
    assert out.body == POLICY  # the genuine host still serves the genuine policy
    assert parse_policy(PolicyMitm().policy_text("victim.test").decode()).mode == "none"
    assert PolicyMitm.requires == (("mitmproxy", install_hint("mitm")),)


def test_mitm_reports_the_missing_extra_only_when_missing() -> None:
    import importlib.util
    missing = PolicyMitm.missing()
    if importlib.util.find_spec("mitmproxy") is None:
        assert missing == ["mitmproxy is not installed (pip install mtasts-lab[mitm])"]
    else:
        assert missing == []
