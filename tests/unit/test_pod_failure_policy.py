"""Every Job the project ships fails at once on the exit codes that the README's table says a
retry cannot fix, and retries the others: the Helm chart in each mode, and each Kustomize
overlay (the raw manifests: tests/container/test_static.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kubernetes import (
    KUSTOMIZE,
    MODES,
    assert_fails_fast_as_the_readme_says,
    ci_values,
    exit_codes_by_retry,
    kustomize,
    only_job,
    render_chart,
)

KUSTOMIZATIONS = [KUSTOMIZE / "base", *sorted((KUSTOMIZE / "overlays").iterdir())]


def test_the_readme_table_is_read() -> None:
    non_retryable, retryable = exit_codes_by_retry()
    assert {1, 2, 4, 6, 7, 10, 11, 12} <= set(non_retryable)
    assert {3, 5, 9, 13, 130, 143} <= set(retryable)
    assert not set(non_retryable) & set(retryable)


@pytest.mark.parametrize("mode", MODES)
def test_chart_job_follows_the_exit_code_table(mode: str) -> None:
    assert_fails_fast_as_the_readme_says(only_job(render_chart(ci_values(mode))))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomize_job_follows_the_exit_code_table(directory: Path) -> None:
    assert_fails_fast_as_the_readme_says(only_job(kustomize(directory)))
