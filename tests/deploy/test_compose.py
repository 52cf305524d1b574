"""deploy/compose.yaml runs as written: an init step first, secrets from files, clamd over TCP,
one key volume for every portal container, a blob store. And .dockerignore keeps keys out.

Found by an operator: the file pointed the portal at tcp://clamd:3310 while the mounted clamd.conf
had no TCP socket and named a group that does not exist, and it had no `portal init` step, no blob
store and no database password for the portal.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from portal.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PORTAL_SERVICES = ("portal-init", "portal", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _conf(name: str) -> dict[str, str]:
    values = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            values[key] = value.strip()
    return values


def test_init_runs_before_every_portal_process(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["portal-init"]["command"] == ["portal", "init"]
    for name in ("portal", "worker"):
        wait = services[name]["depends_on"]["portal-init"]
        assert wait == {"condition": "service_completed_successfully"}, name
    assert services["portal-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_portal_settings_in_compose_are_valid_and_complete(compose: dict[str, Any]) -> None:
    for name in PORTAL_SERVICES:
        env = {k: str(v) for k, v in compose["services"][name]["environment"].items()}
        password = env.pop("PORTAL_DATABASE_PASSWORD_FILE")
        assert password.startswith("/run/secrets/")
        assert "db_password" in compose["services"][name]["secrets"]
        settings = Settings.from_environ(env)  # a bad value would raise, naming it
        assert settings.database_url.startswith("postgresql+psycopg://portal@postgres:")
        assert settings.storage.kind == "s3" and settings.s3_endpoint_url
        assert env["AWS_SHARED_CREDENTIALS_FILE"].startswith("/run/secrets/")
        assert "AWS_SECRET_ACCESS_KEY" not in env  # secrets come from files
        assert settings.key_service.kind == "file"


def test_clamd_listens_where_the_portal_looks(compose: dict[str, Any]) -> None:
    clamd = compose["services"]["clamd"]
    (mount,) = clamd["volumes"]
    conf_name = mount.split(":")[0].removeprefix("./")
    conf = _conf(conf_name)
    env = compose["services"]["portal"]["environment"]
    address = re.fullmatch(r"tcp://clamd:(\d+)", env["PORTAL_CLAMD"])
    assert address is not None and conf["TCPSocket"] == address.group(1)
    assert conf["TCPAddr"] == "0.0.0.0"  # reachable in the compose network
    assert "LocalSocketGroup" not in conf and conf["User"] == "clamav"
    assert conf["AlertExceedsMax"] == "yes"
    spool = conf["TemporaryDirectory"]
    assert any(t.startswith(spool + ":") for t in clamd["tmpfs"])


@pytest.mark.parametrize("name", ["clamd.conf", "clamd-compose.conf"])
def test_clamd_limits_are_at_least_the_upload_limit(name: str) -> None:
    conf = _conf(name)
    limit_mib = 2048  # PORTAL_MAX_UPLOAD_BYTES's default, 2 GiB
    for key in ("MaxFileSize", "MaxScanSize"):
        assert int(conf[key].removesuffix("M")) >= limit_mib, key
    assert int(conf["StreamMaxLength"].removesuffix("M")) > limit_mib
    assert conf["AlertExceedsMax"] == "yes"
    assert conf.get("LocalSocketGroup", "clamav") == "clamav"  # a group that exists


def test_the_host_clamd_listens_on_loopback_only() -> None:
    conf = _conf("clamd.conf")
    assert conf["TCPSocket"] == "3310" and conf["TCPAddr"] == "127.0.0.1"


def test_every_portal_container_mounts_the_one_key_volume(compose: dict[str, Any]) -> None:
    mounts = set()
    for name in PORTAL_SERVICES:
        env = compose["services"][name]["environment"]
        folder = env["PORTAL_KMS"].removeprefix("file://")
        (mount,) = [v for v in compose["services"][name]["volumes"] if v.endswith(":" + folder)]
        mounts.add(mount)
    assert len(mounts) == 1 and mounts.pop().split(":")[0] in compose["volumes"]
    assert "seaweedfs" in compose["services"]  # a blob store, with its bucket made
    assert "s3.bucket.create" in " ".join(compose["services"]["bucket"]["command"])


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("no docker client with the compose plugin here")
    done = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_dockerignore_keeps_keys_and_local_state_out_of_images() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", "var/", "**/keys/", "*.key", "*.pem", "node_modules/", ".git"):
        assert needed in ignored, needed
    copies = re.findall(r"^COPY\s+(.+)$", (DEPLOY / "Containerfile").read_text(), re.M)
    for copy in copies:
        sources = copy.split()[:-1]
        assert not any(s in (".venv", "var", "keys") for s in sources), copy


def test_only_the_proxy_in_front_is_trusted_with_forwarded_headers(
    compose: dict[str, Any],
) -> None:
    """Issue 18: nginx's X-Forwarded-For is believed from its own address only, so that the
    audit log and the sign-in throttle see real clients, and nobody else can name one."""
    gateway = compose["networks"]["default"]["ipam"]["config"][0]["gateway"]
    for name in ("portal",):
        env = {k: str(v) for k, v in compose["services"][name]["environment"].items()}
        env.pop("PORTAL_DATABASE_PASSWORD_FILE")
        assert Settings.from_environ(env).trusted_proxies == (gateway,)
    example = {}
    for line in (DEPLOY / "portal.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    example.pop("PORTAL_DATABASE_PASSWORD_FILE")
    assert Settings.from_environ(example).trusted_proxies == ("127.0.0.1", "::1")
    for unit in ("portal.service", "portal@.service"):
        assert "--host 127.0.0.1" in (DEPLOY / unit).read_text()  # only nginx can reach it
