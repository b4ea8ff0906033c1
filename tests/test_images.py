"""The image table (lab/images.txt) is the one place the compose backend's images are named:
compose.yaml's sender services, the Dockerfiles and `list senders` follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab import images
from lab.senders import Sender, load_all

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_sender_row_is_a_compose_service_with_its_image_profile_and_address() -> None:
    services = _compose()["services"]
    senders = [row for row in images.ROWS if row.is_sender]
    assert {"postfix", "postfix-3.10", "chasquid-1.15", "exim", "exim-4.98",
            "sendmail"} <= {row.image for row in senders}
    for row in senders:
        service = services[row.image]
        assert service["image"] == row.tag
        assert service["networks"]["lab"]["ipv4_address"] == row.address
        assert service.get("profiles", ["-"]) == [row.profile]
        assert "command" not in service  # the image's agent serves its own sender
    images_in_compose = {s["image"] for s in services.values() if "image" in s}
    assert images_in_compose == {row.tag for row in images.ROWS}


def test_every_row_has_its_dockerfile_and_a_release_the_build_knows() -> None:
    script = (ROOT / "scripts" / "build-images").read_text()
    for row in images.ROWS:
        dockerfile = ROOT / "containers" / row.dockerfile / "Dockerfile"
        assert dockerfile.is_file(), row.image
        text = dockerfile.read_text()
        assert "COPY ${DEPS} /tmp/deps" in text and "${PACKAGES}" in text, row.image
        assert ("ARG SENDER" in text) == row.is_sender, row.image
        assert f"[{row.release}]=" in script, row.release


def test_each_compose_sender_is_registered_and_shows_the_tables_version() -> None:
    load_all()
    for row in images.ROWS:
        if not row.is_sender:
            continue
        sender = Sender.registry.get(row.image)
        assert "compose" in sender.backends
        if sender.backends == ("compose",):
            assert sender.version() == row.version


@pytest.mark.parametrize("text, message", [
    ("lab bookworm lab mitm - -\n", "lab/images.txt:1: 6 columns, expected 8"),
    ("# c\nx bookworm x - - - - -\nx trixie x - - - - -\n",
     "lab/images.txt: image named twice: x"),
])
def test_a_malformed_table_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        images.parse(text)


def test_the_table_ships_in_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"images.txt"' in pyproject
    assert images.TABLE.parent == Path(images.__file__).parent
