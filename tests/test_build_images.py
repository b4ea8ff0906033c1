"""scripts/build-images makes its build context (the wheels the images install) from a plain
checkout: no ``.venv`` in it, no ``PYTHON``, no Docker, and a stale in-tree ``build/`` left by
an interrupted earlier build is never read.

Real pip against the package index the machine is configured with (marked ``integration``).
The dependency sets that this machine's own image build already downloaded (the default
build folder, as ``.ci/run`` leaves it) are offered to the test's build, which keeps a set
whose stamp (Python and requirements) still matches and downloads any other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build-images"
DEFAULT_BUILD = Path("/var/cache/mtasts-lab/build")

pytestmark = pytest.mark.integration


def _checkout(to: Path) -> Path:
    """The tracked files (and any new ones) of this tree, without .venv, .git or caches."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)
    return to


def _downloaded_sets(built: Path, to: Path) -> None:
    """Copy the dependency sets (and wheels built from source archives) of an earlier build."""
    to.mkdir()
    if not built.is_dir():
        return
    for folder in built.iterdir():
        if folder.is_dir() and (folder.name.startswith("deps-") or folder.name == "built-wheels"):
            shutil.copytree(folder, to / folder.name)


def _stale_build(tree: Path) -> None:
    """What an interrupted setuptools build leaves: build/lib with a file where setuptools
    wants a directory (reading it fails with 'File exists' / 'Not a directory')."""
    (tree / "build" / "lib").mkdir(parents=True)
    (tree / "build" / "lib" / "lab").write_text("left by an interrupted build\n")
    (tree / "build" / "bdist.linux-x86_64").write_text("left by an interrupted build\n")


def test_the_context_is_made_without_a_venv_after_an_interrupted_build(tmp_path: Path) -> None:
    python3 = shutil.which("python3", path="/usr/bin:/bin") or shutil.which("python3")
    if python3 is None:
        pytest.skip("no python3")
    tree = _checkout(tmp_path / "checkout")
    assert not (tree / ".venv").exists()
    _stale_build(tree)
    build = tmp_path / "build"
    _downloaded_sets(DEFAULT_BUILD, build)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON", "DOCKER_HOST", "VIRTUAL_ENV")}
    # no venv of this checkout on PATH: the script must find an interpreter by itself
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in p)
    env["MTASTS_LAB_BUILD_DIR"] = str(build)
    done = subprocess.run([str(tree / "scripts" / "build-images"), "--context-only"],
                          env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    context = build / "context"
    (wheel,) = (context / "wheel").glob("mtasts_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lab/senders/agent.py" in names and "fake_dns/server.py" in names
    assert "lab/lab" not in names  # nothing from the stale build/ folder
    # one set per Python and extras (lab/images.txt): the Debian 12 images' 3.11, the
    # Debian 13 ones' 3.13
    sets = {"deps-311-none", "deps-311-mitm", "deps-313-none", "deps-313-tlsrpt"}
    assert {p.name for p in context.iterdir() if p.name.startswith("deps-")} == sets
    for deps in sets:
        assert (context / deps / "requirements.txt").is_file()
        assert list((context / deps).glob("aiosmtpd-*.whl")), deps
        # every dependency is a wheel for that Python (no source archive to build there)
        assert not [p.name for p in (context / deps).iterdir()
                    if p.name.endswith((".tar.gz", ".zip"))], deps
    # the lab image's set carries mitmproxy (the policy-mitm attack in the policy container),
    # postfix-3.10's the TLSRPT daemons; the other senders' sets neither
    assert list((context / "deps-311-mitm").glob("mitmproxy-*.whl"))
    assert list((context / "deps-313-tlsrpt").glob("tlsrpt_reporter-*.whl"))
    assert not list((context / "deps-311-none").glob("mitmproxy-*.whl"))
    assert not list((context / "deps-313-none").glob("tlsrpt_reporter-*.whl"))
    # compiled dependencies come for the right interpreter
    assert list((context / "deps-313-none").glob("[Pp][Yy][Yy][Aa][Mm][Ll]-*-cp313-*.whl"))
    assert list((context / "deps-311-none").glob("[Pp][Yy][Yy][Aa][Mm][Ll]-*-cp311-*.whl"))
    # a Dockerfile for every row of the table
    assert {p.name for p in (context / "dockerfiles").iterdir()} == {"lab", "sender"}
    # the checkout is untouched by the build (its stale build/ is still what it was)
    assert (tree / "build" / "lib" / "lab").read_text() == "left by an interrupted build\n"


def test_a_wrong_option_is_refused_with_the_usage(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "--no-such-option"], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_HOST": "unix:///nonexistent",
                               "MTASTS_LAB_BUILD_DIR": str(tmp_path)},
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr and "--context-only" in done.stderr
