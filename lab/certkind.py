"""The kinds of certificate the lab can present. Imports nothing heavy (no ssl, no trustme),
so that the sans-IO relay core and the attacks can name them; ``lab.pki`` issues them."""

from __future__ import annotations

from enum import StrEnum


class CertKind(StrEnum):
    VALID = "valid"
    WRONG_NAME = "wrong-name"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    SELF_SIGNED = "self-signed"
    ROGUE_CA = "rogue-ca"
    CN_ONLY = "cn-only"
    """From the trusted CA, naming the host only in the subject CN, with no SAN."""
