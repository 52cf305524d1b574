"""The web application, put together in one constructor call: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from portal import health, openapi, openapi_page
from portal.accounts import account_views
from portal.accounts import views as account_pages
from portal.accounts.passwords import PasswordHasher
from portal.console.web import ROUTES as CONSOLE_ROUTES
from portal.destruction.web import ROUTES as DESTRUCTION_ROUTES
from portal.exchange import api as exchange_api
from portal.exchange import manage_pages
from portal.exchange import pages as exchange_pages
from portal.exchange.errors import ExchangeError
from portal.runtime import Clock, Runtime, build_runtime, utc_now
from portal.scanning import Scanner
from portal.settings import Settings
from portal.uploads import api as uploads_api
from portal.web.access import PUBLIC, route
from portal.web.errors import HttpProblem
from portal.web.middleware import SecurityHeaders
from portal.web.rendering import render
from storage import KeyNotFound

logger = logging.getLogger("portal.app")


async def healthz(request: Request) -> JSONResponse:
    """Alive: the process answers. Says nothing about dependencies (that is /readyz)."""
    return JSONResponse({"status": "ok"})


async def openapi_json(request: Request) -> Response:
    return Response(openapi.served(), media_type="application/json")


async def readyz(request: Request) -> JSONResponse:
    """Ready: database, storage and scanner all reachable; 503 when one is not.

    Anyone may ask, and is told ``{"status": ...}`` only; what each check found (folders, the
    database kind, the scanner's version and socket) is for a caller on this machine or an
    administrator's token (portal/health.py, ``may_see_details``).
    """
    runtime: Runtime = request.state.runtime
    probes = [
        partial(health.check_database, runtime.engine),
        partial(health.check_storage, runtime.settings),
        partial(health.check_keys, runtime.keys, runtime.engine),
        partial(health.check_scanner, Scanner(runtime.settings.clamd, timeout=5)),
    ]
    checks = await run_in_threadpool(health.run_checks, probes)
    detailed = await run_in_threadpool(health.may_see_details, request)
    body, status = health.readiness(checks, detailed=detailed)
    return JSONResponse(body, status_code=status)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz")


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


def problem_response(request: Request, status: int, code: str, message: str) -> Response:
    """The one place where errors become HTTP responses."""
    if _wants_json(request) or not hasattr(request.state, "runtime"):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"error": {"code": code, "message": message}}, status_code=status, headers=headers
        )
    heading = HEADINGS_BY_CODE.get(code) or HEADINGS.get(status, "Sorry, there is a problem")
    return render(request, "error.html", {"heading": heading, "message": message}, status=status)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return problem_response(request, exc.status, exc.code, exc.message)


async def on_exchange_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ExchangeError)
    return problem_response(request, exc.status, exc.code, exc.message)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        problem = HttpProblem.not_found()
        return problem_response(request, 404, problem.code, problem.message)
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


def routes() -> list[BaseRoute]:
    return [
        route("/healthz", healthz, rule=PUBLIC, methods=["GET"]),
        route("/readyz", readyz, rule=PUBLIC, methods=["GET"]),
        route("/api/v1/openapi.json", openapi_json, rule=PUBLIC, methods=["GET"]),
        route("/docs/api", openapi_page.api_page, rule=PUBLIC, methods=["GET"]),
        *account_pages.ROUTES,
        *account_views.ROUTES,
        *exchange_api.ROUTES,
        *manage_pages.ROUTES,  # before exchange_pages: /reviews/new is not a review code
        *exchange_pages.ROUTES,
        *uploads_api.ROUTES,
        *DESTRUCTION_ROUTES,
        *CONSOLE_ROUTES,
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    password_hasher: PasswordHasher | None = None,
) -> Starlette:
    runtime = build_runtime(settings, clock=clock, password_hasher=password_hasher)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        # Lifespan state: handlers see it as request.state.runtime; nothing is global.
        try:
            yield {"runtime": runtime}
        finally:
            runtime.engine.dispose()

    middleware = [Middleware(SecurityHeaders, tls=settings.uses_tls)]
    if settings.trusted_proxies:
        # Outermost: every layer (the audit log's client address, the sign-in throttle, /readyz)
        # sees the client the trusted proxy names; from any other peer the headers are ignored.
        # uvicorn's own middleware, so that the rule is exactly the one its knob documents.
        middleware.insert(
            0, Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    return Starlette(
        routes=routes(),
        middleware=middleware,
        exception_handlers={
            HttpProblem: on_problem,
            ExchangeError: on_exchange_error,
            HTTPException: on_http_exception,
            KeyNotFound: on_missing_key,
            Exception: on_error,
        },
        lifespan=lifespan,
    )
