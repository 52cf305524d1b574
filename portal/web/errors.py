"""The one boundary where exceptions become HTTP responses (handlers installed by portal.web.app).

Errors raised anywhere below a handler are ``portal.errors.PortalError``s and know nothing of
HTTP; this module maps each kind to its status (``STATUS``; the nearest class in an error's MRO
wins) and answers with the error's own code and message. API callers (``/api/…``, the health
checks) get ``{"error": {"code": ..., "message": ...}}``; people get a page in plain English that
says what to do next. Messages never confirm that something the caller may not see exists.

A ``Failure``, or a PortalError of no kind listed here, is the server's own: it goes on to the
500 handler (the detail to the server log with the request id, never to the caller).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.errors import (
    Conflict,
    Gone,
    Invalid,
    NotAllowed,
    NotFound,
    PortalError,
    Refusal,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unavailable,
    UnsupportedType,
)
from portal.uploads.errors import PartChecksumMismatch, VersionUnsupported
from portal.web.rendering import render
from storage import KeyNotFound

logger = logging.getLogger("portal.web.app")

STATUS: dict[type[PortalError], int] = {
    Refusal: 400,
    Invalid: 400,
    Unauthenticated: 401,
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    UnsupportedType: 415,
    TooMany: 429,
    Unavailable: 503,
    # The statuses tus 1.0 defines for its own failures (a client library acts on them):
    VersionUnsupported: 412,  # core protocol: Tus-Resumable missing or another version
    PartChecksumMismatch: 460,  # checksum extension: "Checksum Mismatch"
}

HEADINGS = {
    400: "There is a problem with the request",
    401: "Sign in to continue",
    403: "This action was refused",
    404: "Page not found",
    405: "This action is not available here",
    410: "This has been destroyed",
    413: "The file is too large",
    415: "This type of file is not accepted",
}
# Where the status alone would mislead: a form too large to read is not a file (web.bodies).
HEADINGS_BY_CODE = {"body_too_large": "This request is too large"}

NOT_FOUND = NotFound()


def status_of(error: PortalError) -> int | None:
    """The HTTP status of ``error``'s kind; None for a failure of the server (a 500)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return None


def refusal_status(refusal: Refusal) -> int:
    """The status of a refusal a page shows itself (on its form) instead of the error page."""
    status = status_of(refusal)
    assert status is not None  # every Refusal is under ``Refusal: 400`` at least
    return status


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz")


def problem_response(request: Request, status: int, code: str, message: str) -> Response:
    """Every error response: a JSON problem for the API, the error page for people."""
    if _wants_json(request) or not hasattr(request.state, "runtime"):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"error": {"code": code, "message": message}}, status_code=status, headers=headers
        )
    heading = HEADINGS_BY_CODE.get(code) or HEADINGS.get(status, "Sorry, there is a problem")
    return render(request, "error.html", {"heading": heading, "message": message}, status=status)


async def on_portal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PortalError)
    status = status_of(exc)
    if status is None:
        raise exc  # the server's own failure: on to the 500 handler
    return problem_response(request, status, exc.code, exc.message)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return problem_response(request, 404, NOT_FOUND.code, NOT_FOUND.message)
    if exc.status_code == 405:
        response = problem_response(
            request, 405, "method_not_allowed", "This address does not accept that kind of request."
        )
        if exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    return problem_response(request, exc.status_code, "http_error", str(exc.detail))


async def on_missing_key(request: Request, exc: Exception) -> Response:
    # A review the database holds whose key this node's key service lacks: the node is not on
    # the installation's shared key service (the start-up check catches this; this is the
    # fallback for a key service that changed under a running node). Never a 500, never content.
    logger.error(
        "a review key is missing from this node's key service (request %s)",
        request.state.request_id,
    )
    return problem_response(
        request,
        503,
        "keys_unavailable",
        "This server cannot open the keys of this review just now, and nothing was changed. "
        "Try again in a few minutes; if it keeps happening, tell your administrator the request "
        f"id {request.state.request_id}.",
    )


async def on_error(request: Request, exc: Exception) -> Response:
    # The detail goes to the server log (with the request id), never to the caller.
    return problem_response(
        request,
        500,
        "internal_error",
        "Something went wrong on our side and nothing was changed. Try again in a few minutes; "
        f"if it keeps happening, tell your administrator the request id {request.state.request_id}.",
    )


HANDLERS = {
    PortalError: on_portal_error,
    HTTPException: on_http_exception,
    KeyNotFound: on_missing_key,
    Exception: on_error,
}
