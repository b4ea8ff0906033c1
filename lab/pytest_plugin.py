"""pytest plugin (entry point ``pytest11``): scenarios against a sender, one test per phase.

A file named ``mtasts_lab*.yaml`` in a test folder says what to run::

    sender: command                 # any name of mtasts-lab list senders (default: reference)
    sender_options: {cmd: "swaks --server {mx} --to {rcpt} ..."}
    backend: loopback               # default
    timeout: 10                     # optional, seconds per phase
    expect: swaks-expect.yaml       # optional, relative to this file (run --expect)
    scenarios: [starttls/strip-starttls-enforce, certificates]

Each phase of each scenario becomes one test (``FILE::SCENARIO[PHASE]``). The lab runs once
per file, for the selected tests only, when the first of them runs. A phase that fails the run
fails its test with the narrated transcript; a known failure is an xfail, a skipped phase a
skip. Only public pytest hooks and node APIs are used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lab.run_record import Record
    from lab.scenario import Scenario

FIELDS = ("sender", "sender_options", "backend", "timeout", "expect", "scenarios")


class LabFileError(Exception):
    """The YAML file is malformed: reported as a collection error naming the field."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if file_path.suffix == ".yaml" and file_path.name.startswith("mtasts_lab"):
        return LabFile.from_parent(parent, path=file_path)
    return None


class LabFile(pytest.File):
    def _config(self) -> dict[str, Any]:
        import yaml

        data = yaml.safe_load(self.path.read_text()) or {}
        if not isinstance(data, dict):
            raise LabFileError(f"{self.path}: expected a mapping")
        unknown = [k for k in data if k not in FIELDS]
        if unknown:
            raise LabFileError(f"{self.path}: unknown field {unknown[0]!r} "
                               f"(known: {', '.join(FIELDS)})")
        if not isinstance(data.get("scenarios"), list) or not data["scenarios"]:
            raise LabFileError(f"{self.path}: scenarios: expected a list of ids or themes")
        return data

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        from lab.expectations import ExpectationsError
        from lab.scenario import ScenarioError

        if isinstance(excinfo.value, LabFileError | ScenarioError | ExpectationsError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def collect(self) -> Iterator[LabPhase]:
        from lab.scenario import select

        self.settings = self._config()
        self.scenarios = self._with_expectations(select([str(s) for s in
                                                         self.settings["scenarios"]]))
        self.records: dict[tuple[str, str], Record] | None = None
        for scenario in self.scenarios:
            phases = ([scenario.baseline] if scenario.baseline else []) + list(scenario.phases)
            for phase in phases:
                yield LabPhase.from_parent(self, name=f"{scenario.id}[{phase.name}]",
                                           scenario_id=scenario.id, phase=phase.name)

    def _with_expectations(self, scenarios: list[Scenario]) -> list[Scenario]:
        from lab.expectations import Expectations, load
        from lab.scenario import load_catalogue

        expect = self.settings.get("expect")
        self.expectations = (load(self.path.parent / str(expect),
                                  load_catalogue())
                             if expect else Expectations())
        return self.expectations.apply(scenarios, [self.sender])

    @property
    def sender(self) -> str:
        return str(self.settings.get("sender", "reference"))

    def run_lab(self) -> dict[tuple[str, str], Record]:
        """Run the scenarios of this file's selected tests, once."""
        if self.records is not None:
            return self.records
        from lab import senders
        from lab.runner import RunOptions, run_catalogue
        from lab.senders.base import Sender

        senders.load_all()
        wanted = {i.scenario_id for i in self.session.items
                  if isinstance(i, LabPhase) and i.parent is self}
        options = {str(k): str(v) for k, v in (self.settings.get("sender_options") or {}).items()}
        check = getattr(Sender.registry.get(self.sender), "check_options", None)
        problem = check(options) if check else ""
        if problem:
            raise LabFileError(f"{self.path}: sender_options: {problem}")
        timeout = self.settings.get("timeout")
        run_options = RunOptions(backend=str(self.settings.get("backend", "loopback")),
                                 senders=[self.sender], sender_options=options,
                                 timeout_s=float(timeout) if timeout else None,
                                 skip=dict(self.expectations.skip))
        records = asyncio.run(run_catalogue(
            [s for s in self.scenarios if s.id in wanted], run_options))
        self.records = {(r.scenario, r.phase): r for r in records}
        return self.records


class PhaseFailed(Exception):
    def __init__(self, record: Record) -> None:
        super().__init__(f"{record.verdict}: {record.why}")
        self.record = record


class LabPhase(pytest.Item):
    def __init__(self, *, scenario_id: str, phase: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario_id, self.phase = scenario_id, phase

    def runtest(self) -> None:
        assert isinstance(self.parent, LabFile)
        record = self.parent.run_lab().get((self.scenario_id, self.phase))
        if record is None:
            raise LabFileError(f"{self.scenario_id} [{self.phase}]: the lab gave no verdict")
        if record.verdict == "skipped":
            pytest.skip(record.why)
        if record.verdict == "known-failure":
            pytest.xfail(record.why)
        if record.fails_run:
            raise PhaseFailed(record)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, PhaseFailed):
            from lab.narrate import narrate

            r = excinfo.value.record
            return (f"{r.sender}: {r.scenario} [{r.phase}]: {r.verdict} (expected "
                    f"{' or '.join(r.expected)}, observed {r.observed}): {r.why}\n\n"
                    + narrate(r))
        if isinstance(excinfo.value, LabFileError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"mtasts-lab {self.scenario_id} [{self.phase}]"
