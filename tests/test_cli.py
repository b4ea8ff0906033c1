"""The command line: exit codes, one-line errors, the results contract, reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.cli import main
from lab.narrate import narrate
from lab.run_record import Record

REQUIRED = {"scenario", "phase", "sender", "backend", "expected", "observed", "verdict",
            "level", "attack_fired", "duration_s", "reason", "refs"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_scenario_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    write(tmp_path, "theme/broken.yaml", """
summary: broken on purpose
refs: [x]
teach: t
world: {policy: {mode: enforced}}
phases: [{expect: {outcome: delivered-tls}}]
""")
    out = cli("run", "--scenarios-dir", str(tmp_path), "--json", str(tmp_path / "o.json"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "theme/broken.yaml" in lines[0] and "world.policy.mode" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("args", [
    ["run", "--sender", "nobody"],
    ["run", "--backend", "moon"],
    ["run", "no/such-scenario"],
    ["run", "--json", "/nonexistent-dir/out.json"],
    ["run", "--sender-opt", "colour=blue"],
    ["explain", "no/such-scenario"],
])
def test_bad_usage_exits_2_with_one_line(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 2, out
    assert out.stderr.startswith("mtasts-lab: error: ") and "Traceback" not in out.stderr


def test_list_comes_from_the_code() -> None:
    attacks = cli("list", "attacks").stdout
    for name in ("passthrough", "strip-starttls", "swap-certificate"):
        assert name in attacks
    assert "certificate:" in attacks  # options are listed with their types
    assert "reference" in cli("list", "senders").stdout
    assert "loopback" in cli("list", "backends").stdout
    assert "starttls/strip-starttls-enforce" in cli("list", "scenarios").stdout


def test_explain_tells_the_story() -> None:
    out = cli("explain", "starttls/strip-starttls-enforce")
    assert out.returncode == 0
    for words in ("What the attacker does", "What a compliant sender does", "RFC 8461",
                  "Known failures", "opportunistic"):
        assert words in out.stdout


@pytest.mark.integration
def test_run_writes_the_results_contract(tmp_path: Path) -> None:
    out = [tmp_path / n for n in ("r.json", "r.xml", "r.html")]
    code = main(["run", "starttls/strip-starttls-enforce", "-q", "--json", str(out[0]),
                 "--junit", str(out[1]), "--html", str(out[2])])
    assert code == 0
    doc = json.loads(out[0].read_text())
    assert doc["exit_code"] == 0 and doc["backend"] == "loopback"
    runs = doc["runs"]
    assert {(r["sender"], r["phase"]) for r in runs} == {
        ("reference", "baseline"), ("reference", "prime"), ("reference", "phase1"),
        ("opportunistic", "baseline"), ("opportunistic", "prime"), ("opportunistic", "phase1")}
    for r in runs:
        assert set(r) >= REQUIRED
    attack = {r["sender"]: r for r in runs if r["phase"] == "phase1"}
    assert attack["reference"]["verdict"] == "pass"
    assert attack["reference"]["attack_fired"] is True
    assert attack["reference"]["reason"].startswith("4.7")
    assert attack["opportunistic"]["verdict"] == "known-failure"
    assert attack["opportunistic"]["observed"] == "delivered-plaintext"
    suites = ET.parse(out[1]).getroot().findall("testsuite")
    assert {s.get("name") for s in suites} == {"mtasts-lab.reference",
                                               "mtasts-lab.opportunistic"}
    assert sum(int(s.get("skipped", "0")) for s in suites) == 1
    page = out[2].read_text()
    assert "strip-starttls" in page and "removed STARTTLS" in page


# ---------------------------------------------------------------- issue 13's small breakages

@pytest.mark.parametrize("what", ["scenarios", "checklist"])  # more and less than a buffer
def test_list_into_a_closed_pipe_is_quiet(what: str) -> None:
    """`mtasts-lab list scenarios | head -1`: the reader has gone before the first line."""
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "list", what],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child has printed anything: its first write hits EPIPE
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err and err == ""


def test_list_piped_to_head_in_a_shell() -> None:
    out = subprocess.run(["bash", "-o", "pipefail", "-c",
                          f"'{sys.executable}' -m lab.cli list scenarios | head -1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1 and out.stderr == ""


def test_list_checklist_prints_every_id_with_level_and_section() -> None:
    from lab.checklist import CHECKLIST

    out = cli("list", "checklist")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(CHECKLIST)
    for item, line in zip(CHECKLIST, lines, strict=True):
        words = line.split()
        assert words[0] == item.id and words[1] == item.level
        assert item.section in line and item.text in line


def test_install_hint_fits_a_checkout_and_an_install(tmp_path: Path) -> None:
    from lab.attacks.policy_mitm import PolicyMitm
    from lab.extras import install_hint

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mtasts-lab"\n')
    assert install_hint("mitm", tmp_path, cwd=tmp_path) == "pip install -e '.[mitm]'"
    assert install_hint("mitm", tmp_path, cwd=tmp_path.parent) == \
        f"pip install -e '{tmp_path}[mitm]'"
    installed = tmp_path / "site-packages"
    installed.mkdir()
    assert install_hint("mitm", installed) == "pip install 'mtasts-lab[mitm]'"
    # this test runs from the checkout, so the attack's own hint is the checkout's
    hint = dict(PolicyMitm.requires)["mitmproxy"]
    assert hint.startswith("pip install -e '") and hint.endswith("[mitm]'")


def _record(evidence: list[dict[str, object]], why: str) -> Record:
    return Record(scenario="s/x", phase="phase1", sender="reference", backend="loopback",
                  expected=["not-delivered"], observed="not-delivered", verdict="pass",
                  level="must", attack_fired=None, duration_s=0.1, reason="", refs=[],
                  why=why, evidence=evidence)


def test_show_tells_each_sender_line_once() -> None:
    said = "deferred: 4.7.5 mx1.victim.test does not offer STARTTLS"
    text = narrate(_record([
        {"t": 1.0, "source": "sender", "kind": "log", "line": f"<m1@sender.test>: {said}"},
        {"t": 1.1, "source": "sender", "kind": "status", "status": "deferred",
         "reason": "4.7.5 mx1.victim.test does not offer STARTTLS"},
        {"t": 1.2, "source": "sender", "kind": "log", "line": "something else"},
    ], why="observed not-delivered"))
    assert text.count(said) == 1, text
    assert "something else" in text
    assert text.count("observed not-delivered") == 1, text
    verdict = narrate(_record([], why="the attack never fired")).splitlines()[-1]
    assert verdict.endswith("observed not-delivered. the attack never fired")


@pytest.mark.integration
def test_keep_says_where_and_show_repeats_nothing() -> None:
    out = cli("run", "baseline/enforce-valid-tls", "--sender", "reference", "--keep", "--show",
              "-q")
    kept = [line for line in out.stderr.splitlines() if "run directory is kept" in line]
    try:
        assert out.returncode == 0, out.stderr
        assert len(kept) == 1, out.stderr
        run_dir = Path(kept[0].rsplit(": ", 1)[1])
        assert (run_dir / "pki").is_dir()
        shown = [line.strip() for line in out.stdout.splitlines()
                 if line.startswith("  SENDER")]
        assert shown and len(shown) == len(set(shown)), shown
        verdict = next(line for line in out.stdout.splitlines() if "VERDICT" in line)
        assert verdict.count("observed delivered-tls") == 1, verdict
    finally:
        for line in kept:
            shutil.rmtree(line.rsplit(": ", 1)[1], ignore_errors=True)


def test_typed_sender_options() -> None:
    from lab.sender_options import OptionError, typed_kwargs
    from lab.senders.generic import CommandSender, SmtpSubmitSender
    from lab.senders.postfix import PostfixSender

    assert typed_kwargs(SmtpSubmitSender, {"port": "2525", "host": "127.0.0.1"}) == {
        "port": 2525, "host": "127.0.0.1"}
    assert typed_kwargs(CommandSender, {"timeout": "2.5", "cmd": "true"}) == {
        "timeout": 2.5, "cmd": "true"}
    assert typed_kwargs(PostfixSender, {"keep_deferred": "false"}) == {"keep_deferred": False}
    for sender, option in ((SmtpSubmitSender, {"port": "25x"}),
                           (CommandSender, {"timeout": "inf"}),
                           (PostfixSender, {"keep_deferred": "maybe"})):
        with pytest.raises(OptionError):
            typed_kwargs(sender, option)


def test_known_failures_must_name_a_known_sender(tmp_path: Path) -> None:
    from lab import senders
    from lab.scenario import ScenarioError, load_file

    assert senders.is_known("reference") and not senders.is_known("refrence")
    path = write(tmp_path, "kf.yaml", """
summary: s
refs: [x]
teach: t
phases: [{attacks: [strip-starttls], expect: {outcome: not-delivered}}]
known_failures: {postfx: a typo}
""")
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    assert info.value.field == "known_failures.postfx"
    assert "unknown sender (known: " in str(info.value)
    for name in senders.known_names():
        assert name in str(info.value)


def test_known_failures_for_one_phase_apply_to_that_phase_alone(tmp_path: Path) -> None:
    from lab import senders
    from lab.scenario import ScenarioError, load_file
    from lab.senders import Sender

    senders.load_all()
    body = """
summary: s
refs: [x]
teach: t
phases:
  - {name: strip, attacks: [strip-starttls], expect: {outcome: not-delivered}}
  - {name: expired, attacks: [{swap-certificate: {certificate: expired}}],
     expect: {outcome: not-delivered}}
"""
    scenario = load_file(write(tmp_path, "kf.yaml", body + """
known_failures: {"exim [expired]": one phase, chasquid: every phase}
"""))
    exim, chasquid = Sender.registry.get("exim"), Sender.registry.get("chasquid")
    exim498 = Sender.registry.get("exim-4.98")  # held to exim's known failures
    assert exim.known_failure(scenario.known_failures, "expired") == "one phase"
    assert exim.known_failure(scenario.known_failures, "strip") is None
    assert exim498.known_failure(scenario.known_failures, "expired") == "one phase"
    assert chasquid.known_failure(scenario.known_failures, "strip") == "every phase"
    for key, words in (('"exim [nope]"', "no phase 'nope' that known failures apply to"),
                       ('"exm [strip]"', "unknown sender")):
        with pytest.raises(ScenarioError) as info:
            load_file(write(tmp_path, "bad.yaml", body + f"known_failures: {{{key}: x}}\n"))
        assert words in str(info.value)
        assert info.value.field == f"known_failures.{key.strip(chr(34))}"


def test_all_real_is_every_real_mta_the_backend_and_machine_can_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    from lab import senders
    from lab.backends.base import Backend
    from lab.cli_checks import UsageError, all_real
    from lab.senders.base import Sender

    senders.load_all()

    class Here(Backend):  # a machine with Postfix only (not registered: no name)
        @classmethod
        def sender_missing(cls, sender: type[Sender]) -> list[str]:
            return [] if sender.name in ("postfix", "chasquid") else ["not installed"]

    assert all_real(["all-real"], "netns", Here) == ["chasquid", "postfix"]
    err = capsys.readouterr().err
    assert "left out postfix-pypi (not installed)" in err and "reference" not in err
    # named senders stay first, none twice; compose-only MTAs are not netns ones
    assert all_real(["postfix", "all-real"], "netns", Here) == ["postfix", "chasquid"]
    assert "exim" not in capsys.readouterr().err
    with pytest.raises(UsageError, match="no real MTA can run on --backend loopback"):
        all_real(["all-real"], "loopback", Here)
