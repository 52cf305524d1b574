"""The topology, started once for the whole package and stopped, every process of it, at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from portal.clamd_local import LocalClamd
from tests.harness.seaweedfs import S3Server
from tests.harness.softhsm import SoftHsm

from .topology import Topology, TopologyError, start_topology


@pytest.fixture(scope="session")
def topology(
    tmp_path_factory: pytest.TempPathFactory,
    pg_admin_url: str,
    s3_server: S3Server,
    s3_bucket: str,
    softhsm: SoftHsm,
    clamd_server: LocalClamd,
) -> Iterator[Topology]:
    with ExitStack() as stack:
        try:
            started = start_topology(
                stack,
                tmp_path_factory.mktemp("multinode"),
                pg_admin_url=pg_admin_url,
                s3_endpoint_url=s3_server.endpoint_url,
                s3_bucket=s3_bucket,
                kms=softhsm.new_token("multinode"),
                clamd=str(clamd_server.tcp_address),
            )
        except TopologyError as exc:
            pytest.fail(f"The multi-node topology did not start: {exc}")
        yield started
