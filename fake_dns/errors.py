"""The one error the zone and its text format raise."""

from __future__ import annotations


class ZoneError(ValueError):
    """A bad record, name or zone file line. ``line`` is set when it came from a file."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)
