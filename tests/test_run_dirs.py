"""Run directories hold the run's CA keys: a killed run's directory is removed by ``down``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lab.cli import main
from lab.run_dirs import RUN_DIR_PREFIX, cleanup_run_dirs, make_run_dir


def test_a_live_runs_directory_is_kept() -> None:
    run_dir = make_run_dir()
    try:
        assert run_dir.name.startswith(RUN_DIR_PREFIX)
        assert json.loads((run_dir / "owner.json").read_text())["pid"] == os.getpid()
        assert str(run_dir) not in cleanup_run_dirs()
        assert run_dir.is_dir()
    finally:
        (run_dir / "owner.json").unlink()
        run_dir.rmdir()


def test_a_dead_runs_directory_is_removed_by_down(capsys: object) -> None:
    made = subprocess.run(
        [sys.executable, "-c", "from lab.run_dirs import make_run_dir; d = make_run_dir();"
         "(d / 'pki').mkdir(); (d / 'pki' / 'lab-ca.key').write_text('k'); print(d)"],
        capture_output=True, text=True, check=True, timeout=60)
    run_dir = Path(made.stdout.strip())
    assert run_dir.is_dir()  # its owner has exited without cleaning up, as after kill -9
    assert main(["down"]) == 0
    assert not run_dir.exists()
