"""``portal init``, ``serve``, ``check``, ``demo`` and ``worker``: running the portal itself."""

from __future__ import annotations

import dataclasses
import signal
from typing import TYPE_CHECKING

import click

from portal.cli.context import CheckFailure, CliContext, UsageFailure, pass_cli
from portal.settings import Settings

if TYPE_CHECKING:
    from portal.demo import DemoUser


@click.command()
@pass_cli
def init(cli: CliContext) -> None:
    """Create or migrate the database and create missing keys (safe to run again)."""
    from portal.setup import initialise

    for line in initialise(cli.settings):
        click.echo(line)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_cli
def serve(cli: CliContext, host: str, port: int) -> None:
    """Run the web app (behind a TLS reverse proxy in production)."""
    _serve(cli.settings, host, port)


def require_current_schema(settings: Settings) -> None:
    """Refuse to start on a database that ``portal init`` has not brought up to date."""
    from portal.db import make_engine
    from portal.setup import check_schema

    engine = make_engine(settings.database_url)
    try:
        schema = check_schema(engine)
    finally:
        engine.dispose()
    if not schema.ok:
        raise CheckFailure(f"The database is not ready: {schema.detail}.")


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from portal.logs import install_access_log_redaction
    from portal.web.app import create_app

    require_current_schema(settings)
    install_access_log_redaction()

    for warning in development_warnings(settings):
        click.secho(f"WARNING: {warning}", fg="yellow", err=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level,
        # Forwarded headers are applied by the app itself, from PORTAL_TRUSTED_PROXIES only
        # (portal/web/app.py); uvicorn's own default would trust any local caller's.
        proxy_headers=False,
        server_header=False,
        date_header=True,
    )


def development_warnings(settings: Settings) -> list[str]:
    """Shortcuts fit for one machine that must never reach production unnoticed."""
    warnings = []
    if settings.database_url.startswith("sqlite"):
        warnings.append("the database is SQLite (single machine only); set PORTAL_DATABASE_URL.")
    if settings.storage.kind == "file":
        warnings.append(f"blobs are kept in a local folder ({settings.storage.path}).")
    if not settings.uses_tls:
        warnings.append(
            f"PORTAL_PUBLIC_URL is {settings.public_url}: cookies are not marked Secure. "
            "Serve behind TLS in production."
        )
    return warnings


@click.command()
@pass_cli
def check(cli: CliContext) -> None:
    """Check the configuration and that every dependency is reachable."""
    from portal import health
    from portal.db import describe_database, make_engine
    from portal.scanning import Scanner

    settings = cli.settings
    click.echo(f"database  {describe_database(settings.database_url)}")
    click.echo(f"storage   {settings.storage}")
    click.echo(f"clamd     {settings.clamd}")
    click.echo(f"keys      {settings.key_service.describe()}")
    engine = make_engine(settings.database_url)
    try:
        checks = health.run_checks(
            [
                lambda: health.check_database(engine),
                lambda: health.check_storage(settings),
                lambda: health.check_scanner(Scanner(settings.clamd, timeout=5)),
            ]
        )
        from portal.blobs import open_keys
        from portal.setup import check_schema

        checks.append(check_schema(engine))
        if checks[-1].ok:
            checks.append(health.check_keys(open_keys(settings), engine))
    finally:
        engine.dispose()
    for item in checks:
        mark = click.style("ok  ", fg="green") if item.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {item.name}: {item.detail}")
    for warning in development_warnings(settings):
        click.secho(f"WARNING: {warning}", fg="yellow", err=True)
    if not all(item.ok for item in checks):
        raise CheckFailure("Some checks failed: see the lines marked FAIL above.")
    click.echo("Everything the portal needs is reachable.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_cli
def demo(cli: CliContext, host: str, port: int) -> None:
    """Run a ready demo on this machine: database, keys, a private clamd if none is running."""
    from portal.clamd_local import start_local_clamd
    from portal.demo import describe
    from portal.scanning import ScanError, Scanner
    from portal.setup import initialise

    settings = cli.settings
    for line in initialise(settings):
        click.echo(line)
    people = _demo_people(settings)
    local_clamd = None
    try:
        Scanner(settings.clamd, timeout=2).ping()
    except ScanError:
        if settings.sources.get("PORTAL_CLAMD"):
            raise CheckFailure(f"clamd at {settings.clamd} does not answer.") from None
        click.secho(
            "WARNING: no clamd answers at the default address; starting a private clamd with the "
            "DEMO signature set (EICAR and a test marker only). Never use this in production.",
            fg="yellow",
            err=True,
        )
        local_clamd = start_local_clamd(
            settings.home / "clamd", max_bytes=settings.max_upload_bytes
        )
        settings = dataclasses.replace(settings, clamd=local_clamd.address)
    base = f"http://{host}:{port}"
    click.echo("")
    for line in describe(people, base):
        click.echo(line)
    click.echo("")
    click.echo(f"The portal is starting at {base}/  (readiness: {base}/readyz)")
    click.echo("Press Ctrl+C to stop.")
    # uvicorn stops gracefully on SIGTERM, then raises the signal again under the handler that
    # was there before it: Python's default would end the process on the spot, skipping the
    # clean-up below and leaving the private clamd running. Ours unwinds instead.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _serve(settings, host, port)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if local_clamd is not None:
            local_clamd.stop()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@click.command()
@click.option("--once", is_flag=True, help="Run one round and exit (for cron or a systemd timer).")
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(0.5, 3600))
@pass_cli
def worker(cli: CliContext, once: bool, interval: float) -> None:
    """Scan new uploads and retry failed scans, sweep orphan blobs, seal the audit log."""
    from portal.runtime import build_runtime
    from portal.worker import Worker

    require_current_schema(cli.settings)
    runtime = build_runtime(cli.settings)
    work = Worker(runtime)
    try:
        if once:
            click.echo(work.run_round(force=True).summary())
            return
        click.echo(f"worker running every {interval:g}s; Ctrl+C to stop")
        work.run_forever(interval=interval, report=click.echo)
    except KeyboardInterrupt:
        click.echo("worker stopped")
    finally:
        runtime.engine.dispose()


def _demo_people(settings: Settings) -> list[DemoUser]:
    from datetime import UTC, datetime

    from sqlmodel import Session

    from portal.accounts.passwords import PasswordHasher
    from portal.auditing import Auditor
    from portal.blobs import open_vault
    from portal.db import make_engine
    from portal.demo import DemoRefused, create_demo
    from portal.keys import checked_keys, secret_box

    keys = checked_keys(settings)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            try:
                people = create_demo(
                    db,
                    hasher=PasswordHasher(),
                    box=secret_box(keys),
                    now=datetime.now(UTC),
                    issuer="Secure document exchange (demo)",
                    auditor=Auditor.from_keys(keys),
                    vault=open_vault(settings, keys),
                )
            except DemoRefused as refused:
                raise UsageFailure(str(refused)) from None
            db.commit()
    finally:
        engine.dispose()
    return people
