"""A TCP proxy on 127.0.0.1 whose upstream can be switched, as a failover's virtual IP or
service does: new connections go to the new upstream, existing ones stay where they were
until their server ends them."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SwitchingProxy:
    """Listens on `port`; forwards each accepted connection to the upstream port current
    at accept time."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def switch(self, upstream: int) -> None:
        """Send new connections to another port of 127.0.0.1."""
        self.upstream = upstream

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:
                client.close()  # nothing upstream: the client sees the connection end
                continue
            server.settimeout(None)
            self._pairs.append((client, server))
            thread = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        peer = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            for side in peer:
                selector.register(side, selectors.EVENT_READ)
            while not self._stopped.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._close(client, server)
                        return
                    try:
                        peer[source].sendall(data)
                    except OSError:
                        self._close(client, server)
                        return
        self._close(client, server)

    @staticmethod
    def _close(*sides: socket.socket) -> None:
        for side in sides:
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()

    def close(self) -> None:
        """Stop accepting and end every forwarded connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)
        for pair in self._pairs:
            self._close(*pair)


@contextmanager
def switching_proxy(upstream: int) -> Iterator[SwitchingProxy]:
    """A proxy for the block, closed afterwards."""
    proxy = SwitchingProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
