"""Who may read ``/readyz``'s details (``portal.health``): a caller on this machine or an admin."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")


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
