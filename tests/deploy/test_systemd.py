"""deploy/*.service: every unit hardened as far as the portal allows, and valid to systemd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "deploy").glob("*.service"))
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateMounts": "yes",
    "ProtectClock": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
}


def _service_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            name, _, value = line.partition("=")
            settings.setdefault(name, []).append(value)
    return settings


def test_there_is_a_unit_for_each_process_and_a_template_for_nodes() -> None:
    assert {u.name for u in UNITS} >= {"portal.service", "portal@.service", "portal-worker.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_every_unit_is_hardened(unit: Path) -> None:
    settings = _service_settings(unit)
    for name, value in HARDENING.items():
        assert value in settings.get(name, []), f"{unit.name}: {name}={value}"
    assert settings.get("CapabilityBoundingSet") == [""]
    assert settings["User"] == ["portal"]


def test_each_node_of_the_template_has_its_own_home() -> None:
    settings = _service_settings(REPO / "deploy" / "portal@.service")
    (start,) = settings["ExecStart"]
    assert "PORTAL_HOME=/var/lib/portal/nodes/%i" in start and "--port %i" in start
    assert settings["StateDirectory"] == ["portal/nodes/%i"]


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    portal = str(Path(sys.executable).parent / "portal")  # the units name /opt/portal's
    names = []
    for unit in UNITS:
        name = unit.name.replace("@.service", "@8001.service")
        (tmp_path / name).write_text(
            unit.read_text().replace("/opt/portal/.venv/bin/portal", portal)
        )
        names.append(str(tmp_path / name))
    done = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, timeout=60)
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "Failed to " not in line  # no systemd manager in a container
    ]
    assert done.returncode == 0 and not problems, problems
