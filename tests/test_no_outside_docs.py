"""The project explains itself: no file refers to documents outside the repository, and the
links between its own Markdown files resolve."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match its own check.
_OUTSIDE = ("DESIGN", "REAL-SENDERS", "RFC-CHECKLIST")
OUTSIDE = re.compile(r"\b(?:" + "|".join(_OUTSIDE) + r")(?:\.md\b| rule)"
                     r"|\.\./" + "shared" + r"|/work/" + "shared")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SKIP = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".hypothesis", "runs"}


def _files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=30).stdout
        return sorted(ROOT / name for name in out.decode().split("\0") if name)
    except (OSError, subprocess.SubprocessError):  # not a git checkout (an sdist)
        return sorted(p for p in ROOT.rglob("*") if p.is_file()
                      and not SKIP.intersection(p.relative_to(ROOT).parts))


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def outside_references(text: str) -> list[str]:
    return [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for m in OUTSIDE.finditer(text)]


def test_no_file_refers_to_outside_documents() -> None:
    files = _files()
    assert len(files) > 100
    found = {str(p.relative_to(ROOT)): hits for p in files
             if (text := _text(p)) is not None and (hits := outside_references(text))}
    assert found == {}


def test_markdown_links_stay_inside_and_resolve() -> None:
    broken = []
    for path in [p for p in _files() if p.suffix == ".md"]:
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            resolved = (path.parent / target).resolve()
            if ROOT not in resolved.parents or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []
    assert (ROOT / "docs" / "ARCHITECTURE.md").exists()


def test_the_check_catches_each_kind() -> None:
    for text in ("see " + "DESIGN" + ".md", "(" + "REAL-SENDERS" + ".md)",
                 "RFC-CHECKLIST" + ".md row", "../" + "shared/x", "DESIGN" + " rule 1"):
        assert outside_references(text), text
    assert outside_references("docs/ARCHITECTURE.md, docs/REAL-SENDERS-NOTES.md") == []
