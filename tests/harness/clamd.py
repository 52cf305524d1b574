"""A private clamd for the test session, with the project's generated signature database.

It listens on a Unix socket (``clamd_address``) and on 127.0.0.1 over TCP (``clamd_tcp_address``),
as one clamd shared by several nodes does; both are the same daemon with the same limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.clamd_local import ClamdStartError, LocalClamd, start_local_clamd
from portal.settings import ClamdAddress

from .ports import free_port
from .waiting import PATIENCE

# The upload limit the test suite runs the portal with; the test clamd's limits match it.
TEST_MAX_UPLOAD_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClamd]:
    try:
        clamd = start_local_clamd(
            tmp_path_factory.mktemp("clamd"),
            max_bytes=TEST_MAX_UPLOAD_BYTES,
            tcp_port=free_port(),
            timeout=PATIENCE,
        )
    except ClamdStartError as exc:
        pytest.fail(str(exc))
    try:
        yield clamd
    finally:
        clamd.stop()


def _alive(clamd_server: LocalClamd) -> LocalClamd:
    if clamd_server.process.poll() is not None:
        pytest.fail(
            "The test clamd has died; see clamd.log in its folder: " + str(clamd_server.folder)
        )
    return clamd_server


@pytest.fixture
def clamd_address(clamd_server: LocalClamd) -> ClamdAddress:
    return _alive(clamd_server).address


@pytest.fixture
def clamd_tcp_address(clamd_server: LocalClamd) -> ClamdAddress:
    """The same clamd over TCP on the loopback (``PORTAL_CLAMD=tcp://127.0.0.1:PORT``)."""
    return _alive(clamd_server).tcp_address
