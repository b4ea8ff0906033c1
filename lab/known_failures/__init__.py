"""Known failures kept beside the catalogue, one file per sender: ``<sender>.yaml`` maps a
scenario id (every attack or report phase of it) or ``<scenario id> [<phase>]`` (that phase
alone) to the reason (with a log excerpt). The scenario loader merges them into each
scenario's ``known_failures`` (as ``<sender>`` or ``<sender> [<phase>]``); an entry in the
scenario's own YAML wins."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml


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
            sid, _, phase = str(scenario_id).partition(" [")
            key = f"{path.stem} [{phase}" if phase else path.stem
            found.setdefault(sid, {})[key] = reason
    return found
