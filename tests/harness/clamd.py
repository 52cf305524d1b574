"""A private clamd for the test session, with the project's generated signature database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.clamd_local import ClamdStartError, LocalClamd, start_local_clamd
from portal.settings import ClamdAddress

# The upload limit the test suite runs the portal with; the test clamd's limits match it.
TEST_MAX_UPLOAD_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClamd]:
    try:
        clamd = start_local_clamd(tmp_path_factory.mktemp("clamd"), max_bytes=TEST_MAX_UPLOAD_BYTES)
    except ClamdStartError as exc:
        pytest.fail(str(exc))
    try:
        yield clamd
    finally:
        clamd.stop()


@pytest.fixture
def clamd_address(clamd_server: LocalClamd) -> ClamdAddress:
    if clamd_server.process.poll() is not None:
        pytest.fail(
            "The test clamd has died; see clamd.log in its folder: " + str(clamd_server.folder)
        )
    return clamd_server.address
