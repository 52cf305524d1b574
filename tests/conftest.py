"""Test harness: real PostgreSQL, clamd and SeaweedFS, started for the session (see tests/harness)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.harness.database",
    "tests.harness.clamd",
    "tests.harness.seaweedfs",
    "tests.harness.softhsm",
]


def _null_is_a_device() -> bool:
    return stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.fixture(autouse=True)
def _dev_null_survives() -> Iterator[None]:
    """The suite runs as root on CI: a test that renames a file over /dev/null breaks the machine.

    It happened once (an export written aside and renamed onto ``-o /dev/null``): every other
    program then failed to open /dev/null, and the run took eight times as long. The test that
    does it fails here, by name.
    """
    yield
    assert _null_is_a_device(), "this test replaced /dev/null with a regular file"
