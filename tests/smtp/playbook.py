"""Playbook tests for the relay core: the exact interleaved sequence of inputs and actions.

The idea is mitmproxy's (its proxy layer tests): a test writes ``>> input`` for what the
shell tells the core and ``<< action`` for each action it must answer with, in order::

    assert (Playbook(relay)
            >> ServerData(GREETING)
            << SendToClient(GREETING)
            >> ClientData(b"EHLO s.test\\r\\n")
            << SendToServer(b"EHLO s.test\\r\\n"))

Every input's actions must equal the ``<<`` lines after it, exactly (``Notice`` values too,
unless ``notices=False``). On a mismatch the assertion shows the whole sequence, expected
against actual, from the first difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.smtp.actions import Action, Notice
from lab.smtp.inputs import Input
from lab.smtp.relay import Relay

CONN, MX = "c1", "mx1.victim.test"


def note(kind: str, **data: Any) -> Notice:
    """A ``Notice`` as the relay of the tests (``conn`` c1, ``mx`` mx1) gives it."""
    return Notice(kind, {"conn": CONN, "mx": MX, **data})


@dataclass
class _Step:
    given: Input
    expected: list[Action] = field(default_factory=list)


class Playbook:
    def __init__(self, relay: Relay, *, notices: bool = True) -> None:
        self.relay = relay
        self.notices = notices
        self.steps: list[_Step] = []
        self._ran = False

    def __rshift__(self, given: Input) -> Playbook:
        self.steps.append(_Step(given))
        return self

    def __lshift__(self, action: Action) -> Playbook:
        if not self.steps:
            raise TypeError("a playbook starts with an input (>>), not an action (<<)")
        self.steps[-1].expected.append(action)
        return self

    def __bool__(self) -> bool:
        if self._ran:
            raise RuntimeError("a playbook runs once")
        self._ran = True
        lines: list[str] = []
        for i, step in enumerate(self.steps):
            actual = [a for a in self.relay.handle(step.given)
                      if self.notices or not isinstance(a, Notice)]
            lines.append(f">> {step.given!r}")
            if actual == step.expected:
                lines += [f"<< {a!r}" for a in actual]
                continue
            lines += [f"   expected << {a!r}" for a in step.expected]
            lines += [f"   actual   << {a!r}" for a in actual]
            rest = [f">> {s.given!r}" for s in self.steps[i + 1:]]
            raise AssertionError("the relay answered otherwise:\n" + "\n".join(lines + rest))
        return True
