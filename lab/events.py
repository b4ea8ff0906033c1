"""The event log: every service reports what it saw here, the oracle waits on it.

Waiting is on events with deadlines, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Sources
DNS = "dns"
POLICY = "policy"
PROXY = "proxy"
SINK = "sink"
SENDER = "sender"
RUNNER = "runner"


@dataclass(frozen=True)
class Event:
    source: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.monotonic)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "source": self.source, "kind": self.kind, **self.data}


Emit = Callable[[str, str, Mapping[str, Any]], None]
"""How a service reports: ``emit(source, kind, data)``."""


class EventLog:
    """Append-only, bound to the running event loop. ``mark()`` then ``since(mark)``."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed: asyncio.Event | None = None
        self._listeners: list[Callable[[Event], None]] = []

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None:
        self.append(Event(source, kind, dict(data or {})))

    def append(self, event: Event) -> None:
        self._events.append(event)
        for listener in self._listeners:
            listener(event)
        if self._changed is not None:
            self._changed.set()

    def listen(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def mark(self) -> int:
        return len(self._events)

    def since(self, mark: int = 0) -> list[Event]:
        return self._events[mark:]

    def select(self, mark: int = 0, source: str | None = None,
               kind: str | None = None) -> list[Event]:
        return [e for e in self._events[mark:]
                if (source is None or e.source == source) and (kind is None or e.kind == kind)]

    async def wait_for(self, predicate: Callable[[list[Event]], Any], mark: int,
                       deadline: float) -> Any:
        """Wait until ``predicate(events since mark)`` is truthy or ``deadline`` (monotonic).

        Returns the predicate's last value (falsy on timeout).
        """
        while True:
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            value = predicate(self._events[mark:])
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return value
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate(self._events[mark:])
