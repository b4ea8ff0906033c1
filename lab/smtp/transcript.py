"""The proxy's record of both legs: every line seen and sent, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.smtp.codec import printable

Leg = Literal["client", "server"]
Direction = Literal["in", "out"]
"""From the proxy's point of view: ``in`` was received on the leg, ``out`` was sent on it."""


@dataclass(frozen=True)
class Entry:
    t: float
    leg: Leg
    dir: Direction
    tls: str
    text: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.t, "leg": self.leg, "dir": self.dir, "tls": self.tls,
                               "text": self.text}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Transcript:
    clock: Callable[[], float]
    entries: list[Entry] = field(default_factory=list)

    def add(self, leg: Leg, direction: Direction, tls: str, data: bytes | str,
            note: str = "") -> None:
        """Record ``data`` one line per entry (a multi-line reply gives several)."""
        text = printable(data) if isinstance(data, bytes) else data
        lines = text.splitlines() or [""]
        now = self.clock()
        for line in lines:
            self.entries.append(Entry(now, leg, direction, tls, line, note))

    def as_dicts(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.entries]
