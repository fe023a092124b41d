"""migration-job: run Alembic migrations safely from a container or a deploy pipeline."""
