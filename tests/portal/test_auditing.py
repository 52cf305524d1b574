"""The portal's way into the audit log: an event commits with its action, is chained right after
the commit, and a chaining that fails is finished by the worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from audit import Actor, AuditEvent, verify_log
from audit.tables import event_table
from audit.verification import pending_count
from portal.audit_vocabulary import Action
from portal.auditing import Auditor
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.settings import Settings
from portal.worker import Worker

from .conftest import SettableClock

ADMIN = Actor(1, "admin", 1)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def auditor(settings: Settings) -> Auditor:
    return Auditor.from_key_dir(settings.key_dir)


def _seqs(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(event_table.c.seq).order_by("seq")).scalars())


def _pending(engine: Engine) -> int:
    with engine.connect() as connection:
        return pending_count(connection)


def _record(auditor: Auditor, db: Session, clock: SettableClock, n: int) -> None:
    auditor.record(db, Action.REVIEW_OPENED, actor=ADMIN, now=clock(), review=f"RV{n:03d}")


def _hold_the_append_lock(
    auditor: Auditor, engine: Engine, clock: SettableClock
) -> tuple[Connection, RootTransaction]:
    """Another request in the middle of an audited action (PostgreSQL): its transaction holds
    the append lock until it commits, so the next event goes pending."""
    connection = engine.connect()
    transaction = connection.begin()
    assert auditor.log.record(connection, AuditEvent(Action.SIGN_IN, ADMIN)) is False
    return connection, transaction


def test_an_event_is_in_the_chain_when_the_request_has_committed(
    settings: Settings, engine: Engine, auditor: Auditor, clock: SettableClock
) -> None:
    before = len(_seqs(engine))
    with Session(engine) as db:
        _record(auditor, db, clock, 1)
        db.commit()
    assert len(_seqs(engine)) == before + 1 and _pending(engine) == 0


def test_under_concurrency_the_event_goes_pending_and_is_chained_after_the_commit(
    settings: Settings, engine: Engine, auditor: Auditor, clock: SettableClock
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite admits one writer at a time: events are always chained at once")
    before = len(_seqs(engine))
    connection, transaction = _hold_the_append_lock(auditor, engine, clock)
    with Session(engine) as db:
        _record(auditor, db, clock, 1)
        db.flush()
        transaction.commit()  # the other request commits first
        connection.close()
        assert _pending(engine) == 0  # our transaction has not committed: nothing visible
        db.commit()  # ... and chaining runs right after
    assert _pending(engine) == 0
    assert len(_seqs(engine)) == before + 2
    with engine.connect() as check, check.begin():
        assert verify_log(check, [auditor.log.public_key]).ok


def test_a_rolled_back_request_leaves_nothing_pending(
    settings: Settings, engine: Engine, auditor: Auditor, clock: SettableClock
) -> None:
    before = _seqs(engine)
    if engine.dialect.name == "postgresql":
        connection, transaction = _hold_the_append_lock(auditor, engine, clock)
    with Session(engine) as db:
        _record(auditor, db, clock, 1)
        db.rollback()
        db.commit()  # a later commit in the same session has nothing to chain
    if engine.dialect.name == "postgresql":
        transaction.rollback()
        connection.close()
    assert _seqs(engine) == before and _pending(engine) == 0


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("chain", {}, Exception("server closed the connection")),
        psycopg.OperationalError("the connection is closed"),  # from the driver, unwrapped
    ],
    ids=["sqlalchemy", "driver"],
)
def test_a_chaining_that_fails_after_the_commit_is_finished_by_the_worker(
    failure: Exception,
    settings: Settings,
    engine: Engine,
    auditor: Auditor,
    clock: SettableClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains in the action's transaction")
    before = len(_seqs(engine))

    def database_gone(*args: object, **kwargs: object) -> int:
        raise failure

    connection, transaction = _hold_the_append_lock(auditor, engine, clock)
    transaction.commit()
    connection.close()
    monkeypatch.setattr(auditor.log, "chain_committed", database_gone)
    # Force the pending path: the append lock is taken by a transaction of ours meanwhile.
    connection, transaction = _hold_the_append_lock(auditor, engine, clock)
    with caplog.at_level(logging.WARNING, logger="portal.audit"), Session(engine) as db:
        _record(auditor, db, clock, 1)
        db.flush()
        transaction.commit()
        connection.close()
        db.commit()  # the action stands; chaining failed quietly
    assert "left for the worker" in caplog.text and "RV001" not in caplog.text
    assert _pending(engine) == 1
    monkeypatch.undo()
    worker = Worker(build_runtime(settings, clock=clock))
    done = worker.run_round()
    assert done.chained == 1
    assert _pending(engine) == 0 and len(_seqs(engine)) == before + 3


def test_the_events_of_one_transaction_keep_their_order_in_the_chain(
    settings: Settings, engine: Engine, auditor: Auditor, clock: SettableClock
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains in the action's transaction")
    connection, transaction = _hold_the_append_lock(auditor, engine, clock)
    with Session(engine) as db:
        _record(auditor, db, clock, 1)  # pending: the lock is taken
        transaction.commit()
        connection.close()
        _record(auditor, db, clock, 2)  # the lock is free now, but this follows event 1
        db.commit()
    with engine.connect() as check:
        reviews = list(
            check.execute(
                select(event_table.c.review)
                .where(event_table.c.review.is_not(None))
                .order_by(event_table.c.seq)
            ).scalars()
        )
    assert reviews[-2:] == ["RV001", "RV002"]
