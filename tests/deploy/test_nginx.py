"""deploy/nginx.conf passes Debian's own `nginx -t`, and keeps its promises.

Found by an operator: the shipped file failed `nginx -t` on Debian 12's nginx 1.22 (an `http2 on`
directive 1.22 lacks, `log_format` inside `server`), and had `client_max_body_size 0` everywhere.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.ports import free_port
from tests.harness.waiting import listening, wait_until

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
        # The address the tests connect to, so that the client checks the certificate it pins.
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
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


# --- The shipped file, running: bodies ---------------------------------------------------------


class _Upstream(http.server.BaseHTTPRequestHandler):
    """The portal's stand-in behind nginx: reads the whole body and says how much arrived."""

    protocol_version = "HTTP/1.1"
    received: ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        size = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while (length := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                size += len(self.rfile.read(length))
                self.rfile.readline()
            self.rfile.readline()
        else:
            size = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.received.append((self.path, size))
        answer = json.dumps({"size": size}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: nothing of the test's on stderr


@pytest.fixture
def running_nginx(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, int]], ssl.SSLContext]]:
    """The shipped site, unchanged but for its ports, certificate and paths, in front of a
    stand-in upstream; (the https base URL, what the upstream received, a TLS context that trusts
    the test's own certificate and nothing else)."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    _Upstream.received = []
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    site = SHIPPED.read_text()
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    site = site.replace("    listen [::]:443 ssl http2;\n", "")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    site = site.replace("    listen [::]:80;\n", "")
    site = re.sub(
        r"server 127\.0\.0\.1:800[12];", f"server 127.0.0.1:{upstream.server_port};", site
    )
    assert nginx_test(site, tmp_path).returncode == 0  # writes portal.conf and the certificate
    main = tmp_path / "running.conf"
    temp = "".join(
        f"  {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        "daemon off;\nmaster_process off;\n"  # one process, ours, stopped by its pid
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        f"http {{\n  access_log {tmp_path / 'access.log'};\n{temp}"
        f"  include {tmp_path / 'portal.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(main)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: listening(port), what="nginx", process=process)
        pinned = ssl.create_default_context(cafile=str(tmp_path / "fullchain.pem"))
        yield f"https://127.0.0.1:{port}", _Upstream.received, pinned
    finally:
        process.terminate()
        process.wait(timeout=30)
        upstream.shutdown()
        upstream.server_close()


def test_nginx_refuses_a_large_body_to_sign_in_and_passes_one_to_an_upload_route(
    running_nginx: tuple[str, list[tuple[str, int]], ssl.SSLContext],
) -> None:
    """Issue 18, item 3: the proxy is the first bound. 2 MiB to /sign-in (or any page, or the
    JSON API) is a 413 from nginx, never sent on; 3 MiB to an upload route arrives whole."""
    base, received, pinned = running_nginx
    large = b"a=" + b"b" * (2 * 1024 * 1024)
    with httpx.Client(base_url=base, verify=pinned, timeout=30) as client:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for path in ("/sign-in", "/reviews/SWG24/cases", "/api/v1/reviews"):
            refused = client.post(path, content=large, headers=form)
            assert refused.status_code == 413, (path, refused.status_code)

        def streamed() -> Iterator[bytes]:  # no Content-Length: chunked, counted by nginx
            yield large

        assert client.post("/sign-in", content=streamed(), headers=form).status_code == 413
        assert received == []  # nothing of it reached the portal
        small = client.post("/sign-in", content=b"a=b", headers=form)
        assert small.status_code == 200 and received == [("/sign-in", 3)]
        upload = b"x" * (3 * 1024 * 1024)
        for path in (
            "/api/v1/reviews/SWG24/documents",
            "/api/v1/uploads",
            "/reviews/SWG24/upload",
            "/api/v1/audit/verify",  # an export checked in the console, up to 16 MiB
            "/console/audit/verify-file",
        ):
            taken = client.post(path, content=upload, headers={"Content-Type": "text/plain"})
            assert taken.status_code == 200 and taken.json() == {"size": len(upload)}, path
        export = b"x" * (18 * 1024 * 1024)
        assert client.post("/api/v1/audit/verify", content=export).status_code == 413
