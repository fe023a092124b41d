"""PostgreSQL: psycopg2 sessions, advisory locks, the drivers env.py may use, poolers, partitions
and CREATE INDEX CONCURRENTLY, blockers and progress from the server's views."""
