# migration-job: waits for PostgreSQL, takes an advisory lock, runs `alembic upgrade head`.
# Base image is a build argument so machines without a registry can use a local stand-in
# (scripts/base-images). Both stages must use the same base: the venv links to its python3.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY requirements.lock ./
# Hash-pinned wheels only: no compiler in the image, no unpinned transitive dependency.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary=:all: -r requirements.lock \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools
# What the wheels ship for their own test suites and for compilers, which no run reads
# (sqlalchemy/testing, greenlet/tests, .pyx, .h, .pyi...: BENCHMARKS.md, container starts).
RUN find /opt/venv/lib/python3*/site-packages -mindepth 2 -maxdepth 2 -type d \
        \( -name tests -o -name testing \) -exec rm -rf {} + \
    && find /opt/venv \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.pyx' \
        -o -name '*.pxd' -o -name '*.pyi' \) -delete
# The SBOM generator, hash-pinned too, in a venv of its own that the final image never sees.
COPY requirements-sbom.lock ./
RUN python3 -m venv /opt/sbom \
    && /opt/sbom/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary=:all: -r requirements-sbom.lock
COPY entrypoint.py alembic.ini .squawk.toml /app/
COPY migration_job /app/migration_job
COPY migrations /app/migrations
COPY app /app/app
# The heads manifest lets a run that finds the database at head skip loading Alembic.
RUN MIGRATE_TERMINATION_LOG='' /opt/venv/bin/python /app/entrypoint.py manifest
# The SBOM (CycloneDX JSON) of what the lock installed into /opt/venv, named after the package's
# own version; reproducible: the same lock gives the same file.
RUN version="$(PYTHONPATH=/app /opt/venv/bin/python -c \
        'import migration_job; print(migration_job.__version__)')" \
    && printf '[project]\nname = "migration-job"\nversion = "%s"\nlicense = { text = "MIT" }\n' \
        "$version" >/tmp/pyproject.toml \
    && /opt/sbom/bin/cyclonedx-py environment --pyproject /tmp/pyproject.toml \
        --output-reproducible --of JSON -o /app/sbom.cdx.json /opt/venv/bin/python
# Bytecode now, so a read-only root filesystem costs nothing at start; files are readable
# (not writable) by any UID in group 0, as OpenShift's arbitrary UIDs need.
RUN /opt/venv/bin/python -m compileall -q /app /opt/venv \
    && chmod -R a+rX,go-w /app /opt/venv

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it; group 0 for arbitrary-UID platforms.
USER 10001:0
# Exec form: the job is PID 1 and handles SIGTERM/SIGINT itself (rolls back, unlocks, exits 143/130).
ENTRYPOINT ["python3", "/app/entrypoint.py"]
CMD ["upgrade"]
# OCI labels, last so that a new build date or revision rebuilds no layer. VERSION is
# migration_job.__version__ (a test keeps them equal); REVISION and CREATED (RFC 3339) are for
# the build to pass: --build-arg REVISION="$(git rev-parse HEAD)" CREATED="$(date -u +%FT%TZ)".
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/OWNER/migration-job
LABEL org.opencontainers.image.title="migration-job" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      org.opencontainers.image.description="Waits for the database, takes a lock, runs alembic upgrade head, exits with contract exit codes" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
