"""The matrix's network faults: a blackhole (packets dropped, no RST) around a server in a
network namespace of the cell's own, a server that accepts TCP and never answers, and a
failover behind a switching proxy. Each cell that uses one gets servers of its own."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from tests.faults.faults import (
    CONNECT_TIMEOUT_S,
    DEAD_PEER_S,
    MARGIN_S,
    WAIT_TIMEOUT_S,
    Fault,
    Run,
)
from tests.faults.pg_target import PgTarget
from tests.faults.shapes import Point
from tests.faults.target import Target
from tests.support.network import namespace, silent_listener
from tests.support.pgserver import PostgresServer, StandbyServer
from tests.support.proxy import SwitchingProxy

if TYPE_CHECKING:
    from tests.faults.servers import Servers


class Blackhole(Fault):
    """Every packet to and from the server dropped while the revision runs."""

    name, label = "blackhole", "a network blackhole (packets dropped, no RST)"
    engines = ("postgresql",)

    def target(self, engine: str, servers: Servers, root: Path, cleanup: ExitStack) -> Target:
        netns = cleanup.enter_context(namespace())
        server = PostgresServer(netns=netns)
        cleanup.callback(server.destroy)
        target = PgTarget(server.start(), root)
        target.extras["netns"] = netns
        return target

    def inject(self, run: Run) -> None:
        run.target.extras["netns"].blackhole()

    def bound(self) -> float:
        return DEAD_PEER_S + MARGIN_S

    def settle(self, run: Run) -> None:
        run.target.extras["netns"].heal()


class BlackholeAtConnect(Blackhole):
    """The server unreachable (no answer at all) from before the job starts."""

    name, label = "blackhole at connect", "a network blackhole from the start"
    waits_at_point = False

    def env(self) -> dict[str, str]:
        return {"MIGRATE_WAIT_TIMEOUT": f"{WAIT_TIMEOUT_S:g}"}

    def gate_at(self, point: Point) -> Point | None:
        return None

    def before_start(self, run: Run) -> None:
        run.target.extras["netns"].blackhole()

    def inject(self, run: Run) -> None:
        pass

    def bound(self) -> float:
        return WAIT_TIMEOUT_S + CONNECT_TIMEOUT_S + MARGIN_S


class SilentServer(Fault):
    """The database's address accepts TCP and never sends a byte (a hung server, a broken
    proxy): the job must give up at its wait timeout."""

    name, label = "silent server", "a server that accepts TCP and never answers"
    engines = ("postgresql", "mariadb")
    waits_at_point = False

    def env(self) -> dict[str, str]:
        return {"MIGRATE_WAIT_TIMEOUT": f"{WAIT_TIMEOUT_S:g}"}

    def gate_at(self, point: Point) -> Point | None:
        return None

    def before_start(self, run: Run) -> None:
        listener = run.cleanup.enter_context(silent_listener())
        run.target.port_override = listener.port

    def bound(self) -> float:
        return WAIT_TIMEOUT_S + CONNECT_TIMEOUT_S + MARGIN_S

    def settle(self, run: Run) -> None:
        run.target.port_override = None


class Failover(Fault):
    """The job reaches the primary through a proxy; the primary stops, its streaming standby
    is promoted and the proxy sends new connections there."""

    name, label = "failover", "a failover (primary stopped, standby promoted, proxy switched)"
    engines = ("postgresql",)

    def target(self, engine: str, servers: Servers, root: Path, cleanup: ExitStack) -> Target:
        primary = PostgresServer()
        cleanup.callback(primary.destroy)
        target = PgTarget(primary.start(), root)
        standby = StandbyServer(primary)
        cleanup.callback(standby.destroy)
        proxy = SwitchingProxy(primary.port)
        cleanup.callback(proxy.close)
        target.extras.update(standby=standby.start(), proxy=proxy)
        target.port_override = proxy.port
        return target

    def inject(self, run: Run) -> None:
        assert isinstance(run.target, PgTarget)
        standby: StandbyServer = run.target.extras["standby"]
        run.target.server.stop()
        standby._run(str(standby.bindir / "pg_ctl"), "-D", str(standby.data), "-w", "promote")
        run.target.extras["proxy"].switch(standby.port)
        run.target.server = standby

    def bound(self) -> float:
        return 60.0 + MARGIN_S  # the promotion is part of it
