"""The database: one engine per process, SQLite on one machine, PostgreSQL in production.

SQLite is tuned for durability over speed: an upload or an audit event reported as stored must survive
a power cut (``synchronous=FULL``), readers must not block the writer (WAL), and foreign keys are on so
that no row can point at nothing.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """Build the engine for a ``sqlite:///`` or ``postgresql+psycopg://`` URL."""
    # A database error's message must never carry the values of the statement into a log or a
    # traceback: they can be titles, e-mail addresses or wrapped keys.
    kwargs.setdefault("hide_parameters", True)
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            private_sqlite_file(Path(path))
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and never takes the write lock up front,
        # so two writers can both read and then deadlock on upgrade. We issue BEGIN IMMEDIATE ourselves
        # so that a transaction that will write holds the lock from its first statement.
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(database_url, pool_pre_ping=True, **kwargs)


def private_sqlite_file(path: Path) -> None:
    """The database file (and the -wal and -shm files SQLite gives the same mode) for the
    portal's own user only: it holds hashes, wrapped keys and the audit log."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        sibling = path.with_name(path.name + suffix)
        if sibling.exists() and sibling.stat().st_mode & 0o077:
            with suppress(PermissionError):  # not ours to change: the operator's choice
                os.chmod(sibling, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we send BEGIN ourselves (see make_engine)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def describe_database(database_url: str) -> str:
    """A loggable description of the database: never the password."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)
