"""The CI examples under docs/ci/ run: their ``run:`` / ``script:`` commands are extracted and
executed here, shards and merge included, so they cannot rot.

What runs for real: every shell command of every job (the install into a fresh venv, each
matrix shard or parallel job, the merge). What is emulated: the ``uses:`` steps of GitHub
(checkout: a copy of this tree; setup-python: the fresh venv; upload/download-artifact:
copying the folders) and GitLab's artifact passing between stages. The install command,
the same in every job, runs once per file. The selection is narrowed through the files' own
``SCENARIOS`` variable to keep the test short.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import results_schema
from lab.scenario import select

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SELECTION = "baseline/enforce-valid-tls starttls/strip-starttls-enforce"
PHASES = sum(len(s.phases) + (1 if s.baseline else 0)
             for s in select(SELECTION.split())) * 2  # per sender: its phases and baseline
_SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache",
                               ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist")


class Machine:
    """One fresh venv (the "runner"), shell commands run in job folders with it on PATH."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        self.installed: set[str] = set()
        self.log: list[str] = []

    def checkout(self, job: str) -> Path:
        work = self.tmp / "jobs" / job
        shutil.copytree(ROOT, work, ignore=_SKIP)
        return work

    def sh(self, command: str, cwd: Path, env: Mapping[str, str]) -> None:
        if " pip install " in f" {command} ":
            if command in self.installed:
                return
            self.installed.add(command)
        full = {**os.environ, **env, "PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}",
                "VIRTUAL_ENV": str(self.venv)}
        full.pop("PYTHONPATH", None)
        out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=cwd,
                             env=full, capture_output=True, text=True, timeout=900,
                             check=False)
        self.log.append(f"$ {command}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        assert out.returncode == 0, f"{command!r} failed:\n{out.stdout}\n{out.stderr}"


def _expand_github(text: str, matrix: Mapping[str, Any]) -> str:
    def value(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        assert expr.startswith("matrix."), f"unknown expression {expr!r} in the example"
        return str(matrix[expr.removeprefix("matrix.")])
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _matrix(job: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if not matrix:
        yield {}
        return
    ((name, values),) = matrix.items()
    for v in values:
        yield {name: v}


def _github_job(machine: Machine, name: str, job: Mapping[str, Any], env: dict[str, str],
                artifacts: Path) -> None:
    for entry in _matrix(job):
        work = machine.checkout(f"gh-{name}-{'-'.join(map(str, entry.values()))}")
        for step in job["steps"]:
            step_env = {**env, **{k: _expand_github(str(v), entry)
                                  for k, v in (step.get("env") or {}).items()}}
            uses, args = step.get("uses", ""), step.get("with") or {}
            if "run" in step:
                machine.sh(_expand_github(step["run"], entry), work, step_env)
            elif uses.startswith("actions/upload-artifact@"):
                target = artifacts / _expand_github(args["name"], entry)
                for line in str(args["path"]).split():
                    src = work / line
                    if src.is_dir():
                        shutil.copytree(src, target, dirs_exist_ok=True)
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy(src, target)
            elif uses.startswith("actions/download-artifact@"):
                pattern = args.get("pattern", "*")
                for found in sorted(artifacts.glob(pattern)):
                    shutil.copytree(found, work / args["path"] / found.name)
            else:
                assert uses.startswith(("actions/checkout@", "actions/setup-python@")), uses


def _check_report(folder: Path, prefix: str) -> None:
    doc = json.loads((folder / f"{prefix}.json").read_text())
    assert results_schema.errors(doc) == []
    assert len(doc["runs"]) == PHASES and doc["exit_code"] == 0
    assert len(doc["merged_from"]) == 4
    assert (folder / f"{prefix}.xml").read_text().count("<testcase ") == PHASES
    assert (folder / f"{prefix}.html").read_text().count("<svg class='seq'") == PHASES


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    return Machine(tmp_path_factory.mktemp("ci"))


def test_github_actions_example_runs(machine: Machine) -> None:
    flow = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text())
    env = {**{k: str(v) for k, v in flow["env"].items()}, "SCENARIOS": SELECTION}
    jobs = flow["jobs"]
    assert len(jobs["shard"]["strategy"]["matrix"]["shard"]) == int(env["SHARDS"])
    assert jobs["report"]["needs"] == "shard"
    artifacts = machine.tmp / "gh-artifacts"
    for name in ("shard", "report"):
        _github_job(machine, name, jobs[name], env, artifacts)
    shards = sorted(p.name for p in artifacts.glob("mtasts-lab-shard-*"))
    assert shards == [f"mtasts-lab-shard-{k}" for k in range(1, 5)]
    for shard_dir in shards:
        assert {p.name for p in (artifacts / shard_dir).iterdir()} == {
            "results.json", "junit.xml", "report.html"}
    _check_report(artifacts / "mtasts-lab-report", "mtasts-lab")


def test_gitlab_ci_example_runs(machine: Machine) -> None:
    flow = yaml.safe_load((ROOT / "docs" / "ci" / "gitlab-ci.yml").read_text())
    env = {**{k: str(v) for k, v in flow["variables"].items()}, "SCENARIOS": SELECTION}
    test_job, report_job = flow["mtasts-lab"], flow["mtasts-lab-report"]
    assert report_job["needs"] == ["mtasts-lab"] and flow["stages"] == ["test", "report"]
    total = int(test_job["parallel"])
    collected = machine.tmp / "gl-artifacts"
    for index in range(1, total + 1):
        work = machine.checkout(f"gl-test-{index}")
        job_env = {**env, "CI_NODE_INDEX": str(index), "CI_NODE_TOTAL": str(total)}
        for line in test_job["script"]:
            machine.sh(line, work, job_env)
        for path in test_job["artifacts"]["paths"]:
            shutil.copytree(work / path, collected / path, dirs_exist_ok=True)
        junit = list((work / "results").glob("junit-*.xml"))
        assert len(junit) == 1  # artifacts:reports:junit finds it
    work = machine.checkout("gl-report")
    shutil.copytree(collected, work, dirs_exist_ok=True)
    for line in report_job["script"]:
        machine.sh(line, work, env)
    for path in report_job["artifacts"]["paths"]:
        assert (work / path).is_file()
    _check_report(work, "mtasts-lab")
