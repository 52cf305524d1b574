"""Waiting for something the tests started, without racing the machine's load.

A test that waits for a server to listen or a scan to finish must not fail because the shared
2-core machine was slow for a while: that would be a test that fails by chance. Every such wait
ends as soon as the thing happens, so a generous cap costs nothing when all is well; the cap only
decides how long a real hang takes to be reported (pytest-timeout stops a test at 300 s anyway).
A process that has died is reported at once, not at the cap.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a start-up on a machine ten times slower than usual, short of pytest's timeout.
PATIENCE = 150.0


class WaitedTooLong(AssertionError):
    """What was waited for did not happen within the cap, or its process died first."""


def wait_until(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float = PATIENCE,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    every: float = 0.1,
) -> T:
    """Call ``check`` until it gives something other than None/False, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if process is not None and process.poll() is not None:
            raise WaitedTooLong(f"{what}: the process stopped (exit {process.returncode})")
        if time.monotonic() > deadline:
            raise WaitedTooLong(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_listener(
    port: int,
    *,
    what: str,
    timeout: float = PATIENCE,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    host: str = "127.0.0.1",
) -> None:
    wait_until(
        lambda: listening(port, host),
        what=f"{what} listening on {host}:{port}",
        timeout=timeout,
        process=process,
    )
