"""What the policy host answers: routing a request to a configured response, pure.

No I/O here: ``route`` turns a parsed request and the connection's SNI domain into an
``Answer``; ``response_headers`` lays out the head; ``trickle_plan`` paces a slow body.
"""

from __future__ import annotations

import hashlib
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.pki import CertKind
from lab.policy_host.http import REASONS, Request, host_name
from lab.policy_host.response import Interception, PolicyResponse

POLICY_PATH = "/.well-known/mta-sts.txt"
SERVER = "mtasts-lab-policy-host"
TRICKLE_INTERVAL_S = 0.05
"""Pacing step for a trickling body: one chunk per step."""
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


def trickle_plan(bytes_per_s: float) -> tuple[int, float]:
    """Chunk size and pause between chunks for a body sent at ``bytes_per_s``."""
    if not bytes_per_s > 0:
        raise ValueError("trickle rate must be positive")
    chunk = max(1, round(bytes_per_s * TRICKLE_INTERVAL_S))
    return chunk, chunk / bytes_per_s


def trickle_chunks(size: int, bytes_per_s: float) -> int:
    """How many chunks a trickled body of ``size`` bytes is sent in."""
    return math.ceil(size / trickle_plan(bytes_per_s)[0])


def norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def domain_of_host(host: str | None) -> str | None:
    """``victim.test`` for ``mta-sts.victim.test``; None for any other host."""
    if host and host.startswith("mta-sts."):
        return host[len("mta-sts."):]
    return None


@dataclass(frozen=True)
class Site:
    """One configured policy domain: its answer and the TLS context it presents."""

    response: PolicyResponse
    context: ssl.SSLContext


def interceptions(sites: Mapping[str, Site]) -> list[Interception]:
    return [s.response.intercept for s in sites.values() if s.response.intercept is not None]


@dataclass
class Conn:
    """What one connection learnt during its handshake."""

    peer: str
    sni: str | None = None
    domain: str | None = None
    cert: str = CertKind.VALID.value
    refused: bool = False
    error: str | None = None
    applied: tuple[str, ...] = ()


@dataclass
class Answer:
    status: int
    reason: str
    body: bytes = b""
    content_type: str | None = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float | None = None
    applied: tuple[str, ...] = ()
    domain: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def error_answer(status: int, domain: str | None = None, error: str | None = None) -> Answer:
    reason = REASONS.get(status, "Error")
    extra = {"error": error} if error else {}
    return Answer(status, reason, f"{status} {reason}\n".encode(), domain=domain, extra=extra)


def conditional(request: Request) -> bool:
    return (request.header("If-None-Match") is not None
            or request.header("If-Modified-Since") is not None)


def route(request: Request, sites: Mapping[str, Site], domain: str | None) -> Answer:
    """The answer to ``request`` on a connection whose SNI named ``domain``."""
    site = sites.get(domain) if domain else None
    if site is None or domain is None:
        return error_answer(404)
    host = request.header("Host")
    if host is not None and host_name(host) != f"mta-sts.{domain}":
        return error_answer(421, domain)
    if request.method != "GET":
        answer = error_answer(405, domain)
        answer.headers = (("Allow", "GET"),)
        return answer
    r = site.response
    if request.target != POLICY_PATH:
        for path, body in r.also_serves:
            if request.target == path:
                return Answer(200, "OK", body, "text/plain", (), None, r.applied, domain,
                              {"served": "redirect target"})
        return error_answer(404, domain)
    if r.not_modified and conditional(request):
        return Answer(304, REASONS[304], b"", None, r.headers, None, r.applied, domain)
    host = request.header("Host") or f"mta-sts.{domain}"
    headers = tuple((name, f"https://{host}{value}" if name.lower() == "location"
                     and value.startswith("/") else value) for name, value in r.headers)
    return Answer(r.status, r.reason, r.body, r.content_type, headers,
                  r.trickle_bytes_per_s, r.applied, domain)


def response_headers(answer: Answer) -> list[tuple[str, str]]:
    """The host's own headers, each replaced by a configured header of the same name.

    Like a typical static web server (nginx), a 200 carries an ``ETag`` (from the body) and
    a ``Last-Modified``: validators a sender could misuse for HTTP caching (F2).
    """
    own = [("Server", SERVER), ("Content-Length", str(len(answer.body))),
           ("Connection", "close")]
    if answer.status == 200:
        own[1:1] = [("ETag", '"' + hashlib.sha256(answer.body).hexdigest()[:16] + '"'),
                    ("Last-Modified", LAST_MODIFIED)]
    if answer.content_type is not None:
        own.insert(1, ("Content-Type", answer.content_type))
    configured = {name.lower() for name, _ in answer.headers}
    return [h for h in own if h[0].lower() not in configured] + list(answer.headers)
