"""The network faults the fault matrix relies on are real: a blackhole answers nothing, not even
a refusal, and heals; a silent listener accepts and never speaks."""

from __future__ import annotations

import socket

import pytest

from tests.support.network import namespace, silent_listener
from tests.support.pgserver import PostgresServer


class TestBlackhole:
    """A server in a namespace is reachable, then silent (no RST), then reachable again."""

    def test_drops_without_answer_and_heals(self) -> None:
        with namespace() as netns:
            server = PostgresServer(netns=netns).start()
            try:
                conn = server.connect()
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    assert cur.fetchone() == (1,)
                netns.blackhole()
                # A refused connection would raise ConnectionRefusedError at once: a timeout
                # proves the packets were dropped unanswered.
                with pytest.raises(TimeoutError):
                    socket.create_connection((netns.address, server.port), timeout=1)
                netns.heal()
                with conn.cursor() as cur:
                    cur.execute("SELECT 2")
                    assert cur.fetchone() == (2,)
                conn.close()
            finally:
                server.destroy()


class TestSilentListener:
    """A connection to the silent listener succeeds and then reads nothing."""

    def test_accepts_and_never_answers(self) -> None:
        with silent_listener() as listener, socket.create_connection(
                ("127.0.0.1", listener.port), timeout=1) as client:
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.recv(1)
