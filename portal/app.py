"""The web application, put together in one constructor call: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from portal import health
from portal.db import make_engine
from portal.scanning import Scanner
from portal.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """What a request handler may use: built once per app, never global."""

    settings: Settings
    engine: Engine
    scanner: Scanner


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


async def healthz(request: Request) -> JSONResponse:
    """Alive: the process answers. Says nothing about dependencies (that is /readyz)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready: database, storage and scanner all reachable; 503 naming what is down."""
    runtime = runtime_of(request)
    probes = [
        partial(health.check_database, runtime.engine),
        partial(health.check_storage, runtime.settings),
        partial(health.check_scanner, Scanner(runtime.settings.clamd, timeout=5)),
    ]
    checks = await run_in_threadpool(health.run_checks, probes)
    body = {
        "status": "ok" if all(c.ok for c in checks) else "unavailable",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    if not all(c.ok for c in checks):
        body["down"] = [c.name for c in checks if not c.ok]
    return JSONResponse(body, status_code=200 if all(c.ok for c in checks) else 503)


def create_app(settings: Settings) -> Starlette:
    runtime = Runtime(
        settings=settings,
        engine=make_engine(settings.database_url),
        scanner=Scanner(settings.clamd),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        # Lifespan state: handlers see it as request.state.runtime; nothing is global.
        try:
            yield {"runtime": runtime}
        finally:
            runtime.engine.dispose()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
