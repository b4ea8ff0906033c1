"""Placeholders of the command sender: filled, exported, checked, documented."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.cli import main
from lab.events import EventLog
from lab.senders import placeholders
from lab.senders.base import OutgoingMessage, SenderEnv
from lab.senders.generic import CommandSender, SmtpSubmitSender
from lab.senders.placeholders_doc import table
from lab.world import Topology

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = Topology("127.0.0.9", "127.0.0.8", ("127.0.0.20", "127.0.0.21"),
                    ("127.0.0.30", "127.0.0.31"), "127.0.0.40")


def _env(tmp_path: Path, events: EventLog) -> SenderEnv:
    return SenderEnv(dns=("127.0.0.9", 5353), smtp_port=2525, https_port=8443,
                     ca_file=tmp_path / "ca.pem", workdir=tmp_path / "work", emit=events.emit,
                     topology=TOPOLOGY)


def test_every_placeholder_filled_and_exported(tmp_path: Path) -> None:
    words = " ".join(f"{name}={{{name}}}" for name in placeholders.PLACEHOLDERS)
    script = ("import os, sys; print(' '.join(sys.argv[1:])); "
              "print(' '.join(k + '=' + v for k, v in sorted(os.environ.items()) "
              "if k.startswith('MTASTS_LAB_') and k != 'MTASTS_LAB_COMMAND'))")
    cmd = f"{sys.executable} -c \"{script}\" {words}"

    async def scenario() -> tuple[list[str], OutgoingMessage]:
        events = EventLog()
        sender = CommandSender(cmd=cmd, timeout=20)
        await sender.start(_env(tmp_path, events))
        probe = OutgoingMessage.probe("rcpt@victim.test")
        await sender.inject(probe)
        assert await events.wait_for(lambda es: [e for e in es if e.kind == "finished"], 0,
                                     time.monotonic() + 20)
        await sender.close()
        return [str(e.get("line")) for e in events.since(0) if e.kind == "log"], probe

    lines, probe = asyncio.run(scenario())
    args = dict(w.split("=", 1) for w in lines[0].split(" "))
    exported = dict(w.split("=", 1) for w in lines[1].split(" "))
    assert args["rcpt"] == "rcpt@victim.test" and args["message_id"] == probe.message_id
    assert args["ca_file"] == str(tmp_path / "ca.pem")
    assert (args["dns_host"], args["dns_port"]) == ("127.0.0.9", "5353")
    assert args["mx"] == "127.0.0.20:2525" and args["mx_hosts"] == "127.0.0.20,127.0.0.21"
    assert Path(args["message_file"]).read_bytes().count(probe.message_id.encode()) == 1
    assert exported == {f"MTASTS_LAB_{k.upper()}": v for k, v in args.items()}


@pytest.mark.parametrize("cmd, message", [
    ("swaks --server {mx} --tls-ca-path {cafile}", "unknown placeholder {cafile}"),
    ("echo {rcpt!r}", "without format spec or conversion"),
    ("echo {rcpt", "expected '}'"),
    ("echo 'open", "No closing quotation"),
])
def test_bad_commands_refused(cmd: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        CommandSender(cmd=cmd)


def test_literal_braces_allowed() -> None:
    CommandSender(cmd="sh -c 'echo {{}} {rcpt}'")


@pytest.mark.parametrize("argv, message", [
    (["--sender", "command", "--sender-opt", "cmd=echo {ca}"], "unknown placeholder {ca}"),
    (["--sender", "command", "--sender-opt", "cmd=echo", "--sender-opt", "done=never"],
     "done 'never'"),
    (["--sender", "smtp", "--sender-opt", "port=abc"],
     "--sender-opt port=abc: must be a whole number"),
    (["--sender", "command", "--sender-opt", "cmd=echo", "--timeout", "0"], "--timeout 0"),
])
def test_cli_refuses_before_the_run(argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *argv, "baseline/enforce-valid-tls"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_smtp_sender_writes_lab_env(tmp_path: Path) -> None:
    async def scenario() -> None:
        sender = SmtpSubmitSender(port=25)
        await sender.start(_env(tmp_path, EventLog()))

    asyncio.run(scenario())
    text = (tmp_path / "work" / "lab.env").read_text()
    assert "MTASTS_LAB_DNS_PORT=5353\n" in text and "MTASTS_LAB_MX=127.0.0.20:2525\n" in text
    assert "MTASTS_LAB_RCPT" not in text


def test_document_holds_the_generated_table() -> None:
    doc = (ROOT / "docs" / "BRING-YOUR-OWN-MTA.md").read_text()
    start = doc.index("-->\n", doc.index("<!-- placeholders:")) + 4
    assert doc[start:doc.index("<!-- end placeholders -->")] == table()


@given(st.text(max_size=60))
def test_any_template_is_checked_or_refused(template: str) -> None:
    try:
        placeholders.check(template)
    except placeholders.PlaceholderError as exc:
        assert "\n" not in str(exc)  # one line, whatever the template
        return
    assert set(placeholders.fields(template)) <= placeholders.PLACEHOLDERS.keys()
    # a checked template always fills: no KeyError or ValueError in the middle of a run
    placeholders.fill(template, dict.fromkeys(placeholders.PLACEHOLDERS, "v"))


def test_docker_exec_gets_the_variables_by_name(tmp_path: Path) -> None:
    """docker exec hands a program none of its own environment: each variable is named with
    -e before the container (the value travels in docker's environment, not in argv)."""
    env = SenderEnv(dns=("10.254.0.2", 53), smtp_port=25, https_port=443,
                    ca_file=tmp_path / "ca.pem", workdir=tmp_path, emit=EventLog().emit,
                    topology=TOPOLOGY,
                    exec_prefix=("docker", "-H", "unix:///d.sock", "exec", "-i", "ctr"),
                    exec_env_flag="-e")
    lab_env = {"MTASTS_LAB_RCPT": "user@victim.test", "MTASTS_LAB_MX": "10.254.0.11:25"}
    assert env.exec_argv(["prog", "{x}"], lab_env) == [
        "docker", "-H", "unix:///d.sock", "exec", "-i", "-e", "MTASTS_LAB_RCPT", "-e",
        "MTASTS_LAB_MX", "ctr", "prog", "{x}"]
    netns = SenderEnv(dns=("10.0.0.2", 53), smtp_port=25, https_port=443,
                      ca_file=tmp_path / "ca.pem", workdir=tmp_path, emit=EventLog().emit,
                      topology=TOPOLOGY, exec_prefix=("ip", "netns", "exec", "sender"))
    assert netns.exec_argv(["prog"], lab_env) == ["ip", "netns", "exec", "sender", "prog"]
