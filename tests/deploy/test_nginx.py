"""deploy/nginx.conf passes Debian's own `nginx -t`, and keeps its promises.

Found by an operator: the shipped file failed `nginx -t` on Debian 12's nginx 1.22 (an `http2 on`
directive 1.22 lacks, `log_format` inside `server`), and had `client_max_body_size 0` everywhere.
"""

from __future__ import annotations

import datetime
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"
SHIPPED = REPO / "deploy" / "nginx.conf"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_test(site: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on ``site`` included in an http block, as Debian's nginx.conf includes it.

    Only the paths an operator changes anyway are substituted, so that nothing outside ``folder``
    is written or needed.
    """
    if not Path(NGINX).exists():
        pytest.fail("Debian's nginx is missing: run scripts/setup test (it installs it).")
    cert, key = _certificate(folder)
    site = site.replace("/etc/ssl/portal/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/portal/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/portal.log", str(folder / "portal.log"))
    (folder / "portal.conf").write_text(site)
    (folder / "logs").mkdir(exist_ok=True)
    main = folder / "nginx.conf"
    main.write_text(
        f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\n"
        "events {}\n"
        f"http {{\n  access_log {folder / 'access.log'};\n  include {folder / 'portal.conf'};\n}}\n"
    )
    return subprocess.run(
        [NGINX, "-t", "-p", str(folder), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_shipped_config_passes_nginx_t(tmp_path: Path) -> None:
    done = nginx_test(SHIPPED.read_text(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr


def test_nginx_t_catches_what_the_old_config_had(tmp_path: Path) -> None:
    """The check can fail: the old file's two faults are each refused by nginx 1.22."""
    broken = SHIPPED.read_text().replace("listen 443 ssl http2;", "listen 443 ssl;\n    http2 on;")
    assert nginx_test(broken, tmp_path).returncode != 0
    moved = SHIPPED.read_text().replace(
        "    access_log /var/log/nginx/portal.log portal;",
        "    log_format inner '$uri';\n    access_log /var/log/nginx/portal.log portal;",
    )
    (tmp_path / "moved").mkdir()
    assert nginx_test(moved, tmp_path / "moved").returncode != 0


def _locations(config: str) -> dict[str, str]:
    """``location`` blocks by their match, with their bodies (the file has no nested blocks)."""
    return {
        match.group(1).strip(): match.group(2)
        for match in re.finditer(r"location\s+([^{]+)\{([^}]*)\}", config)
    }


def test_sign_in_is_rate_limited_per_client_address() -> None:
    config = SHIPPED.read_text()
    zone = re.search(r"limit_req_zone\s+\$binary_remote_addr\s+zone=(\w+):", config)
    assert zone is not None
    locations = _locations(config)
    for path in ("= /sign-in", "= /sign-in/code"):
        assert f"limit_req zone={zone.group(1)}" in locations[path], path


def test_only_upload_routes_take_large_bodies_and_nothing_is_spooled() -> None:
    config = SHIPPED.read_text()
    server = config[config.index("listen 443") :]
    assert re.search(r"^\s*client_max_body_size 1m;", server, re.M)  # the default: small
    assert "client_max_body_size 0" not in config
    uploads = [body for match, body in _locations(config).items() if "upload" in match]
    assert len(uploads) == 1
    assert "proxy_request_buffering off;" in uploads[0]
    limit = re.search(r"client_max_body_size (\d+)m;", uploads[0])
    assert limit is not None and int(limit.group(1)) * 1024 * 1024 > 2 * 1024**3
    pattern = next(match for match in _locations(config) if "upload" in match)
    regex = re.compile(pattern.removeprefix("~").strip())
    for path in ("/api/v1/reviews/SWG24/documents", "/api/v1/uploads", "/api/v1/uploads/abc"):
        assert regex.match(path), path
    for path in ("/sign-in", "/api/v1/reviews/SWG24", "/api/v1/uploads/a/b"):
        assert not regex.match(path), path


def test_the_client_address_is_the_one_nginx_saw() -> None:
    config = SHIPPED.read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in config
    assert "$proxy_add_x_forwarded_for" not in config  # would pass on what the client claims
