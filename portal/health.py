"""Readiness: is each dependency reachable? Used by ``GET /readyz`` and ``portal check``.

``/readyz`` is public (load balancers ask it), so it says only ``{"status": "ok"}`` or
``{"status": "unavailable"}`` (503). The details name the blob folder, the database kind, the
scanner's version and socket: an attacker's map. They are given only (``portal.web.readiness``) to a caller on this machine
(the peer is a loopback address and no forwarded header came with the request, so a request
through a proxy never counts as local) or to an administrator (a bearer token or a signed-in
session).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from portal.scanning import ScanError, Scanner
from portal.settings import Settings
from storage.keyservice import KeyService


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what it is, or what is wrong and what to do: never a secret


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"cannot query the database: {type(exc).__name__}")
    return Check("database", True, engine.dialect.name)


def check_scanner(scanner: Scanner) -> Check:
    try:
        version = scanner.version()
    except ScanError as exc:
        return Check(
            "clamd",
            False,
            f"{exc}. Start clamd (apt-get install clamav-daemon) or set PORTAL_CLAMD.",
        )
    return Check("clamd", True, version)


def check_storage(settings: Settings) -> Check:
    """The blob store and the key store (a vault needs both)."""
    from portal.blobs import open_vault

    try:
        open_vault(settings).check()
    except Exception as exc:
        return Check("storage", False, f"{settings.storage} is not usable: {exc}")
    return Check("storage", True, str(settings.storage))


def check_keys(keys: KeyService, engine: Engine) -> Check:
    """The key service holds this database's installation keys (the same on every node)."""
    from portal.keys import KeyServiceRefused, check_installation

    try:
        found = check_installation(keys, engine)
    except KeyServiceRefused as refused:
        return Check("keys", False, str(refused))
    except Exception as exc:
        return Check("keys", False, f"the {keys.description} is not usable: {type(exc).__name__}")
    return Check("keys", True, f"{found.describe()} in the {keys.description}")


def run_checks(probes: Sequence[Callable[[], Check]]) -> list[Check]:
    """Run the probes concurrently so that one slow dependency does not hide the others."""
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        return list(pool.map(lambda probe: probe(), probes))


def readiness(checks: list[Check], *, detailed: bool) -> tuple[dict[str, object], int]:
    """The body and status of ``/readyz``."""
    ready = all(c.ok for c in checks)
    body: dict[str, object] = {"status": "ok" if ready else "unavailable"}
    if detailed:
        body["checks"] = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
        if not ready:
            body["down"] = [c.name for c in checks if not c.ok]
    return body, 200 if ready else 503
