"""A private clamd for the demo and the test suite.

The demo and the tests cannot download ClamAV's signatures (no network), so this module writes a small
signature database of its own: the EICAR test string, and the project's own test marker. It is NOT a
production scanner: production runs Debian's clamd with freshclam's full signature set (see
``deploy/clamd.conf``).

clamd spools every INSTREAM upload to its TemporaryDirectory in plaintext. That directory is created
here 0700 inside a private folder, so no other local user can read a record while it is scanned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from portal.errors import Failure
from portal.settings import ClamdAddress

# The EICAR anti-virus test file, in two halves so that this source file is not itself flagged.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# A marker of our own: any file containing it is reported as Portal.Test.Marker.
TEST_MARKER = b"PORTAL-TEST-MALWARE-MARKER-0b5e7c1d"

# clamd refuses limits of 4 GiB and over.
CLAMD_LIMIT_CEILING = 4000 * 1024 * 1024


class ClamdStartError(Failure):
    pass


def signature_database() -> str:
    """A ClamAV .ndb body (Name:TargetType:Offset:HexSignature) with our two test signatures."""
    return f"Eicar-Test-Signature:0:*:{EICAR.hex()}\nPortal.Test.Marker:0:*:{TEST_MARKER.hex()}\n"


def clamd_config(
    folder: Path, *, max_bytes: int, disable_cache: bool = False, tcp_port: int | None = None
) -> str:
    """The clamd.conf for a private clamd: limits at least ``max_bytes``, over-limit is a finding.

    With ``tcp_port`` it also listens on 127.0.0.1 at that port, as a clamd shared by several
    nodes does (``PORTAL_CLAMD=tcp://HOST:PORT``); never on another address.
    """
    # The file limits equal the upload limit; the stream limit is a little above it so that an
    # over-limit stream reaches the scanner and comes back as a Heuristics.Limits.Exceeded finding.
    limit = min(max_bytes, CLAMD_LIMIT_CEILING - 1024 * 1024)
    stream_limit = limit + 1024 * 1024
    lines = [
        "Foreground yes",
        f"LocalSocket {folder / 'clamd.sock'}",
        "LocalSocketMode 600",
        f"DatabaseDirectory {folder / 'db'}",
        f"TemporaryDirectory {folder / 'spool'}",
        f"LogFile {folder / 'clamd.log'}",
        "LogTime yes",
        # Without AlertExceedsMax an over-limit file is reported OK: fail closed instead.
        "AlertExceedsMax yes",
        f"StreamMaxLength {stream_limit}",
        f"MaxFileSize {limit}",
        f"MaxScanSize {limit}",
        "ScanArchive yes",
        "SelfCheck 0",
        "ConcurrentDatabaseReload no",
    ]
    if disable_cache:
        lines.append("DisableCache yes")
    if tcp_port is not None:
        lines += ["TCPAddr 127.0.0.1", f"TCPSocket {tcp_port}"]
    return "\n".join(lines) + "\n"


@dataclass
class LocalClamd:
    folder: Path
    process: subprocess.Popen[bytes]
    tcp_port: int | None = None

    @property
    def address(self) -> ClamdAddress:
        return ClamdAddress(kind="unix", path=str(self.folder / "clamd.sock"))

    @property
    def tcp_address(self) -> ClamdAddress:
        """The same clamd over TCP on the loopback; only if it was started with ``tcp_port``."""
        if self.tcp_port is None:
            raise ClamdStartError(f"the clamd in {self.folder} was started without a TCP port")
        return ClamdAddress(kind="tcp", host="127.0.0.1", port=self.tcp_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_clamd(
    folder: Path,
    *,
    max_bytes: int,
    disable_cache: bool = False,
    timeout: float = 30.0,
    tcp_port: int | None = None,
) -> LocalClamd:
    """Start clamd in ``folder`` (created 0700) and wait until it answers PING (on its socket,
    and on 127.0.0.1:``tcp_port`` too when given)."""
    binary = shutil.which("clamd") or "/usr/sbin/clamd"
    if not Path(binary).exists():
        raise ClamdStartError(
            "clamd is not installed. Install Debian's clamav-daemon package "
            "(apt-get install clamav-daemon) or point PORTAL_CLAMD at a running clamd."
        )
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for sub in ("db", "spool"):
        (folder / sub).mkdir(exist_ok=True)
        os.chmod(folder / sub, 0o700)
    (folder / "db" / "portal-test.ndb").write_text(signature_database())
    config = folder / "clamd.conf"
    config.write_text(
        clamd_config(folder, max_bytes=max_bytes, disable_cache=disable_cache, tcp_port=tcp_port)
    )
    socket_path = folder / "clamd.sock"
    socket_path.unlink(missing_ok=True)
    log = open(folder / "clamd.stderr", "wb")  # noqa: SIM115 (kept open for the child)
    process = subprocess.Popen(
        [binary, "--config-file", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    clamd = LocalClamd(folder=folder, process=process, tcp_port=tcp_port)
    from portal.scanning import ScanError, Scanner

    scanners = [Scanner(clamd.address, timeout=2)]
    if tcp_port is not None:
        scanners.append(Scanner(clamd.tcp_address, timeout=2))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if socket_path.exists():
            try:
                if all(scanner.ping() for scanner in scanners):
                    return clamd
            except ScanError:
                pass
        time.sleep(0.05)
    clamd.stop()
    detail = (folder / "clamd.stderr").read_text(errors="replace")[-2000:]
    raise ClamdStartError(f"clamd did not start within {timeout:.0f}s in {folder}:\n{detail}")
