"""The log on PostgreSQL: its two advisory locks and the driver-level statements that appending
and chaining run there, one round trip each (docs/audit-format.md, "Appending").

SQLite needs none of this: it admits one writer at a time, and the portal's engine begins every
transaction with ``BEGIN IMMEDIATE``, so ``audit.log`` runs portable statements there.

Every statement here is built from constant column names and types only; every value is a bound
parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from .encoding import EVENT_FIELDS
from .tables import HEAD_ID, pending_table

# PostgreSQL's advisory locks are keyed by a number shared by every client of the database: these
# two are the log's, and nothing else may take them.
# Writers queue on the append lock for the head row; held until the writer commits.
APPEND_LOCK = 7283911
# Chainers of pending events take turns on the chaining lock; at transaction level for
# chain_pending and checkpoint, at session level for chain_committed.
CHAIN_LOCK = 7283912

# Driver-level SQL, one round trip each. (An advisory lock to queue writers was measured: slower
# than the row lock alone.)
_QUEUE = f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"  # held until the caller commits
_CHAIN_LOCK = f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"
# NULL when nothing is pending; else whether the lock was taken. One statement, one snapshot,
# taken after the statement began: it sees every commit made before a holder let the lock go.
_CHAIN_TRY = (
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM audit_pending) "  # noqa: S608 (constants only)
    f"THEN pg_try_advisory_lock({CHAIN_LOCK}) END"
)
_CHAIN_UNLOCK = f"SELECT pg_advisory_unlock({CHAIN_LOCK})"
_LOCK_HEAD = (
    "SELECT seq, hash, checkpoint_seq, checkpoint_us FROM audit_head WHERE id = 1 FOR UPDATE"
)
_APPEND = (
    f"WITH appended AS (INSERT INTO audit_event ({', '.join(EVENT_FIELDS)}, hash) "  # noqa: S608
    f"VALUES ({', '.join(f'%({name})s' for name in EVENT_FIELDS)}, %(hash)s)) "
    f"UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = {HEAD_ID}"
)
# The head row, if the append lock is free and no chaining transaction holds the row; else the
# event is stored pending. Never a wait. FOR UPDATE reads the head as its last writer committed
# it, whatever the statement's snapshot. The casts give the bound values their columns' types.
_PENDING_FIELDS = ", ".join(EVENT_FIELDS[1:])
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_PENDING_VALUES = ", ".join(
    f"%({name})s::{pending_table.c[name].type.compile(dialect=_DIALECT)}"
    for name in EVENT_FIELDS[1:]
)
_HEAD_OR_PENDING = (
    "WITH head AS (SELECT seq, hash, checkpoint_seq, checkpoint_us FROM audit_head "  # noqa: S608
    f"WHERE id = 1 AND pg_try_advisory_xact_lock({APPEND_LOCK}) FOR UPDATE SKIP LOCKED), "
    f"pended AS (INSERT INTO audit_pending ({_PENDING_FIELDS}) SELECT {_PENDING_VALUES} "
    "WHERE NOT EXISTS (SELECT 1 FROM head)) "
    "SELECT seq, hash, checkpoint_seq, checkpoint_us FROM head"
)


# The oldest pending events with the head row, locked, on each (a missing head: NULLs). FOR
# UPDATE waits for an append holding the row and reads the head as that append left it; the
# pending rows cannot change meanwhile (only the chaining lock's holder deletes them).
def _pending_and_head_sql(also: str = "") -> str:
    """``also``: one more item for the FROM list (constant text)."""
    return (
        f"SELECT waiting.id, {_PENDING_FIELDS}, head.seq, head.hash, "  # noqa: S608
        "head.checkpoint_seq, head.checkpoint_us "
        f"FROM (SELECT id, {_PENDING_FIELDS} FROM audit_pending ORDER BY id LIMIT %(n)s) "
        "AS waiting LEFT JOIN (SELECT seq, hash, checkpoint_seq, checkpoint_us FROM audit_head "
        f"WHERE id = 1 FOR UPDATE) AS head ON true{also} ORDER BY waiting.id"
    )


_PENDING_AND_HEAD = _pending_and_head_sql()
# The same, turning synchronous_commit off for the transaction (whenever it has rows to chain).
_PENDING_AND_HEAD_NO_FLUSH = _pending_and_head_sql(
    ", set_config('synchronous_commit', 'off', true)"
)
# Every value a bound parameter (arrays of ids, sequence numbers and links); the head moves only
# if every pending row was found (else rowcount 0 and the caller raises, rolling back).
_CHAIN = (
    f"WITH chained AS (INSERT INTO audit_event ({', '.join(EVENT_FIELDS)}, hash) "  # noqa: S608
    f"SELECT link.seq, {', '.join(f'pending.{name}' for name in EVENT_FIELDS[1:])}, link.hash "
    "FROM unnest(%(ids)s::bigint[], %(seqs)s::bigint[], %(links)s::text[]) "
    "AS link(id, seq, hash) JOIN audit_pending AS pending ON pending.id = link.id RETURNING 1), "
    "taken AS (DELETE FROM audit_pending WHERE id = ANY(%(ids)s::bigint[])) "
    "UPDATE audit_head SET seq = %(s)s, hash = %(h)s "
    f"WHERE id = {HEAD_ID} AND (SELECT count(*) FROM chained) = %(n)s"
)


def queue_for_head(connection: Connection) -> None:
    """Take the append lock, until the transaction ends. Writers queue on it (granted one at a
    time, first come first served) rather than all waking whenever the head row's lock is
    released and racing for it."""
    connection.exec_driver_sql(_QUEUE)


def lock_chaining(connection: Connection) -> None:
    """Take the chaining lock, until the transaction ends (waiting for its holder)."""
    connection.exec_driver_sql(_CHAIN_LOCK)


def lock_head(connection: Connection) -> Sequence[Any] | None:
    """The head row (seq, hash, checkpoint_seq, checkpoint_us), locked: this waits for an
    append that holds it, then reads the head as that append left it. None: no head row."""
    return connection.exec_driver_sql(_LOCK_HEAD).one_or_none()


def head_or_pending(connection: Connection, fields: dict[str, object]) -> Sequence[Any] | None:
    """The head row, locked with the append lock, if both are free; else store the event with
    ``fields`` pending and return None. One round trip, never a wait."""
    return driver_row(connection, _HEAD_OR_PENDING, fields)


def append(connection: Connection, values: dict[str, object]) -> None:
    """Insert the chained event with ``values`` and move the head to it: one round trip."""
    driver_row(connection, _APPEND, values, returns_rows=False)


def pending_and_head(connection: Connection, batch: int, *, flush: bool) -> Sequence[Any]:
    """Up to ``batch`` pending events, oldest first, each row ending with the head row's four
    fields, locked (NULLs if there is no head row). ``flush=False``: the transaction will commit
    without waiting for its disk flush (``synchronous_commit`` off for it alone)."""
    query = _PENDING_AND_HEAD if flush else _PENDING_AND_HEAD_NO_FLUSH
    return connection.exec_driver_sql(query, {"n": batch}).all()


def move_pending(
    connection: Connection, ids: list[int], seqs: list[int], links: list[str], hash_hex: str
) -> bool:
    """Copy the pending events ``ids`` into the chain with their sequence numbers and links,
    delete them from the pending table and move the head to the last: one trip, one statement
    text for any batch. False (the head not moved) if a pending row was missing."""
    moved = connection.exec_driver_sql(
        _CHAIN,
        {"ids": ids, "seqs": seqs, "links": links, "n": len(ids), "s": seqs[-1], "h": hash_hex},
    )
    return moved.rowcount == 1


def try_chaining_lock(connection: Connection) -> bool | None:
    """Outside any transaction: take the chaining lock at session level if it is free and
    something is pending. None: nothing pending; False: another connection holds it."""
    taken = outside_transaction(connection, _CHAIN_TRY)
    return None if taken is None or taken[0] is None else bool(taken[0])


def release_chain_lock(connection: Connection) -> None:
    """Let the session-level chaining lock go; if that fails, close the connection, which lets
    it go too (a pooled connection must never keep it: chaining would stop)."""
    try:
        outside_transaction(connection, _CHAIN_UNLOCK)
    except BaseException:
        connection.invalidate()
        raise


def driver_row(
    connection: Connection,
    statement: str,
    params: dict[str, object] | None = None,
    *,
    returns_rows: bool = True,
) -> tuple[Any, ...] | None:
    """For the statements every event runs: execute on the driver's cursor in the connection's
    transaction, and return the first row (None if none, or if the statement returns no rows).
    SQLAlchemy's statement machinery measured about 100 µs of CPU a statement, a tenth of a
    writer's CPU per event with 8 writers on 2 cores; the driver prepares the statement all the
    same."""
    driver = connection.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(statement, params)
        return cursor.fetchone() if returns_rows else None
    finally:
        cursor.close()


def outside_transaction(connection: Connection, statement: str) -> tuple[Any, ...] | None:
    """Run one statement in autocommit mode (one round trip: no BEGIN, no COMMIT) on a connection
    with no transaction open; return its first row."""
    driver = connection.connection.dbapi_connection
    assert driver is not None
    before = driver.autocommit
    driver.autocommit = True
    try:
        return driver_row(connection, statement)
    finally:
        if not driver.closed:  # a lost connection: nothing to restore
            driver.autocommit = before
