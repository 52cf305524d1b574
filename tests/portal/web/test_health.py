"""GET /healthz and /readyz, in-process and through ``portal serve``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from portal.clamd_local import start_local_clamd
from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from portal.web.app import create_app
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.harness.ports import free_port
from tests.harness.seaweedfs import S3Server
from tests.harness.waiting import PATIENCE
from tests.portal.conftest import World, api_token

LOCAL = ("127.0.0.1", 40000)  # a caller on this machine, straight to the port


def _settings(tmp_path: Path, clamd: ClamdAddress, **extra: str) -> Settings:
    env = {"PORTAL_HOME": str(tmp_path / "home"), "PORTAL_CLAMD": str(clamd), **extra}
    settings = Settings.from_environ(env)
    list(initialise(settings))
    return settings


def test_healthz_answers_without_dependencies(tmp_path: Path) -> None:
    settings = Settings.from_environ(
        {"PORTAL_HOME": str(tmp_path), "PORTAL_CLAMD": "unix:///nonexistent/clamd.sock"}
    )
    list(initialise(settings))
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_with_everything_up_names_the_signature_version(
    tmp_path: Path, clamd_address: ClamdAddress, database_url: str
) -> None:
    settings = _settings(tmp_path, clamd_address, PORTAL_DATABASE_URL=database_url)
    with TestClient(create_app(settings), client=LOCAL) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert all(check["ok"] for check in checks.values())
    assert checks["clamd"]["detail"].startswith("ClamAV ")
    assert checks["database"]["detail"] in ("sqlite", "postgresql")


def test_readyz_on_s3(
    tmp_path: Path, clamd_address: ClamdAddress, s3_server: S3Server, s3_bucket: str
) -> None:
    settings = _settings(
        tmp_path,
        clamd_address,
        PORTAL_STORAGE=f"s3://{s3_bucket}/readyz",
        PORTAL_S3_ENDPOINT_URL=s3_server.endpoint_url,
    )
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "portal-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "portal-test-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with TestClient(create_app(settings), client=LOCAL) as client:
        assert client.get("/readyz").status_code == 200
    missing = _settings(
        tmp_path,
        clamd_address,
        PORTAL_STORAGE="s3://no-such-bucket-here",
        PORTAL_S3_ENDPOINT_URL=s3_server.endpoint_url,
    )
    with TestClient(create_app(missing), client=LOCAL) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["down"] == ["storage"]


def test_readyz_names_a_scanner_that_is_down(tmp_path: Path) -> None:
    settings = _settings(tmp_path, ClamdAddress(kind="unix", path=str(tmp_path / "none.sock")))
    with TestClient(create_app(settings), client=LOCAL) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["clamd"]
    assert "PORTAL_CLAMD" in body["checks"]["clamd"]["detail"]


# --- What /readyz tells whom (issue 18: it was public and named folders, versions, sockets) ---


def _down_scanner_app(tmp_path: Path, **extra: str) -> Settings:
    return _settings(tmp_path, ClamdAddress(kind="unix", path=str(tmp_path / "none.sock")), **extra)


def test_readyz_tells_a_remote_caller_the_status_only(tmp_path: Path) -> None:
    settings = _down_scanner_app(tmp_path)
    with TestClient(create_app(settings), client=("203.0.113.9", 40000)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json() == {"status": "unavailable"}
        # A caller on this machine is told more: but not one whose request names another client.
        with TestClient(client.app, client=LOCAL) as local:
            assert "checks" in local.get("/readyz").json()
            posing = local.get("/readyz", headers={"X-Forwarded-For": "127.0.0.1"})
            assert posing.json() == {"status": "unavailable"}
    for leaked in (str(tmp_path), "none.sock", "sqlite", "ClamAV"):
        assert leaked not in response.text


def test_readyz_through_a_trusted_proxy_is_not_local(tmp_path: Path) -> None:
    """nginx on this machine forwards everyone's requests: its loopback address proves nothing."""
    settings = _down_scanner_app(tmp_path, PORTAL_TRUSTED_PROXIES="127.0.0.1")
    with TestClient(create_app(settings), client=LOCAL) as client:
        forwarded = client.get("/readyz", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.json() == {"status": "unavailable"}
        from_this_machine = client.get("/readyz", headers={"X-Forwarded-For": "127.0.0.1"})
        assert from_this_machine.json() == {"status": "unavailable"}
        assert "checks" in client.get("/readyz").json()  # straight to the port, no proxy


def test_readyz_details_for_an_admin_token_not_for_other_roles(
    client: TestClient, world: World
) -> None:
    public = client.get("/readyz")
    assert public.status_code == 200 and public.json() == {"status": "ok"}
    assert client.get("/readyz", headers=api_token(world, "dpo")).json() == {"status": "ok"}
    forged = client.get("/readyz", headers={"Authorization": "Bearer pat_not-a-real-one"})
    assert forged.json() == {"status": "ok"}
    admin = client.get("/readyz", headers=api_token(world, "admin")).json()
    assert set(admin["checks"]) == {"database", "storage", "keys", "clamd"}


@pytest.mark.slow
def test_portal_serve_is_ready_then_names_clamd_once_it_stops(tmp_path: Path) -> None:
    clamd = start_local_clamd(tmp_path / "clamd", max_bytes=TEST_MAX_UPLOAD_BYTES)
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_HOME": str(tmp_path / "home"),
        "PORTAL_CLAMD": str(clamd.address),
    }
    portal = str(Path(sys.executable).parent / "portal")
    subprocess.run([portal, "init"], env=env, check=True, capture_output=True, timeout=60)
    server = subprocess.Popen(
        [portal, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "portal serve did not answer"
                time.sleep(0.1)
        assert ready.status_code == 200, ready.text
        clamd.stop()
        down = httpx.get(f"{base}/readyz", timeout=10)
        assert down.status_code == 503
        assert down.json()["down"] == ["clamd"]
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=15)
        clamd.stop()
