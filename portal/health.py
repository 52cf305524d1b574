"""Readiness: is each dependency reachable? Used by ``GET /readyz`` and ``portal check``.

``/readyz`` is public (load balancers ask it), so it says only ``{"status": "ok"}`` or
``{"status": "unavailable"}`` (503). The details name the blob folder, the database kind, the
scanner's version and socket: an attacker's map. They are given only to a caller on this machine
(the peer is a loopback address and no forwarded header came with the request, so a request
through a proxy never counts as local) or to an administrator (a bearer token or a signed-in
session).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.requests import Request

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


def run_checks(probes: list[Callable[[], Check]]) -> list[Check]:
    """Run the probes concurrently so that one slow dependency does not hide the others."""
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        return list(pool.map(lambda probe: probe(), probes))


FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")


def readiness(checks: list[Check], *, detailed: bool) -> tuple[dict[str, object], int]:
    """The body and status of ``/readyz``."""
    ready = all(c.ok for c in checks)
    body: dict[str, object] = {"status": "ok" if ready else "unavailable"}
    if detailed:
        body["checks"] = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
        if not ready:
            body["down"] = [c.name for c in checks if not c.ok]
    return body, 200 if ready else 503


def is_local(request: Request) -> bool:
    """The direct peer is this machine, and no proxy (nor a caller posing as one) was involved."""
    if any(name in request.headers for name in FORWARDED_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_see_details(request: Request) -> bool:
    """A local caller, or an administrator (bearer token, or a fully signed-in session).

    Runs in a worker thread (a token is looked up in the database)."""
    from portal.accounts.models import Role
    from portal.errors import Unauthenticated
    from portal.web.principal import authenticate

    if is_local(request):
        return True
    try:
        principal = authenticate(request, api=bool(request.headers.get("authorization")))
    except Unauthenticated:
        return False  # a refused token (audited as such): the public answer
    return principal is not None and principal.mfa_done and principal.role is Role.admin
