"""Databases for the tests: SQLite files and PostgreSQL, migrated to the newest schema.

PostgreSQL is the server on 127.0.0.1:5432 when one answers (user ``postgres``, trust auth), else a
throwaway cluster started here with Debian's ``initdb``/``pg_ctl``. Set ``PORTAL_TEST_PG=cluster`` to
force the throwaway cluster, or ``PORTAL_TEST_PG=postgresql://...`` to use another server.

Each test gets a fresh database: migrations run once per session into a template database, and each
PostgreSQL test database is a copy of it (``CREATE DATABASE ... TEMPLATE``), which takes milliseconds.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import Engine

from portal.db import make_engine
from portal.migrate import upgrade_database

from .ports import free_port
from .waiting import wait_until

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _start_cluster(folder: Path) -> tuple[str, list[str]]:
    """initdb + pg_ctl start in ``folder``; returns (admin URL, stop command)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.fail(
            "No PostgreSQL server answers on 127.0.0.1:5432 and initdb is not installed. "
            "Install Debian's postgresql package (apt-get install postgresql) or run the README's "
            "test command, which installs it."
        )
    bindir = Path(candidates[-1]).parent
    port = free_port()
    data = folder / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as the postgres system user.
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    options += " -c fsync=off -c max_connections=200"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    stop = [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL server the tests may create databases on (admin URL, psycopg form)."""
    choice = os.environ.get("PORTAL_TEST_PG", "")
    if choice.startswith("postgresql://"):
        if not _answers(choice):
            pytest.fail(f"PORTAL_TEST_PG={choice} does not answer.")
        yield choice
        return
    if choice != "cluster" and _answers(DEFAULT_SERVER):
        yield DEFAULT_SERVER
        return
    folder = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    url, stop = _start_cluster(folder)
    wait_until(
        lambda: _answers(url), what=f"the throwaway PostgreSQL cluster in {folder}", every=0.2
    )
    try:
        yield url
    finally:
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _with_database(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def sqlalchemy_url(psycopg_url: str) -> str:
    return "postgresql+psycopg" + psycopg_url.removeprefix("postgresql")


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A database migrated to the newest schema, copied for each test."""
    name = f"portal_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = make_engine(sqlalchemy_url(_with_database(pg_admin_url, name)))
    upgrade_database(engine)
    engine.dispose()
    try:
        yield name
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_database_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (SQLAlchemy URL)."""
    name = f"portal_test_{secrets.token_hex(6)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(pg_template)
            )
        )
    try:
        yield sqlalchemy_url(_with_database(pg_admin_url, name))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def empty_pg_database_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (no schema), for tests of migrations themselves."""
    name = f"portal_empty_{secrets.token_hex(6)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield sqlalchemy_url(_with_database(pg_admin_url, name))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "portal.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database file for one test (SQLAlchemy URL)."""
    path = tmp_path / "portal.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test once on SQLite and once on PostgreSQL: a fresh migrated database each."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_database_url"))
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()
