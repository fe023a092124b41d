"""migration-job: run Alembic migrations safely from a container or a deploy pipeline."""

# The one place the version is written: pyproject.toml reads it from here, and the image, which
# runs the package from /app without installing it, has no package metadata to ask.
__version__ = "0.1.0"
