"""The catalogue lives in the top-level scenarios/ folder and ships inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lab.scenario import catalogue_root, load_catalogue

ROOT = Path(__file__).resolve().parent.parent


def test_the_checkout_reads_the_top_level_folder() -> None:
    assert catalogue_root() == ROOT / "scenarios"
    assert len(load_catalogue()) == len(list((ROOT / "scenarios").rglob("*.yaml")))


def test_no_scenario_is_left_in_the_old_place() -> None:
    # a file merged into lab/scenarios/ would be in the source tree but in no run
    old = ROOT / "lab" / "scenarios"
    assert not old.exists() or not list(old.rglob("*.yaml")), \
        f"move {old}/* into {ROOT / 'scenarios'}/"


@pytest.mark.integration
def test_an_installed_wheel_finds_every_scenario_from_another_directory(tmp_path: Path) -> None:
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # built from a copy: a build/ or egg-info left in the checkout is never read
    src = tmp_path / "src"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                           check=True, capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("mtasts_lab-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("lab/scenarios/")}
    expected = {"lab/scenarios/" + p.relative_to(ROOT / "scenarios").as_posix()
                for p in (ROOT / "scenarios").rglob("*.yaml")}
    assert shipped == expected
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", "import lab, lab.scenario as s; print(lab.__file__);"
         "print(s.catalogue_root()); print(len(s.load_catalogue()))"],
        cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    assert probe[0].startswith(str(target)) and probe[1] == str(target / "lab" / "scenarios")
    assert int(probe[2]) == len(expected)
    listed = subprocess.run([sys.executable, "-m", "lab.cli", "list", "scenarios"], cwd=elsewhere,
                            env=env, check=True, capture_output=True, text=True).stdout
    for scenario in load_catalogue():
        assert scenario.id in listed
