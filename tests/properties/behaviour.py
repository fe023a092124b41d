"""What every run must show whatever its input: a documented exit code (never 1), no
traceback, one readable last line, and no realistic password in any form it was written in."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from tests.support.job import Result

# Shorter passwords are masked only where they stand as one (another engineer decides that
# rule): a one-letter password would otherwise "appear" in every word of the output.
REALISTIC = 8
EVERY_CODE = frozenset({0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13})


def forms(secret: str) -> set[str]:
    """The ways a secret can be written: as is, URL-encoded, form-encoded, JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def assert_well_behaved(result: Result, context: str, secrets: tuple[str, ...] = (),
                        codes: frozenset[int] = EVERY_CODE, json_lines: bool = True) -> None:
    """The run kept the output contract (see the module docstring)."""
    printed = result.stdout + result.stderr
    shown = f"{context}\nexit {result.code}; output:\n{printed[-3000:]}"
    assert result.code != 1, f"exit 1 (an internal error): {shown}"
    assert result.code in codes, f"undocumented exit code: {shown}"
    assert "Traceback" not in printed, f"a traceback: {shown}"
    for secret in secrets:
        if len(secret) < REALISTIC:
            continue
        for form in forms(secret):
            assert form not in printed, f"the password {secret!r} printed as {form!r}: {shown}"
    if result.code != 0 and json_lines:
        last = result.events[-1] if result.events else {}
        assert last.get("event"), f"the last line is no event of the job's: {shown}"
        assert last.get("message"), f"the last line says nothing: {shown}"
    elif result.code != 0:
        assert result.stderr.strip(), f"no last line: {shown}"
