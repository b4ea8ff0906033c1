"""Run directories: a private temporary directory per run (it holds the run's CA keys) that
names its owner process, so ``mtasts-lab down`` can remove the ones a killed run left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from lab.backends.netns_state import ProcRef

RUN_DIR_PREFIX = "mtasts-lab-run-"
_OWNER = "owner.json"


def make_run_dir() -> Path:
    """A private run directory that names its owner, so ``mtasts-lab down`` can remove it
    when the run was killed before it could clean up (it holds the run's CA keys)."""
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    me = ProcRef.of(os.getpid())
    (run_dir / _OWNER).write_text(json.dumps({"pid": me.pid, "start": me.start}))
    return run_dir


def cleanup_run_dirs() -> list[str]:
    """Remove the run directories whose owner process is gone; return them."""
    removed = []
    for run_dir in sorted(Path(tempfile.gettempdir()).glob(RUN_DIR_PREFIX + "*")):
        try:
            owner = json.loads((run_dir / _OWNER).read_text())
            alive = ProcRef(int(owner["pid"]), owner.get("start")).alive()
        except (OSError, ValueError, KeyError, TypeError):
            alive = False  # no readable owner: an interrupted run of ours
        if not alive and run_dir.is_dir() and not run_dir.is_symlink():
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(str(run_dir))
    return removed
