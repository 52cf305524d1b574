"""Small accessors for what a handler needs from the request."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request

from portal.auditing import Origin

if TYPE_CHECKING:
    from portal.exchange.acting import Acting
    from portal.exchange.ingest import Ingest
    from portal.runtime import Runtime

URLENCODED = "application/x-www-form-urlencoded"


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


def origin_of(request: Request) -> Origin:
    host = request.client.host if request.client else None
    try:
        address = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        address = None  # not an address (a Unix socket, a test client): nothing to record
    return Origin(client_address=address, request_id=request.state.request_id)


def is_urlencoded(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == URLENCODED


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == (
        "multipart/form-data"
    )


def submitted_form(request: Request) -> Any:
    """The URL-encoded form of a POST, parsed before the handler ran (see web.access.route).

    Multipart bodies are never parsed here: Starlette would spool uploaded files to disk in
    plaintext. Upload handlers stream them instead.
    """
    return getattr(request.state, "form", None) or {}


def acting_of(request: Request) -> Acting:
    """The signed-in caller as the exchange's services see them."""
    from portal.exchange.acting import Acting

    principal = request.state.principal
    runtime = runtime_of(request)
    return Acting.as_caller(
        principal.caller, now=runtime.clock(), origin=origin_of(request), refusals=runtime.auditor
    )


def ingest_of(request: Request) -> Ingest:
    """The ingest service (portal.exchange.ingest) on this request's runtime."""
    from portal.exchange.ingest import Ingest

    runtime = runtime_of(request)
    return Ingest(
        engine=runtime.engine,
        vault=runtime.vault,
        auditor=runtime.auditor,
        scanner=runtime.scanner,
        clock=runtime.clock,
        max_bytes=runtime.settings.max_upload_bytes,
    )


def scan_after(request: Request, reference: str) -> BackgroundTask:
    """Scan a new document right after the response; the worker retries what this leaves."""
    return BackgroundTask(ingest_of(request).scan(reference))


def path_id(request: Request, name: str) -> int:
    """The route's ``name`` parameter as a row id; NotFound if it is not one."""
    from portal.errors import NotFound
    from portal.models import parse_id

    number = parse_id(request.path_params[name])
    if number is None:
        raise NotFound()
    return number
