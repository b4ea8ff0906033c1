"""Network-namespace plumbing for the ``netns`` backend: no lab services in here.

Layout of one run (``<p>`` is ``mtl-<runid>``):

* ``<p>-sw``: the switch. It holds the only bridge (``br0``); every host namespace is joined
  to it by a veth pair (``eth0`` inside the host, ``v<i>`` on the bridge). The bridge has no
  address: the switch namespace is not a host.
* one namespace per lab host (``<p>-dns``, ``<p>-policy``, ``<p>-mx<i>`` for the proxy
  fronts, ``<p>-sink<i>`` for the genuine MXes, ``<p>-attacker``, ``<p>-sender``), each with
  ``lo`` up and one address of the lab subnet on ``eth0``, and no other route than the
  subnet's own: no default route, no NAT, nothing in the host namespace.

The lab subnet defaults to ``198.18.0.0/24`` (RFC 2544 benchmark range, never routed on the
internet); ``MTASTS_LAB_NETNS_SUBNET`` or the backend's constructor picks another /24 (the
addresses exist only inside the lab's namespaces, so parallel runs can share one).

Sockets for the in-process services are created *inside* a namespace from this process:
a short-lived thread enters the namespace with ``setns(2)`` (Python 3.11 has no
``os.setns``: ctypes), creates the socket and exits. A socket keeps the namespace it was made
in, so the event loop thread never leaves the host namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lab.backends import sockets
from lab.backends.netns_state import ETC_NETNS, NETNS_RUN_DIR, NS_PREFIX

CLONE_NEWNET = 0x40000000
DEFAULT_SUBNET = "198.18.0.0/24"

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(Exception):
    """A namespace operation failed; the message carries the tool's own words."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` on a fresh thread that has entered network namespace ``name``."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(NETNS_RUN_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), f"setns({name})")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def can_unshare_net() -> str | None:
    """None if this process may create a network namespace, else why not."""
    errors: list[str] = []

    def body() -> None:
        # unshare(CLONE_NEWNET) on a thread moves only that thread, which then exits.
        if _libc.unshare(CLONE_NEWNET) != 0:
            errors.append(os.strerror(ctypes.get_errno()))

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join()
    return errors[0] if errors else None


def bound_socket(ns: str, kind: socket.SocketKind, address: str, port: int,
                 listen: bool = True) -> socket.socket:
    """A non-blocking socket created inside ``ns`` and bound to ``address:port``."""

    return run_in_netns(ns, lambda: sockets.bound_socket(kind, address, port, listen))


def client_socket(ns: str) -> socket.socket:
    """A non-blocking TCP socket inside ``ns``, not yet connected."""

    return run_in_netns(ns, sockets.tcp_client_socket)


def ip_batch(commands: list[str], netns: str | None = None) -> None:
    """Run ``ip`` commands in one batch (optionally ``-n netns``); raise with ip's words."""
    if not commands:
        return
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    out = subprocess.run(argv, input="".join(c + "\n" for c in commands), text=True,
                         capture_output=True, check=False)
    if out.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed: {out.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    role: str
    netns: str
    address: str
    veth: str


@dataclass
class LabNet:
    """The namespaces, switch and addresses of one run."""

    runid: str
    subnet: str = DEFAULT_SUBNET
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{NS_PREFIX}{self.runid}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def plan(self, roles: dict[str, int]) -> None:
        """Name each host ``role`` and give it the host number ``roles[role]`` of the subnet."""
        net = ipaddress.ip_network(self.subnet)
        if net.version != 4 or net.prefixlen > 24:
            raise ValueError(f"lab subnet must be an IPv4 /24 or larger, not {self.subnet}")
        for i, (role, host) in enumerate(roles.items()):
            self.hosts[role] = Host(role, f"{self.prefix}-{role}",
                                    str(net.network_address + host), f"v{i}")

    @property
    def namespaces(self) -> list[str]:
        return [self.switch, *(h.netns for h in self.hosts.values())]

    def addr(self, role: str) -> str:
        return self.hosts[role].address

    def ns(self, role: str) -> str:
        return self.hosts[role].netns

    def create(self) -> None:
        """Create every namespace, the switch and the links; raise (leaving the caller to
        ``destroy``) on the first failure."""
        plen = ipaddress.ip_network(self.subnet).prefixlen
        top = [f"netns add {n}" for n in self.namespaces]
        # Each veth is created straight inside its namespaces: nothing appears in the host's.
        top += [f"link add eth0 netns {h.netns} type veth peer name {h.veth} netns {self.switch}"
                for h in self.hosts.values()]
        ip_batch(top)
        sw = ["link add br0 type bridge", "link set br0 up", "link set lo up"]
        sw += [f"link set {h.veth} master br0 up" for h in self.hosts.values()]
        ip_batch(sw, self.switch)
        for h in self.hosts.values():
            ip_batch(["link set lo up", f"addr add {h.address}/{plen} dev eth0",
                      "link set eth0 up"], h.netns)

    def write_resolv_conf(self, role: str, nameserver: str) -> Path:
        """``/etc/netns/<ns>/resolv.conf``: what ``ip netns exec`` shows a program there."""
        directory = ETC_NETNS / self.ns(role)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "resolv.conf").write_text(
            f"# mtasts-lab run {self.runid}\nnameserver {nameserver}\n"
            "options timeout:1 attempts:2 trust-ad\n")  # pass the AD bit on (DANE)
        return directory

    def etc_dirs(self) -> list[str]:
        return [str(ETC_NETNS / h.netns) for h in self.hosts.values()]

    def remove_etc(self) -> None:
        for d in self.etc_dirs():
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(d)
