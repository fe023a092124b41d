"""Hypothesis's profile for the property tests.

Derandomized (the examples are a function of the test, so a run in CI is the run on a
laptop), no example database (nothing carried between runs), no deadline (the machine is
shared: slowness is not a failure), few examples per property (runs are real), and no
shrinking (a failing example is reported as generated; the same example fails again on every
run, so a developer can shrink it at leisure with Phase.shrink)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "migration-job", derandomize=True, database=None, deadline=None, max_examples=40,
    print_blob=False, phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("migration-job")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the module's examples (Hypothesis runs many examples per test call)."""
    return tmp_path_factory.mktemp("examples")
