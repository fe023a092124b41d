"""Everything that imports Alembic or SQLAlchemy: running Alembic with the job's rules (one
transaction per revision, the lock checked before each commit), the revision graph, and what a
failed revision leaves."""
