"""DATABASE_URL_FILE, as a Docker or Kubernetes secret holds it: whatever the file holds (the
URL with blanks and line ends around it, junk, nothing, too much) or is (a folder, a FIFO,
missing), the job keeps the output contract and never prints the password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.properties.behaviour import assert_well_behaved
from tests.properties.inprocess import run_in_process
from tests.properties.strategies import GeneratedUrl, file_contents, server_urls
from tests.support.pgserver import free_port

DEAD_PORT = free_port()


def run_with_file(path: Path, scratch: Path, password: str | None,
                  **env: str) -> None:
    """`wait` with the URL in the file at `path`."""
    result = run_in_process("wait", env={"DATABASE_URL_FILE": str(path),
                                         "MIGRATE_WAIT_TIMEOUT": "0", **env},
                            termination_log=scratch / "termination")
    assert_well_behaved(result, f"DATABASE_URL_FILE holding {path.read_bytes()[:200]!r}"
                        if path.is_file() else f"DATABASE_URL_FILE={path}",
                        secrets=(password,) if password else ())


class TestSecretFileContents:
    """The file holds a generated URL wrapped in blanks, line ends or junk."""

    @given(data=st.data(), engine=st.sampled_from(["postgresql", "mariadb"]))
    def test_contents(self, data: st.DataObject, engine: str, scratch: Path) -> None:
        case: GeneratedUrl = data.draw(server_urls(engine, "127.0.0.1", DEAD_PORT,
                                                   latin1=engine == "mariadb"))
        secret = scratch / "secret"
        secret.write_bytes(data.draw(file_contents(case.url)))
        run_with_file(secret, scratch, case.password)


class TestSecretFileKinds:
    """What stands at the path is no regular file, or the URL is given twice."""

    URL = f"postgresql://app:s3cret-Pass%23word@127.0.0.1:{DEAD_PORT}/db"
    PASSWORD = "s3cret-Pass#word"

    @pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "empty", "also in env"])
    def test_kind(self, kind: str, scratch: Path) -> None:
        path = scratch / f"secret-{kind.replace(' ', '-')}"
        env: dict[str, str] = {}
        if kind == "directory":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)  # opening it would wait for a writer for ever
        elif kind == "empty":
            path.write_text("")
        elif kind == "also in env":
            path.write_text(self.URL)
            env["DATABASE_URL"] = self.URL
        run_with_file(path, scratch, self.PASSWORD, **env)
