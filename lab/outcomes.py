"""One home for the names of outcomes, verdicts, levels and sender statuses.

Each is a ``StrEnum``: members compare equal to their strings, so YAML, JSON and older code
that spells the plain strings keep working. The old constant names stay importable from
``lab.scenario``, ``lab.oracle`` and ``lab.senders.base``.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one message, seen from the lab."""

    DELIVERED_TLS = "delivered-tls"
    DELIVERED_PLAINTEXT = "delivered-plaintext"
    INTERCEPTED = "intercepted"
    """Delivered to a host the attacker runs, or through a TLS session it terminated."""
    NOT_DELIVERED = "not-delivered"


class Level(StrEnum):
    """The RFC's capitalised keyword for what an expectation tests."""

    MUST = "must"
    """A miss fails the run."""
    SHOULD = "should"
    """A miss is reported as advisory; it does not fail the run."""
    MAY = "may"
    """Informs: the record says what the sender chose; never fails the run."""


class Status(StrEnum):
    """The sender's own view of a message, where its adapter can read it."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


class VerdictName(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    KNOWN_FAILURE = "known-failure"
    UNEXPECTED_PASS = "unexpected-pass"
    INCONCLUSIVE = "inconclusive"
    NOT_EXERCISED = "not-exercised"
    """The sender engaged, but what the phase changed never reached it (it consulted neither
    the attacked name nor the edited policy): reported; fails the run only where the phase
    says ``exercise: required`` and no known failure explains it."""
    ERROR = "error"
    SKIPPED = "skipped"
    """The phase could not run here (an optional extra is missing): reported, never a pass."""


class Gate(StrEnum):
    """Where an attack acts, in the order a sender meets them."""

    DISCOVERY = "discovery"
    FETCH = "fetch"
    MX_SELECTION = "mx-selection"
    CONNECT = "connect"
    STARTTLS = "starttls"
    TLS = "tls"
    MESSAGE = "message"


GATE_ORDER: tuple[Gate, ...] = tuple(Gate)

OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
LEVELS: tuple[str, ...] = tuple(lv.value for lv in Level)
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
VERDICTS: tuple[str, ...] = tuple(v.value for v in VerdictName)
