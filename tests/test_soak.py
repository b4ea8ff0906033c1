"""bench/soak.py: flips between rounds are found and told with the odd run's evidence; its
CPU hogs are gone when it ends, also on an exception."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _soak() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


soak = _soak()


def record(phase: str, verdict: str, observed: str | None, **extra: Any) -> dict[str, Any]:
    return {"scenario": "policy-fetch/mitm", "phase": phase, "sender": "reference",
            "verdict": verdict, "observed": observed, "duration_s": 0.5, "reason": "r",
            "why": "w", "fired": {}, "status": None, "evidence": [], **extra}


def write(tmp_path: Path, index: int, records: list[dict[str, Any]]) -> Path:
    path = tmp_path / f"round-{index:03d}.json"
    path.write_text(json.dumps({"runs": records}))
    return path


def test_a_flip_is_found_and_the_odd_run_told(tmp_path: Path) -> None:
    steady = record("learn", "pass", "delivered-tls")
    good = record("intercept", "pass", "not-delivered")
    odd = record("intercept", "inconclusive", "not-delivered", duration_s=2.1,
                 why="attack policy-mitm never fired",
                 evidence=[{"t": 10.0, "source": "runner", "kind": "inject"},
                           {"t": 12.04, "source": "sender", "kind": "status",
                            "status": "deferred"}])
    rounds = [soak.load_round(write(tmp_path, i, [steady, odd if i == 2 else good]), i)
              for i in (1, 2, 3)]
    found = soak.flips(rounds)
    assert list(found) == [("policy-fetch/mitm", "intercept", "reference")]
    text = "\n".join(soak.describe(*next(iter(found.items())), 3))
    assert "pass/not-delivered: 2, inconclusive/not-delivered: 1" in text
    assert "round 2: inconclusive" in text and "round 1:" not in text
    assert "attack policy-mitm never fired" in text
    assert "round-002.json" in text
    assert "+  2.040s sender status: status=deferred" in text


def test_same_verdict_other_outcome_is_a_flip_and_a_missing_phase_too(tmp_path: Path) -> None:
    a = soak.load_round(write(tmp_path, 1, [record("x", "known-failure", "delivered-tls"),
                                            record("y", "pass", "delivered-tls")]), 1)
    b = soak.load_round(write(tmp_path, 2, [record("x", "known-failure",
                                                   "delivered-plaintext")]), 2)
    found = soak.flips([a, b])
    assert [k[1] for k in found] == ["x", "y"]
    assert "missing from 1 round(s)" in soak.describe(("policy-fetch/mitm", "y", "reference"),
                                                      found[("policy-fetch/mitm", "y",
                                                             "reference")], 2)[0]
    assert soak.flips([a, a]) == {}


def test_hogs_are_killed_by_pid_on_an_exception() -> None:
    with pytest.raises(RuntimeError), soak.cpu_hogs(1, 60) as pids:
        [pid] = pids
        os.kill(pid, 0)  # alive
        raise RuntimeError("the soak failed")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_bad_values_are_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        soak.parse_args(["--rounds", "0"])
    assert exc.value.code == 2
