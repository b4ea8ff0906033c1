"""``run --expect FILE``: known failures and skips for a sender the catalogue does not know.

The file is YAML with up to two mappings, each from scenario id to a one-line reason::

    known_failures:
      certificates/swap-certificate-wrong-name-enforce: swaks does not check the host name
    skip:
      mx/some-scenario: swaks does not look up MX records itself

A known failure is strict, like the catalogue's own: a phase that passes is an unexpected
pass. A skip reports every phase of the scenario as skipped with the reason. Both apply to
every sender of the run. Bad input is an ExpectationsError naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab.scenario import Scenario

MAX_BYTES = 256 * 1024


class ExpectationsError(ValueError):
    """Bad expectations file: one line naming the file and the field."""

FIELDS = ("known_failures", "skip")


@dataclass(frozen=True)
class Expectations:
    known_failures: Mapping[str, str] = field(default_factory=dict)
    skip: Mapping[str, str] = field(default_factory=dict)

    def apply(self, scenarios: Sequence[Scenario], senders: Iterable[str]) -> list[Scenario]:
        """The scenarios with this file's known failures added for each sender."""
        names = list(senders)
        out = []
        for s in scenarios:
            reason = self.known_failures.get(s.id)
            if reason is not None:
                s = dataclasses.replace(s, known_failures={
                    **s.known_failures, **{n: reason for n in names}})
            out.append(s)
        return out


def load(path: Path, catalogue: Iterable[Scenario]) -> Expectations:
    by_id = {s.id: s for s in catalogue}
    known = set(by_id)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExpectationsError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ExpectationsError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        data = yaml.safe_load(raw.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpectationsError(f"{path}: not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ExpectationsError(f"{path}: expected a mapping with {' and/or '.join(FIELDS)}")
    for key in data:
        if key not in FIELDS:
            raise ExpectationsError(f"{path}: unknown field {key!r} (known: {', '.join(FIELDS)})")
    parts: dict[str, dict[str, str]] = {}
    for name in FIELDS:
        entries = data.get(name) or {}
        if not isinstance(entries, dict):
            raise ExpectationsError(f"{path}: {name}: expected a mapping scenario id -> reason")
        for sid, reason in entries.items():
            if not isinstance(sid, str) or sid not in known:
                raise ExpectationsError(f"{path}: {name}.{sid}: unknown scenario id "
                                    "(see mtasts-lab list scenarios)")
            if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
                raise ExpectationsError(f"{path}: {name}.{sid}: expected a one-line reason")
            if name == "known_failures" and not any(p.is_attack
                                                    for p in by_id[sid].phases):
                raise ExpectationsError(f"{path}: {name}.{sid}: no attack phase (a known "
                                        "failure applies to attack phases; use skip)")
        parts[name] = {sid: reason.strip() for sid, reason in entries.items()}
    both = set(parts["known_failures"]) & set(parts["skip"])
    if both:
        raise ExpectationsError(f"{path}: {sorted(both)[0]}: both a known failure and a skip")
    return Expectations(parts["known_failures"], parts["skip"])
