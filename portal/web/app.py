"""The web application, put together in one constructor call: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from portal import health
from portal.accounts.passwords import PasswordHasher
from portal.runtime import Clock, Runtime, build_runtime, utc_now
from portal.scanning import Scanner
from portal.settings import Settings
from portal.web import errors as web_errors
from portal.web import openapi, openapi_page
from portal.web.access import PUBLIC, route
from portal.web.accounts import api as account_api
from portal.web.accounts import pages as account_views
from portal.web.accounts import signin as account_pages
from portal.web.console.routes import ROUTES as CONSOLE_ROUTES
from portal.web.destruction.routes import ROUTES as DESTRUCTION_ROUTES
from portal.web.exchange import api as exchange_api
from portal.web.exchange import manage_pages
from portal.web.exchange import pages as exchange_pages
from portal.web.middleware import SecurityHeaders
from portal.web.readiness import may_see_details
from portal.web.rendering import make_environment
from portal.web.uploads import api as uploads_api


async def healthz(request: Request) -> JSONResponse:
    """Alive: the process answers. Says nothing about dependencies (that is /readyz)."""
    return JSONResponse({"status": "ok"})


async def openapi_json(request: Request) -> Response:
    return Response(openapi.served(), media_type="application/json")


async def readyz(request: Request) -> JSONResponse:
    """Ready: database, storage and scanner all reachable; 503 when one is not.

    Anyone may ask, and is told ``{"status": ...}`` only; what each check found (folders, the
    database kind, the scanner's version and socket) is for a caller on this machine or an
    administrator's token (portal/web/readiness.py, ``may_see_details``).
    """
    runtime: Runtime = request.state.runtime
    probes = [
        partial(health.check_database, runtime.engine),
        partial(health.check_storage, runtime.settings),
        partial(health.check_keys, runtime.keys, runtime.engine),
        partial(health.check_scanner, Scanner(runtime.settings.clamd, timeout=5)),
    ]
    checks = await run_in_threadpool(health.run_checks, probes)
    detailed = await run_in_threadpool(may_see_details, request)
    body, status = health.readiness(checks, detailed=detailed)
    return JSONResponse(body, status_code=status)


def routes() -> list[BaseRoute]:
    return [
        route("/healthz", healthz, rule=PUBLIC, methods=["GET"]),
        route("/readyz", readyz, rule=PUBLIC, methods=["GET"]),
        route("/api/v1/openapi.json", openapi_json, rule=PUBLIC, methods=["GET"]),
        route("/docs/api", openapi_page.api_page, rule=PUBLIC, methods=["GET"]),
        *account_pages.ROUTES,
        *account_views.ROUTES,
        *account_api.ROUTES,
        *exchange_api.ROUTES,
        *manage_pages.ROUTES,  # before exchange_pages: /reviews/new is not a review code
        *exchange_pages.ROUTES,
        *uploads_api.ROUTES,
        *DESTRUCTION_ROUTES,
        *CONSOLE_ROUTES,
        Mount(
            "/static", StaticFiles(directory=Path(__file__).parent.parent / "static"), name="static"
        ),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    password_hasher: PasswordHasher | None = None,
) -> Starlette:
    runtime = build_runtime(settings, clock=clock, password_hasher=password_hasher)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        # Lifespan state: handlers see it as request.state.runtime (and the page templates as
        # request.state.templates: the web layer's, not the runtime's); nothing is global.
        try:
            yield {"runtime": runtime, "templates": make_environment()}
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
        exception_handlers=web_errors.HANDLERS,
        lifespan=lifespan,
    )
