"""The database copied out of one installation and into another.

PostgreSQL: ``pg_dump --format=custom`` out, ``pg_restore --single-transaction`` in, each run
with an argument list (no shell) and the client programs of the server's own major version. The
dump reads a snapshot exported by a transaction of ours, in which the audit log's head and the
schema revision are read too, so the manifest describes exactly what the dump holds.

SQLite: the backup API copies a consistent image of the live file (readers and the writer go on);
the copy is switched out of WAL so that it is one self-contained file, and restored by copying it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, select, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from audit.tables import HEAD_ID, head_table
from portal.db import make_engine

from .errors import BackupFailed, BackupInvalid, BackupRefused
from .files import FILE_MODE, Written, create_private_file, hash_file

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
FILE_NAMES = {POSTGRESQL: "database.pgdump", SQLITE: "database.sqlite3"}
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin/"
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


@dataclass(frozen=True)
class AuditHead:
    seq: int
    hash: str


@dataclass(frozen=True)
class DatabaseCopy:
    kind: str
    file_name: str
    made_with: str
    written: Written
    revision: str | None
    audit_head: AuditHead


def database_kind(database_url: str) -> str:
    return SQLITE if make_url(database_url).get_backend_name() == "sqlite" else POSTGRESQL


def read_audit_head(connection: Connection) -> AuditHead:
    row = connection.execute(
        select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == HEAD_ID)
    ).first()
    if row is None:
        return AuditHead(0, "")
    return AuditHead(int(row.seq), str(row.hash))


def read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


# -- out ---------------------------------------------------------------------------------------


def dump_database(database_url: str, folder: Path) -> DatabaseCopy:
    """Copy the database into ``folder`` (a new 0600 file); say what was copied."""
    kind = database_kind(database_url)
    target = folder / FILE_NAMES[kind]
    try:
        if kind == SQLITE:
            return _dump_sqlite(_sqlite_path(database_url), target)
        return _dump_postgresql(database_url, target)
    except SQLAlchemyError as exc:
        raise BackupFailed(f"The database could not be read: {_reason(exc)}.") from None


def _dump_postgresql(database_url: str, target: Path) -> DatabaseCopy:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            major = _server_major(connection)
            pg_dump = find_pg_tool("pg_dump", major)
            snapshot_reader = connection.execution_options(isolation_level="REPEATABLE READ")
            with snapshot_reader.begin():
                # pg_dump reads this transaction's snapshot: the head and revision read here are
                # those of the dump, even while the portal goes on writing.
                snapshot = snapshot_reader.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                head = read_audit_head(snapshot_reader)
                revision = read_revision(snapshot_reader)
                fd = create_private_file(target)
                try:
                    _run(
                        [
                            str(pg_dump),
                            "--format=custom",
                            # Uncompressed: what a backup holds can be searched byte for byte
                            # (for key material, say); sealed blobs and keys hardly compress.
                            "--compress=0",
                            "--no-password",
                            f"--snapshot={snapshot}",
                            f"--dbname={_libpq_url(database_url)}",
                        ],
                        database_url,
                        stdout=fd,
                    )
                    os.fsync(fd)
                finally:
                    os.close(fd)
    finally:
        engine.dispose()
    return DatabaseCopy(
        kind=POSTGRESQL,
        file_name=target.name,
        made_with=_tool_version(pg_dump),
        written=hash_file(target),
        revision=revision,
        audit_head=head,
    )


def _dump_sqlite(source: Path, target: Path) -> DatabaseCopy:
    if not source.is_file():
        raise BackupFailed(f"There is no SQLite database at {source}: check PORTAL_DATABASE_URL.")
    os.close(create_private_file(target))
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as live,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            live.backup(copy)
            # One self-contained file: no -wal or -shm beside it, in the backup or restored.
            copy.execute("PRAGMA journal_mode=DELETE")
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupFailed(f"The SQLite database {source} could not be copied: {exc}.") from None
    if check != "ok":
        raise BackupFailed(f"The copy of the SQLite database {source} is damaged: {check}.")
    os.chmod(target, FILE_MODE)
    with _sqlite_reader(target) as connection:
        head = read_audit_head(connection)
        revision = read_revision(connection)
    return DatabaseCopy(
        kind=SQLITE,
        file_name=target.name,
        made_with=f"the sqlite3 backup API (SQLite {sqlite3.sqlite_version})",
        written=hash_file(target),
        revision=revision,
        audit_head=head,
    )


# -- in ----------------------------------------------------------------------------------------


def database_contents(database_url: str) -> list[str]:
    """The tables the database holds: [] for a new, empty database (or no SQLite file yet)."""
    try:
        if database_kind(database_url) == SQLITE:
            path = _sqlite_path(database_url)
            if not path.exists():
                return []
            with _sqlite_reader(path) as connection:
                return sorted(inspect(connection).get_table_names())
        engine = make_engine(database_url)
        try:
            with engine.connect() as connection:
                inspector = inspect(connection)
                return sorted(
                    f"{schema}.{table}"
                    for schema in inspector.get_schema_names()
                    if schema != "information_schema" and not schema.startswith("pg_")
                    for table in inspector.get_table_names(schema=schema)
                )
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise BackupFailed(f"The target database could not be read: {_reason(exc)}.") from None


def load_database(database_url: str, kind: str, source: Path) -> None:
    """Load the copy ``source`` into the (empty) database at ``database_url``."""
    if kind != database_kind(database_url):
        raise BackupRefused(
            f"This backup holds a {kind} database, but PORTAL_DATABASE_URL is a "
            f"{database_kind(database_url)} one: restore it into a {kind} database."
        )
    try:
        if kind == SQLITE:
            _load_sqlite(source, _sqlite_path(database_url))
        else:
            _load_postgresql(database_url, source)
    except SQLAlchemyError as exc:
        raise BackupFailed(f"The target database could not be used: {_reason(exc)}.") from None


def _load_postgresql(database_url: str, source: Path) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            major = _server_major(connection)
    finally:
        engine.dispose()
    pg_restore = find_pg_tool("pg_restore", major)
    # One transaction: a restore that fails half-way leaves the target database as empty as it
    # was. Ownership and grants are the target's own (its user may not be the source's).
    _run(
        [
            str(pg_restore),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-acl",
            "--no-password",
            f"--dbname={_libpq_url(database_url)}",
            str(source),
        ],
        database_url,
    )


def _load_sqlite(source: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.restoring")
    staging.unlink(missing_ok=True)
    fd = create_private_file(staging)
    try:
        with source.open("rb") as copy:
            while chunk := copy.read(1024 * 1024):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    # An empty database file may be there already (a `portal check` opens one): replace it, and
    # whatever WAL files it left, so that no stale page is replayed over the restored one.
    for leftover in (
        target.with_name(target.name + "-wal"),
        target.with_name(target.name + "-shm"),
    ):
        leftover.unlink(missing_ok=True)
    os.replace(staging, target)


# -- PostgreSQL's client programs --------------------------------------------------------------


def find_pg_tool(name: str, server_major: int) -> Path:
    """``pg_dump`` or ``pg_restore`` of the server's major version (or the nearest newer one).

    Debian installs each major version's programs in /usr/lib/postgresql/N/bin (as the test
    harness finds initdb); an older pg_dump refuses a newer server, and an archive written by one
    version is read by the same or a newer pg_restore.
    """
    installed: list[tuple[int, Path]] = []
    for found in glob.glob(DEBIAN_BINARIES + name):
        version = Path(found).parent.parent.name
        if version.isdecimal() and os.access(found, os.X_OK):
            installed.append((int(version), Path(found)))
    usable = sorted(pair for pair in installed if pair[0] >= server_major)
    if usable:
        return usable[0][1]
    on_path = shutil.which(name)
    if on_path is not None:
        match = _VERSION.search(_tool_version(Path(on_path)))
        if match and int(match.group(1)) >= server_major:
            return Path(on_path)
    raise BackupFailed(
        f"{name} for PostgreSQL {server_major} is not installed: install Debian's "
        f"postgresql-client-{server_major} package (it matches the server's version)."
    )


def _tool_version(tool: Path) -> str:
    try:
        done = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def _server_major(connection: Connection) -> int:
    info = connection.dialect.server_version_info
    if not info:
        raise BackupFailed("The PostgreSQL server did not say which version it is.")
    return int(info[0])


def _run(command: list[str], database_url: str, *, stdout: int | None = None) -> None:
    environment = dict(os.environ)
    password = make_url(database_url).password
    if password is not None:
        # In the environment, not in the argument list that every local account can read.
        environment["PGPASSWORD"] = str(password)
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
            check=False,
        )
    except OSError as exc:
        raise BackupFailed(f"{command[0]} could not be started: {exc.strerror}.") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        said = "; ".join(lines[-3:]) if lines else "no message"
        name = Path(command[0]).name
        raise BackupFailed(f"{name} failed (exit status {done.returncode}): {said}")


def _libpq_url(database_url: str) -> str:
    """The URL as libpq reads it: no SQLAlchemy driver name, and no password (see ``_run``)."""
    url: URL = make_url(database_url).set(drivername="postgresql", password=None)
    return url.render_as_string(hide_password=False)


# -- SQLite ------------------------------------------------------------------------------------


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupRefused("An in-memory SQLite database cannot be backed up or restored.")
    return Path(database).absolute()


@contextlib.contextmanager
def _sqlite_reader(path: Path) -> Iterator[Connection]:
    """Read a SQLite file without writing to it (no WAL switch, no -wal or -shm files)."""
    uri = path.absolute().as_uri() + "?mode=ro"
    engine: Engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
    )
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise BackupInvalid(f"{path} is not a readable SQLite database: {_reason(exc)}.") from None
    finally:
        engine.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message (never the statement's values: engines hide them).
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
