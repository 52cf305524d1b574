"""Concurrent ``portal init`` on one PostgreSQL database wait for each other (the migration lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from portal.db import make_engine
from portal.migrate import (
    MIGRATION_LOCK_KEY,
    current_revision,
    head_revision,
    migration_lock,
    upgrade_database,
)
from storage import open_key_service, parse_key_service_address
from tests.harness.softhsm import SoftHsm
from tests.harness.waiting import PATIENCE


def _waiting_for_the_lock(database_url: str) -> int:
    """How many sessions of this database wait for the migration lock (from pg_locks)."""
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s"
            " AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
            (url.database, MIGRATION_LOCK_KEY >> 32, MIGRATION_LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _eventually(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_second_migration_waits_for_the_first_then_finds_the_schema_up_to_date(
    empty_pg_database_url: str,
) -> None:
    first, second = make_engine(empty_pg_database_url), make_engine(empty_pg_database_url)
    results: dict[str, tuple[str | None, str]] = {}
    failures: list[BaseException] = []

    def migrate_second() -> None:
        try:
            results["second"] = upgrade_database(second)
        except BaseException as exc:
            failures.append(exc)

    try:
        with migration_lock(first) as connection:
            waiter = threading.Thread(target=migrate_second)
            waiter.start()
            # The second migration is blocked on the lock, not racing the first one.
            _eventually(
                lambda: _waiting_for_the_lock(empty_pg_database_url) == 1,
                within=PATIENCE,
                what="the second migration never waited for the lock",
            )
            assert waiter.is_alive() and not failures
            assert current_revision(first) is None  # it has touched nothing
            results["first"] = upgrade_database(connection)
        waiter.join(timeout=60)
        assert not waiter.is_alive()
        assert failures == []
        head = head_revision()
        assert results == {"first": (None, head), "second": (head, head)}
        assert _waiting_for_the_lock(empty_pg_database_url) == 0
        # The lock is released: it can be taken again at once.
        with migration_lock(first):
            pass
    finally:
        first.dispose()
        second.dispose()


def test_a_failed_migration_lets_go_of_the_lock(empty_pg_database_url: str) -> None:
    engine = make_engine(empty_pg_database_url)
    try:
        try:
            with migration_lock(engine) as connection:
                connection.exec_driver_sql("SELECT no_such_function()")
        except Exception as exc:
            assert "no_such_function" in str(exc)
        else:
            raise AssertionError("the statement should have failed")
        other = make_engine(empty_pg_database_url)
        try:
            assert upgrade_database(other) == (None, head_revision())
        finally:
            other.dispose()
    finally:
        engine.dispose()


_INIT_AT_THE_BARRIER = """
import pathlib, sys, time
from portal.cli import main
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
main(["init"])
"""


def test_two_portal_init_at_once_on_an_empty_database_both_succeed(
    empty_pg_database_url: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    base = {**os.environ, "PORTAL_KEY_DIR": str(keys)}
    # The keys exist already (made by an init on another database): this test is about the
    # schema; creating keys concurrently is portal.setup's to serialise.
    subprocess.run(
        [sys.executable, "-m", "portal", "init"],
        env={**base, "PORTAL_HOME": str(tmp_path / "keys-made-here")},
        check=True,
        capture_output=True,
        timeout=120,
    )
    outputs = _init_at_once(
        tmp_path,
        {**base, "PORTAL_DATABASE_URL": empty_pg_database_url},
    )
    said = sorted("migrated from empty" in out for out, _ in outputs)
    assert said == [False, True], outputs  # one migrated, the other found it done
    engine = make_engine(empty_pg_database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_on_sqlite_the_lock_is_a_file_beside_the_database(tmp_path: Path) -> None:
    import fcntl

    database = tmp_path / "portal.db"
    first = make_engine(f"sqlite:///{database}")
    second = make_engine(f"sqlite:///{database}")
    results: list[tuple[str | None, str]] = []
    try:
        with migration_lock(first) as connection:
            waiter = threading.Thread(target=lambda: results.append(upgrade_database(second)))
            waiter.start()
            lock_file = tmp_path / "portal.db.migration-lock"
            descriptor = os.open(lock_file, os.O_RDWR)
            try:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    raise AssertionError("the lock file is not locked")
            finally:
                os.close(descriptor)
            waiter.join(timeout=0.5)
            assert waiter.is_alive() and results == []
            assert upgrade_database(connection) == (None, head_revision())
        waiter.join(timeout=60)
        assert results == [(head_revision(), head_revision())]
    finally:
        first.dispose()
        second.dispose()


def test_two_first_nodes_at_once_make_one_installation(
    empty_pg_database_url: str, tmp_path: Path, softhsm: SoftHsm
) -> None:
    """An empty database and an empty PKCS#11 token: the lock covers the keys too, so one init
    creates the installation's keys and the other joins them (nothing else serialises a token)."""
    token = softhsm.new_token()
    env = {**os.environ, "PORTAL_DATABASE_URL": empty_pg_database_url, "PORTAL_KMS": token}
    outputs = _init_at_once(tmp_path, env)
    created = sorted("created the installation's keys" in out for out, _ in outputs)
    joined = sorted("joined installation" in out for out, _ in outputs)
    assert created == [False, True] and joined == [False, True], outputs
    keys = open_key_service(parse_key_service_address(token))
    assert keys.installation() is not None
    assert keys.status().reviews == 0


def _init_at_once(tmp_path: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """Two `portal init` (homes one/ and two/) released together at a file barrier; both must
    exit 0. Returns their (stdout, stderr)."""
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _INIT_AT_THE_BARRIER, str(tmp_path / f"{name}.ready"), go],
            env={**env, "PORTAL_HOME": str(tmp_path / name)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    try:
        _eventually(
            lambda: all((tmp_path / f"{n}.ready").exists() for n in ("one", "two")),
            within=PATIENCE,
            what="the init processes did not start",
        )
        go.touch()  # both start within a millisecond or so of each other
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out + err
    return outputs
