"""A finding: one thing a TLS-RPT submission does against RFC 8460, with the section it breaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    section: str
    """Where the rule is: ``RFC 8460 4.4``, or ``lab limit`` for the lab's own bounds."""
    text: str
    level: str = "must"
    """The RFC's keyword for the rule: ``must``, ``should`` (SHOULD, RECOMMENDED), ``limit``."""

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "text": self.text, "level": self.level}


def rfc(section: str, text: str, level: str = "must") -> Finding:
    return Finding(f"RFC 8460 {section}", text, level)


def limit(text: str) -> Finding:
    """The lab's own bound (RFC 8460 sets no size limit)."""
    return Finding("lab limit", text, "limit")
