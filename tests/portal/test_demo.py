"""The README's run command: ``portal demo`` on a fresh data directory, then sign in as it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.harness.ports import free_port
from tests.harness.waiting import PATIENCE


@pytest.mark.slow
def test_portal_demo_runs_and_its_printed_credentials_sign_in(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env["PORTAL_HOME"] = str(tmp_path / "var")
    # No PORTAL_CLAMD and (on the test machines) no clamd at Debian's default socket: the demo
    # starts a private one and says so loudly.
    portal = str(Path(sys.executable).parent / "portal")
    demo = subprocess.Popen(
        [portal, "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    base = f"http://127.0.0.1:{port}"
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + PATIENCE
        while "The portal is starting" not in output:
            assert time.monotonic() < deadline and demo.poll() is None, output
            output += demo.stdout.readline()
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, output
                time.sleep(0.2)
        assert ready.status_code == 200, ready.text
        block = re.search(
            r"inspector +(\S+@demo\.example).*?password +(\S+).*?TOTP secret +([A-Z2-7]+)",
            output,
            re.S,
        )
        assert block, output
        email, password, secret = block.groups()
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            page = client.get("/sign-in")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            step1 = client.post(
                "/sign-in", data={"email": email, "password": password, "csrf_token": token[1]}
            )
            assert step1.status_code == 303, step1.text
            page = client.get("/sign-in/code")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            step2 = client.post(
                "/sign-in/code",
                data={"code": pyotp.TOTP(secret).now(), "csrf_token": token[1]},
            )
            assert step2.status_code == 303 and step2.headers["location"] == "/"
            home = client.get("/").text
            assert email in home
            # The demo review, with the demo inspector on its team, is there to work with.
            assert "CSR26" in home
    finally:
        demo.terminate()  # SIGTERM, as systemd or `kill` stop it
        demo.wait(timeout=20)
    if not Path("/var/run/clamav/clamd.ctl").exists():
        assert "DEMO signature set" in output
        # The private clamd it started stops with it (a stopped demo leaves nothing running).
        config = str(tmp_path / "var" / "clamd" / "clamd.conf")
        deadline = time.monotonic() + PATIENCE
        while _running_with(config):
            assert time.monotonic() < deadline, "the demo's clamd is still running"
            time.sleep(0.2)


def _running_with(argument: str) -> bool:
    """Whether a live process (not a zombie) has ``argument`` on its command line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argument.encode() in arguments and state != "Z":
            return True
    return False
