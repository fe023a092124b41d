"""This process's name on the server (application_name, MySQL's program_name): unique per
process, so that a signal can find and cancel this job's statements, and name who blocks them."""

from __future__ import annotations

import os


def _new_application_name() -> str:
    return f"migration-job:{os.uname().nodename[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


# Unique per process: a project's own env.py engine carries it too.
_application_name = _new_application_name()


def application_name() -> str:
    """This process's name on the server (application_name, MySQL's program_name)."""
    return _application_name


def _rename_forked_child() -> None:
    """A forked process (a fleet's target) gets a name of its own: with its parent's, its
    signal would cancel its siblings' statements, and it would name their blockers as its own.
    PGAPPNAME follows when the parent had set it (name_process)."""
    global _application_name
    parent, _application_name = _application_name, _new_application_name()
    if os.environ.get("PGAPPNAME") == parent:
        os.environ["PGAPPNAME"] = _application_name


os.register_at_fork(after_in_child=_rename_forked_child)
