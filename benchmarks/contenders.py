"""Who is measured: each contender's name, the order tables show them in, and their labels."""

from __future__ import annotations

# Contender names, as the scenarios' commands are named.
JOB, ALEMBIC, FLOOR, DBMATE, PASS = "job", "alembic", "floor", "dbmate", "python -c pass"
PSQL = "psql -1"
# The job with MIGRATE_HISTORY=off: what the applied-history table costs a full upgrade.
JOB_NO_HISTORY = "job, history off"

# Start-up references, measured alongside the smallest history's no-op contenders.
IMPORT_PSYCOPG2 = "python -c 'import psycopg2'"
IMPORT_STACK = "python -c 'import alembic.command, alembic.config, sqlalchemy, psycopg2'"
NO_SITE = "python -S -c pass"

# The no-op contenders, in the order tables and the plot show them.
NOOP_ORDER = (JOB, ALEMBIC, FLOOR, DBMATE, PASS)

# How BENCHMARKS.md names each contender.
LABELS = {JOB: "the job (`entrypoint.py upgrade`)", ALEMBIC: "plain `alembic upgrade head`",
          FLOOR: "psycopg2-only floor (`benchmarks/floor.py`)", DBMATE: "`dbmate up`",
          PASS: "`python -c pass`", PSQL: "`psql -1 -f` of the same SQL",
          JOB_NO_HISTORY: "the job with `MIGRATE_HISTORY=off`"}

# How the plot's legend names each no-op contender.
LEGEND = {JOB: "the job", ALEMBIC: "alembic upgrade head", FLOOR: "psycopg2-only floor",
          DBMATE: "dbmate up", PASS: "python -c pass"}
