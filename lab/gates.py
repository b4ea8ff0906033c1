"""Where each attack acts: the ordered gates a sender passes on the way to delivery.

Discovery (the ``_mta-sts`` TXT), fetch (the policy host), MX selection (the MX records),
connect, STARTTLS, TLS, message. A sender that refuses at an earlier gate whose attack fired
is judged there; attacks at later gates never reached it, and the record says so.
"""

from __future__ import annotations

from lab.attacks.base import Attack, DnsAttack, PolicyAttack, SmtpAttack
from lab.outcomes import GATE_ORDER, Gate
from lab.world import World, normalize

_SMTP_GATES: dict[str, Gate] = {
    "strip-starttls": Gate.STARTTLS,
    "reject-starttls": Gate.STARTTLS,
    "refuse-ehlo": Gate.STARTTLS,
    "swap-certificate": Gate.TLS,
    "abort-handshake": Gate.TLS,
    "legacy-tls-only": Gate.TLS,
    "reset-after-handshake": Gate.MESSAGE,
    "inject-response": Gate.MESSAGE,
}


def gate_of(attack: Attack, world: World) -> Gate:
    """The gate an attack acts at (an attack class may name its own with ``gate``)."""
    own = getattr(attack, "gate", None)
    if own is not None:
        return Gate(own)
    if isinstance(attack, PolicyAttack):
        return Gate.FETCH
    if isinstance(attack, DnsAttack):
        names = {normalize(n) for n, _ in attack.watched(world)}
        if names and all(n.startswith("_mta-sts.") for n in names):
            return Gate.DISCOVERY
        if names and all(n.startswith("mta-sts.") for n in names):
            return Gate.FETCH
        return Gate.MX_SELECTION
    if isinstance(attack, SmtpAttack):
        return _SMTP_GATES.get(attack.name, Gate.CONNECT)
    return Gate.CONNECT


def before(a: Gate, b: Gate) -> bool:
    return GATE_ORDER.index(a) < GATE_ORDER.index(b)


def mtasts_only(gate: Gate) -> bool:
    """Gates only a sender that looks for an MTA-STS policy passes through."""
    return gate in (Gate.DISCOVERY, Gate.FETCH)
