"""Known failures kept beside the catalogue, one file per sender: ``<sender>.yaml`` maps a
scenario id (every attack or report phase of it) or ``<scenario id> [<phase>]`` (that phase
alone) to the reason (with a log excerpt). The scenario loader merges them into each
scenario's ``known_failures`` (as ``<sender>`` or ``<sender> [<phase>]``); an entry in the
scenario's own YAML wins."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml

_KEY = re.compile(r"(?P<name>[^\s\[\]]+)(?: \[(?P<phase>[^\[\]]+)\])?")


def split_key(key: str) -> tuple[str, str | None]:
    """A key of known failures: ``<name>`` (every attack or report phase) or ``<name>
    [<phase>]`` (that phase alone); the name is a sender's in a scenario, a scenario id's in
    a ``<sender>.yaml``."""
    m = _KEY.fullmatch(key)
    return (m["name"], m["phase"]) if m else (key, None)


def phase_key(name: str, phase: str | None) -> str:
    """The key ``split_key`` reads back: ``<name> [<phase>]``, or ``<name>``."""
    return f"{name} [{phase}]" if phase else name


class KnownFailuresError(Exception):
    """A known-failures file is malformed; the message names the file and the field."""


@functools.cache
def by_scenario(root: Path | None = None) -> Mapping[str, Mapping[str, str]]:
    """{scenario id: {sender: reason}} from every ``<sender>.yaml`` here."""
    root = root or Path(str(resources.files("lab") / "known_failures"))
    found: dict[str, dict[str, str]] = {}
    for path in sorted(root.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, Mapping):
            raise KnownFailuresError(f"{path}: must map scenario ids to reasons")
        for scenario_id, reason in data.items():
            if not isinstance(reason, str) or not reason.strip():
                raise KnownFailuresError(f"{path}: {scenario_id}: the reason must be a "
                                         "non-empty string")
            sid, phase = split_key(str(scenario_id))
            found.setdefault(sid, {})[phase_key(path.stem, phase)] = reason
    return found
