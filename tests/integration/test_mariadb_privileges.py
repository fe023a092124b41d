"""README's claim for MySQL/MariaDB: a revision that fails for want of a privilege exits 10
(part of it may be applied, as for any revision that fails there), not 4 as on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.job import job_env, run_job
from tests.support.mariadbserver import MariaDBServer
from tests.support.projects import make_mysql_project


def test_a_revision_without_its_privilege_exits_10(mariadb: MariaDBServer,
                                                   tmp_path: Path) -> None:
    name = f"privileges_{os.getpid()}"
    mariadb.create_database(name)
    env = job_env(DATABASE_URL=mariadb.url(name),
                  ALEMBIC_CONFIG=str(make_mysql_project(tmp_path)))
    assert run_job("--target", "0001", env=env).code == 0
    user = f"no_alter_{os.getpid()}"
    mariadb.scalar(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", mariadb.password)
    mariadb.scalar(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON `{name}`.* "
                   f"TO '{user}'@'%'")
    as_user = {**env, "DATABASE_URL": env["DATABASE_URL"].replace("//root:", f"//{user}:", 1)}
    done = run_job(env=as_user)  # 0002 alters a table
    assert done.code == 10, done.stderr
    assert "Traceback" not in done.stderr
    last = done.events[-1]
    assert last["event"] == "revision_unfinished", done.stderr
    assert "ALTER command denied" in last["message"]
    assert "mark-repaired" in last["message"]
