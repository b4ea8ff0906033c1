"""The container agent's command socket: what the compose place uses instead of
``docker exec`` (real processes, a real unix socket, the control API's transport)."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from lab.control import ControlClient, ControlError, ControlSocket
from lab.senders.agent import TIMED_OUT, Agent, command_socket, run_command
from lab.senders.place import Daemon, ProcessPlace
from lab.senders.postfix import PostfixSender


def test_run_command_merges_output_and_passes_stdin() -> None:
    rc, out = asyncio.run(run_command(["sh", "-c", "cat; echo err >&2; exit 3"],
                                      b"from stdin\n", 5))
    assert rc == 3
    assert out == "from stdin\nerr\n"


def test_run_command_without_stdin_reads_nothing() -> None:
    rc, out = asyncio.run(run_command(["sh", "-c", "cat; echo done"], None, 5))
    assert (rc, out) == (0, "done\n")


def test_run_command_kills_at_its_timeout_with_the_children() -> None:
    started = time.monotonic()
    rc, out = asyncio.run(run_command(["sh", "-c", "sleep 30 & echo started; wait"], None,
                                      0.5))
    assert rc == TIMED_OUT
    assert out.startswith("started\n") and "no exit within 0.5 s" in out
    assert time.monotonic() - started < 10  # the grandchild was killed too (its pipe closed)


def test_run_command_names_a_missing_program() -> None:
    rc, out = asyncio.run(run_command(["/nonexistent/program"], None, 5))
    assert rc == 127 and "/nonexistent/program" in out


async def _serve_and_ask(sock: Path, *requests: tuple[str, str, object]) -> list[object]:
    agent = Agent(PostfixSender())
    server = ControlSocket(agent.handle)
    await server.serve(sock)
    client = ControlClient(sock)
    answers: list[object] = []
    try:
        for method, target, body in requests:
            try:
                answers.append(await client.request(method, target, body))
            except ControlError as exc:
                answers.append(str(exc))
    finally:
        await server.close()
    return answers


def test_the_socket_runs_commands_and_says_which_sender(tmp_path: Path) -> None:
    sock = command_socket(tmp_path, "postfix")
    assert sock.name == "agent-postfix.sock"
    health, ran, bad, missing = asyncio.run(_serve_and_ask(
        sock,
        ("GET", "/health", None),
        ("POST", "/run", {"argv": ["sh", "-c", "tr a-z A-Z"], "timeout": 5,
                          "stdin": base64.b64encode(b"message\n").decode()}),
        ("POST", "/run", {"argv": [], "timeout": 5}),
        ("GET", "/nothing", None)))
    assert isinstance(health, dict) and health["sender"] == "postfix"
    assert ran == {"rc": 0, "output": "MESSAGE\n"}
    assert isinstance(bad, str) and "400" in bad and "argv" in bad
    assert isinstance(missing, str) and "404" in missing


@pytest.mark.parametrize("argv", [["ok", 1], "sh -c true", None])
def test_the_socket_refuses_an_argv_that_is_not_a_list_of_strings(tmp_path: Path,
                                                                   argv: object) -> None:
    (answer,) = asyncio.run(_serve_and_ask(command_socket(tmp_path, "postfix"),
                                           ("POST", "/run", {"argv": argv})))
    assert isinstance(answer, str) and "400" in answer


class _TwoDaemons:
    """An MTA of two shell daemons that say their PID when up."""

    name = "toy"

    def prepare(self, root: Path, ca_file: Path) -> None:
        (root / "prepared").write_text("once\n")

    def daemons(self, root: Path) -> list[Daemon]:
        up = ("sh", "-c", "echo up $$; exec sleep 60")
        return [Daemon("first", up, ready="up"), Daemon("second", up, ready="up")]


def test_restart_starts_one_daemon_over_in_the_same_instance(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []

    async def go() -> tuple[list[object], Path, bool]:
        agent = Agent(PostfixSender())
        agent.place = ProcessPlace(base=tmp_path / "instances", fixed_root=True)
        ca = tmp_path / "ca.pem"
        ca.write_text("ca\n")
        root = await agent.place.start(_TwoDaemons(), ca, lambda t, ln: lines.append((t, ln)))
        sock = command_socket(tmp_path, "toy")
        server = ControlSocket(agent.handle)
        await server.serve(sock)
        client = ControlClient(sock)
        answers: list[object] = []
        try:
            for body in ({"tag": "second", "between": ["touch", str(root / "between")]},
                         {"tag": "nosuch"}, {"tag": 3}, {"tag": "first", "between": "rm"}):
                try:
                    answers.append(await client.request("POST", "/restart", body))
                except ControlError as exc:
                    answers.append(str(exc))
            ran_between = (root / "between").exists() and (root / "prepared").exists()
        finally:
            await server.close()
            await agent.place.close()
        return answers, root, ran_between

    (done, unknown, bad_tag, bad_between), root, ran_between = asyncio.run(go())
    assert ran_between  # `between` ran, in the instance prepare made
    assert done == {"restarted": "second"}
    ups = [(tag, line) for tag, line in lines if line.startswith("up ")]
    assert [tag for tag, _ in ups] == ["first", "second", "second"], ups
    assert ups[1] != ups[2]  # a new process
    assert isinstance(unknown, str) and "500" in unknown and "no daemon 'nosuch'" in unknown
    assert isinstance(bad_tag, str) and "400" in bad_tag and "tag" in bad_tag
    assert isinstance(bad_between, str) and "400" in bad_between and "between" in bad_between
    assert not root.exists()  # closed: the instance is gone


def test_restart_before_an_instance_is_refused(tmp_path: Path) -> None:
    (answer,) = asyncio.run(_serve_and_ask(command_socket(tmp_path, "postfix"),
                                           ("POST", "/restart", {"tag": "postfix"})))
    assert isinstance(answer, str) and "409" in answer
