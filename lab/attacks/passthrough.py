"""passthrough: the no-op control. Relays everything untouched and never fires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import SmtpAttack


@dataclass
class Passthrough(SmtpAttack):
    name: ClassVar[str] = "passthrough"
    summary: ClassVar[str] = "Relay the SMTP session untouched (the no-op control)."
    enforce_breaking: ClassVar[bool] = False
