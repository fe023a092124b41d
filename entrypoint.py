"""Container entry point: `python entrypoint.py [COMMAND] [OPTIONS]`."""

from migration_job.cli import main

raise SystemExit(main())
