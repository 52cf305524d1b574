"""Schema migrations (Alembic), applied by ``portal init``; running them twice changes nothing.

Several ``portal init`` may start at once (one per node of a deployment, or a container restarted
while another starts). On PostgreSQL each takes a session-level advisory lock on a fixed key
before it reads the schema's revision, so the second waits for the first and then finds the schema
up to date; without it both saw an empty database, both created ``alembic_version``, and one died
with a ``UniqueViolation``. On SQLite the migration's own transaction starts with
``BEGIN IMMEDIATE`` (portal.db), which already makes a second writer wait; ``migration_lock`` adds
a lock file beside the database so that a caller can hold the lock around more than the migration.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from portal.errors import Conflict
from storage import Vault

MIGRATIONS = Path(__file__).parent / "migrations"

# The advisory lock's key: "portal" and a 1 in 64 bits. Advisory locks are per database, so two
# portals sharing a PostgreSQL server but not a database never wait for each other.
MIGRATION_LOCK_KEY = int.from_bytes(b"portal\x00\x01", "big")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """Hold the lock that concurrent ``portal init`` take; yields the connection that holds it.

    Blocks until no other process holds it. Pass the connection to ``upgrade_database`` to migrate
    under the lock; anything else done inside the ``with`` (creating keys, say) is serialised with
    the other processes' too. Not reentrant: a second ``migration_lock`` on the same database from
    inside the first waits for ever.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            with _advisory_lock(connection):
                yield connection
        else:
            with _file_lock(engine):
                yield connection


@contextmanager
def _advisory_lock(connection: Connection) -> Iterator[None]:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()  # a session-level lock outlives the transaction that took it
    try:
        yield
    finally:
        try:
            connection.rollback()  # a failed migration leaves its transaction aborted
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        except Exception:
            # Never hand a connection that may still hold the lock back to the pool: closing
            # it ends the session, and PostgreSQL releases the lock with it. What went wrong
            # inside the ``with`` (if anything) is the error worth raising, not this one.
            connection.invalidate()


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private database: nobody else can migrate it
        return
    path = Path(database + ".migration-lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with suppress(OSError):
                fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


class MigrationRefused(Conflict):
    """A migration cannot run as asked; the message says what to do (``portal init``)."""


def upgrade_database(
    bind: Engine | Connection, *, vault: Vault | None = None
) -> tuple[str | None, str]:
    """Bring the schema to the newest revision. Returns (revision before, revision after).

    Given an engine, it takes ``migration_lock`` for the migration; given the connection that a
    caller's ``migration_lock`` yielded, it migrates on that connection, under the caller's lock.
    ``vault`` is what a migration that seals existing rows under their review's key uses
    (0016_sealed_text); without it such a migration refuses (``MigrationRefused``) when there
    are rows to seal, and runs when there are none (a new database).
    """
    if isinstance(bind, Engine):
        with migration_lock(bind) as connection:
            return _upgrade(connection, vault)
    return _upgrade(bind, vault)


def _upgrade(connection: Connection, vault: Vault | None) -> tuple[str | None, str]:
    config = _config()
    with connection.begin():
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        config.attributes["vault"] = vault
        command.upgrade(config, "head")
    return before, head_revision()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head
