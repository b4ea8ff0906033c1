"""The compose backend's image table, ``lab/images.txt``: one row per image (its
Debian release, Dockerfile, extras, compose profile, address, version, base packages).

``scripts/build-images`` builds from the same table; this module gives the rest of the lab
the sender images (``SENDER_IMAGES``), the compose profile that starts each
(``SENDER_PROFILES``) and what each holds (``version``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "images.txt"
_COLUMNS = ("image", "release", "dockerfile", "extras", "profile", "address", "version",
            "packages")


@dataclass(frozen=True)
class ImageRow:
    image: str
    release: str
    dockerfile: str
    extras: str
    profile: str
    address: str
    version: str
    packages: str

    @property
    def tag(self) -> str:
        return f"mtasts-lab/{self.image}:latest"

    @property
    def is_sender(self) -> bool:
        return self.address != "-"


def parse(text: str, source: str = "lab/images.txt") -> list[ImageRow]:
    """The rows of the table; a malformed row is a ValueError naming its line."""
    rows: list[ImageRow] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != len(_COLUMNS):
            raise ValueError(f"{source}:{number}: {len(fields)} columns, expected "
                             f"{len(_COLUMNS)} ({' '.join(_COLUMNS)})")
        rows.append(ImageRow(*fields))
    names = [row.image for row in rows]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ValueError(f"{source}: image named twice: {', '.join(doubled)}")
    return rows


ROWS = parse(TABLE.read_text())
SENDER_IMAGES = {row.image: row.tag for row in ROWS if row.is_sender}
SENDER_PROFILES = {row.image: row.profile for row in ROWS
                   if row.is_sender and row.profile != "-"}


def version(image: str) -> str:
    """What the image of ``image`` holds, as the table says ('' if no such row)."""
    row = next((r for r in ROWS if r.image == image), None)
    return "" if row is None or row.version == "-" else row.version
