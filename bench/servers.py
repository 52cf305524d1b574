"""The benchmarks' servers: each a process of its own, started, measured and stopped.

A server's memory is read from ``/proc``: its peak RSS (``VmHWM``) can be reset before each
measurement, so every figure is the peak of that one run, with no sampling to miss it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# ``portal`` as the installed script runs it (``python -m portal.cli`` would load the module twice:
# once as __main__, once when the command modules import it).
PORTAL = [sys.executable, "-c", "import sys; from portal.cli import main; sys.exit(main())"]
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for {self.name}")

    def reset_peak(self) -> None:
        # "5" resets VmHWM to the current RSS (Linux >= 4.0): a peak per measurement, no sampling.
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def peak_mib(self) -> float:
        return self.status_kib("VmHWM") / 1024

    def rss_mib(self) -> float:
        return self.status_kib("VmRSS") / 1024

    def cpu_s(self) -> float:
        """User and system CPU seconds of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    url: str,
    log: Path,
    cwd: Path = REPO,
    ready: str = "/healthz",
) -> Server:
    """Start ``argv`` in ``cwd`` and wait until ``url + ready`` answers 2xx.

    ``cwd`` matters for the portal: ``python -c`` puts the working folder first on sys.path, so the
    checkout the server is started in is the one whose portal it serves.
    """
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    server = Server(name, process, url, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + ready, timeout=2).is_success:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not start: {log.read_text(errors='replace')[-2000:]}")
