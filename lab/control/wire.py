"""The world on the wire: JSON for attacks, policy answers and MX slots.

An attack travels as ``{name, options}`` with the options spelled as a scenario writes them,
and is rebuilt by the scenario loader's own coercion and checks (``lab.scenario.build_attack``).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab import attacks as attack_plugins
from lab.attacks.base import Attack, SmtpAttack
from lab.pki import CertKind
from lab.policy_host.response import Interception, PolicyResponse
from lab.tlsrpt.collector import CollectorSetup
from lab.world_setup import MxSetup, idle_name

__all__ = [
    "attack_from_json",
    "attack_to_json",
    "collector_from_json",
    "collector_to_json",
    "dumps",
    "idle_name",
    "mx_from_json",
    "mx_to_json",
    "policy_from_json",
    "policy_to_json",
]


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def attack_to_json(attack: Attack) -> dict[str, Any]:
    """``{name, options}``: the options exactly as a scenario would write them."""
    options = {f.name: _plain(getattr(attack, f.name))
               for f in dataclasses.fields(attack) if f.init}
    return {"name": attack.name, "options": options}


def attack_from_json(data: Mapping[str, Any]) -> Attack:
    from lab.attack_options import build_attack  # imports the attack plugins

    attack_plugins.load_all()
    return build_attack(str(data["name"]), dict(data.get("options") or {}),
                        path="control", where="attacks")


def policy_to_json(response: PolicyResponse) -> dict[str, Any]:
    return {
        "status": response.status, "reason": response.reason,
        "content_type": response.content_type,
        "body": base64.b64encode(response.body).decode(),
        "headers": [list(h) for h in response.headers], "cert": response.cert.value,
        "trickle_bytes_per_s": response.trickle_bytes_per_s,
        "reachable": response.reachable, "applied": list(response.applied),
        "also_serves": [[path, base64.b64encode(body).decode()]
                        for path, body in response.also_serves],
        "not_modified": response.not_modified,
        "intercept": None if response.intercept is None else {
            "attack": response.intercept.attack,
            "policy_text": None if response.intercept.policy_text is None
            else base64.b64encode(response.intercept.policy_text).decode()},
    }


def policy_from_json(data: Mapping[str, Any]) -> PolicyResponse:
    return PolicyResponse(
        status=int(data["status"]), reason=str(data["reason"]),
        content_type=data.get("content_type"),
        body=base64.b64decode(data.get("body", "")),
        headers=tuple((str(k), str(v)) for k, v in data.get("headers", [])),
        cert=CertKind(data.get("cert", CertKind.VALID.value)),
        trickle_bytes_per_s=data.get("trickle_bytes_per_s"),
        reachable=bool(data.get("reachable", True)),
        applied=tuple(str(a) for a in data.get("applied", [])),
        also_serves=tuple((str(path), base64.b64decode(body))
                          for path, body in data.get("also_serves", [])),
        not_modified=bool(data.get("not_modified", False)),
        intercept=_intercept_from_json(data.get("intercept")),
    )


def _intercept_from_json(data: Mapping[str, Any] | None) -> Interception | None:
    if data is None:
        return None
    text = data.get("policy_text")
    return Interception(attack=str(data["attack"]),
                        policy_text=None if text is None else base64.b64decode(text))


def collector_to_json(setup: CollectorSetup) -> dict[str, Any]:
    return {"enabled": setup.enabled, "fail_times": setup.fail_times}


def collector_from_json(data: Mapping[str, Any]) -> CollectorSetup:
    return CollectorSetup(enabled=bool(data.get("enabled", False)),
                          fail_times=int(data.get("fail_times", 0)))


def mx_to_json(slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> dict[str, Any]:
    return {"slots": [{"name": s.name, "attacks": [attack_to_json(a) for a in s.attacks]}
                      for s in slots],
            "accept_domains": list(accept_domains)}


def mx_from_json(data: Mapping[str, Any]) -> tuple[list[MxSetup], list[str]]:
    slots = []
    for slot in data.get("slots", []):
        attacks = tuple(attack_from_json(a) for a in slot.get("attacks", []))
        smtp = tuple(a for a in attacks if isinstance(a, SmtpAttack))
        if len(smtp) != len(attacks):
            raise ValueError("MX slots take SMTP attacks only")
        slots.append(MxSetup(str(slot["name"]), smtp))
    return slots, [str(d) for d in data.get("accept_domains", [])]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def dumps(data: Any) -> bytes:
    """Compact JSON; bytes, sets, paths and dataclasses in events become plain values."""
    return json.dumps(data, default=_json_default, separators=(",", ":")).encode()
