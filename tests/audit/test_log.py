"""Appending: inside the caller's transaction, one unbroken chain under concurrency, checkpoints
at least every N events or M seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit import (
    Actor,
    AuditEvent,
    AuditLog,
    ChainBroken,
    CheckpointPolicy,
    EventRejected,
    ForbiddenDetail,
    SigningKey,
)
from audit.tables import checkpoint_table, event_table, head_table
from portal.audit_vocabulary import VOCABULARY, Action
from portal.db import make_engine
from portal.models import Organisation, OrganisationKind

from .conftest import (
    START,
    Clock,
    fill,
    pending_count_of,
    sample_event,
    sql,
    verify,
    write_from_processes,
    write_from_threads,
)


def _organisations(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM organisation")).scalar_one())


def _events(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(event_table)).scalar_one()


def test_event_and_action_commit_together(engine: Engine, log: AuditLog) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            Organisation(
                slug="fife", name="Fife", kind=OrganisationKind.authority, created_at=START
            )
        )
        session.flush()
        appended = log.append(session.connection(), sample_event(1))
    assert appended.seq == 1 and appended.checkpointed
    assert _organisations(engine) == 1 and _events(engine) == 1
    assert verify(engine, log).ok


def test_an_event_refused_rolls_back_its_action(engine: Engine, log: AuditLog) -> None:
    with pytest.raises(ForbiddenDetail), Session(engine) as session, session.begin():
        session.add(
            Organisation(
                slug="fife", name="Fife", kind=OrganisationKind.authority, created_at=START
            )
        )
        session.flush()
        log.append(
            session.connection(),
            AuditEvent(
                Action.ORGANISATION_CREATED, Actor(1, "admin", 1), details={"file_name": "x.pdf"}
            ),
        )
    assert _organisations(engine) == 0 and _events(engine) == 0


def test_an_append_that_fails_in_the_database_rolls_back_its_action(
    engine: Engine, log: AuditLog
) -> None:
    fill(engine, log, 3)
    with engine.begin() as connection:  # the audit table is gone: the append itself fails
        sql(connection, "DROP TABLE audit_event")
    with pytest.raises(Exception) as caught, Session(engine) as session, session.begin():
        session.add(
            Organisation(
                slug="fife", name="Fife", kind=OrganisationKind.authority, created_at=START
            )
        )
        session.flush()
        log.append(session.connection(), sample_event(4))
    assert "audit_event" in str(caught.value)
    assert _organisations(engine) == 0
    with engine.connect() as connection:
        assert connection.execute(select(head_table.c.seq)).scalar_one() == 3


def test_a_rolled_back_action_takes_its_event_and_leaves_no_gap(
    engine: Engine, log: AuditLog
) -> None:
    fill(engine, log, 2)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        log.append(connection, sample_event(2))
        raise RuntimeError("the action failed after its event was written")
    fill(engine, log, 1, start=3)
    with engine.connect() as connection:
        seqs = connection.execute(select(event_table.c.seq).order_by(event_table.c.seq)).scalars()
        assert list(seqs) == [1, 2, 3]
    assert verify(engine, log).ok


def test_naive_time_is_refused(engine: Engine, log: AuditLog) -> None:
    with pytest.raises(EventRejected), engine.begin() as connection:
        log.append(connection, sample_event(1), now=datetime(2026, 1, 1))


def test_checkpoints_every_n_events_and_every_m_seconds(
    engine: Engine, signing_key: SigningKey
) -> None:
    clock = Clock(step=timedelta(seconds=1))
    log = AuditLog(
        VOCABULARY,
        signing_key,
        policy=CheckpointPolicy(every_events=5, every_seconds=60),
        clock=clock,
    )
    fill(engine, log, 12)  # 1 (first), 6, 11 by count
    clock.now += timedelta(seconds=120)
    fill(engine, log, 1, start=12)  # 13 by time
    with engine.begin() as connection:
        assert log.checkpoint(connection) == 13  # already signed: nothing new
    fill(engine, log, 1, start=13)
    with engine.begin() as connection:
        assert log.checkpoint(connection) == 14  # as before an export
    with engine.connect() as connection:
        seqs = connection.execute(select(checkpoint_table.c.seq).order_by("seq")).scalars()
        assert list(seqs) == [1, 6, 11, 13, 14]
    assert verify(engine, log).ok


def test_the_time_given_is_the_time_stored(engine: Engine, log: AuditLog) -> None:
    moment = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    with engine.begin() as connection:
        log.append(connection, sample_event(1), now=moment)
        log.append(
            connection,
            sample_event(2),
            now=moment.astimezone(__import__("zoneinfo").ZoneInfo("Europe/London")),
        )
    with engine.connect() as connection:
        stored = connection.execute(select(event_table.c.at_us)).scalars().all()
    assert stored == [(moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)] * 2


def test_a_missing_head_row_is_refused_not_recreated(engine: Engine, log: AuditLog) -> None:
    with engine.begin() as connection:
        sql(connection, "DELETE FROM audit_head")
    with pytest.raises(ChainBroken, match="portal init"), engine.begin() as connection:
        log.append(connection, sample_event(1))


def _assert_one_chain(engine: Engine, log: AuditLog, expected: int) -> None:
    with engine.connect() as connection:
        seqs = list(connection.execute(select(event_table.c.seq).order_by("seq")).scalars())
        request_ids = connection.execute(select(event_table.c.request_id)).scalars().all()
    assert seqs == list(range(1, expected + 1))  # no gap, no duplicate
    assert pending_count_of(engine) == 0  # nothing left unchained
    assert len(set(request_ids)) == expected  # every writer's every event is there once
    result = verify(engine, log)
    assert result.ok, result.broken
    assert result.events == expected


def test_concurrent_threads_on_sqlite_give_one_chain(
    sqlite_database_url: str, signing_key: SigningKey
) -> None:
    engine = make_engine(sqlite_database_url)
    log = AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=25))
    write_from_threads(engine, log, 6, 60, "append")
    _assert_one_chain(engine, log, 360)
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("way", ["append", "record"])
def test_eight_processes_on_postgresql_give_one_chain(
    pg_database_url: str, signing_key: SigningKey, way: str
) -> None:
    write_from_processes(pg_database_url, signing_key, 8, 500, way)
    engine = make_engine(pg_database_url)
    _assert_one_chain(
        engine, AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=100)), 4000
    )
    engine.dispose()


@pytest.mark.parametrize("way", ["append", "enqueue"])
def test_concurrent_processes_on_sqlite_give_one_chain(
    sqlite_database_url: str, signing_key: SigningKey, way: str
) -> None:
    write_from_processes(sqlite_database_url, signing_key, 4, 50, way)
    engine = make_engine(sqlite_database_url)
    _assert_one_chain(
        engine, AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=100)), 200
    )
    engine.dispose()
