"""Network faults made for real: a server inside a network namespace the test creates, a
blackhole (packets dropped, no RST) switched on and off around it, and a TCP listener that
accepts and never answers.

Everything stays on this machine: the namespace's addresses are private ones chosen free here,
and the namespace (with its veth pair) is deleted at the end. Needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Private /30 networks are picked from here: far from Docker's 172.17/16 and the usual LANs.
_POOL = ipaddress.IPv4Network("10.213.0.0/16")
_NUMBERS = itertools.count()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _addresses_in_use() -> str:
    return subprocess.run(["ip", "-4", "-o", "addr"], check=True, capture_output=True,
                          text=True).stdout


class Namespace:
    """A network namespace joined to this host by a veth pair.

    `address` is the namespace's side (a server started through `command()` listens there);
    `host_address` is this host's side. `blackhole()` drops every packet that enters or leaves
    the namespace without answering (no RST, no ICMP), as a partition does; `heal()` undoes it.
    """

    def __init__(self) -> None:
        number = next(_NUMBERS)
        self.name = f"mj{os.getpid()}n{number}"
        self._host_side = f"mjh{os.getpid()}n{number}"[:15]
        self._inside = f"mji{os.getpid()}n{number}"[:15]
        subnet = self._free_subnet()
        host, inside = list(subnet.hosts())
        self.host_address, self.address = str(host), str(inside)
        self.subnet = str(subnet)
        self._blackholed = False

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        used = _addresses_in_use()
        subnets = list(_POOL.subnets(new_prefix=30))
        while True:
            subnet = random.choice(subnets)  # noqa: S311  (an address, not a secret)
            if all(f"{host}/" not in used for host in subnet.hosts()):
                return subnet

    def create(self) -> Namespace:
        """Make the namespace and its link, both sides up."""
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._host_side, "type", "veth", "peer", "name", self._inside)
            _ip("link", "set", self._inside, "netns", self.name)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self._host_side)
            _ip("link", "set", self._host_side, "up")
            self._inside_ns("addr", "add", f"{self.address}/30", "dev", self._inside)
            self._inside_ns("link", "set", self._inside, "up")
            self._inside_ns("link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def _inside_ns(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def command(self, *args: str) -> list[str]:
        """A command line that runs `args` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def _iptables(self, action: str) -> None:
        for chain in ("INPUT", "OUTPUT"):
            subprocess.run(self.command("iptables", action, chain, "-j", "DROP"), check=True,
                           capture_output=True, text=True)

    def blackhole(self) -> None:
        """Drop every packet in and out of the namespace, silently."""
        if not self._blackholed:
            self._iptables("-I")
            self._blackholed = True

    def heal(self) -> None:
        """Let packets through again."""
        if self._blackholed:
            self._iptables("-D")
            self._blackholed = False

    def destroy(self) -> None:
        """Delete the namespace; its end of the veth pair goes with it, and so the pair."""
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", self._host_side], check=False,
                       capture_output=True)


@contextmanager
def namespace() -> Iterator[Namespace]:
    """A namespace for the block, deleted afterwards."""
    created = Namespace().create()
    try:
        yield created
    finally:
        created.destroy()


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte.

    The kernel completes the handshake, so a client's connect succeeds; whatever it then waits
    for (PostgreSQL's answer to its startup packet, MySQL's greeting) never comes.
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = int(self._socket.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        """Stop listening and drop every accepted connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(5)
        for connection in self.accepted:
            connection.close()


@contextmanager
def silent_listener() -> Iterator[SilentListener]:
    """A listener that never answers, for the block."""
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()
