"""The server log holds no one-time link, no query string, nothing personal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from portal.logs import redact_target
from portal.settings import ClamdAddress, Settings
from portal.setup import initialise
from tests.harness.ports import free_port
from tests.harness.waiting import PATIENCE


def test_redaction_of_request_targets() -> None:
    assert redact_target("/enrol/9Xk2abcDEF") == "/enrol/…"
    assert redact_target("/enrol/9Xk2abcDEF/app") == "/enrol/…/app"
    assert redact_target("/console/audit?actor=jo@example.org") == "/console/audit?…"
    assert redact_target("/api/v1/documents/7KQ2-M9XD-3TPW") == "/api/v1/documents/7KQ2-M9XD-3TPW"


def test_portal_serve_logs_no_secret_and_no_personal_data(
    tmp_path: Path, clamd_address: ClamdAddress
) -> None:
    env = {
        **os.environ,
        "PORTAL_HOME": str(tmp_path / "home"),
        "PORTAL_CLAMD": str(clamd_address),
    }
    list(initialise(Settings.from_environ(env)))
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "portal"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        httpx.get(f"{base}/enrol/SECRET-ENROLMENT-TOKEN-42")
        httpx.get(f"{base}/console/audit?actor=jo.bloggs@aberdeen.example&csrf_token=SECRETCSRF")
        time.sleep(0.3)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    assert "GET /enrol/… HTTP/1.1" in output, output
    for secret in ("SECRET-ENROLMENT-TOKEN-42", "jo.bloggs", "SECRETCSRF"):
        assert secret not in output
