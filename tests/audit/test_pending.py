"""Enqueue, then chain: events stored with their action, chained moments later, one chain."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit import AuditLog, ChainBroken, CheckpointPolicy, ForbiddenDetail, SigningKey
from audit.encoding import GENESIS
from audit.events import AuditEvent
from audit.tables import checkpoint_table, event_table, pending_table
from portal.audit_vocabulary import VOCABULARY
from portal.db import make_engine
from portal.models import Organisation, OrganisationKind

from .conftest import (
    EVERY,
    START,
    Clock,
    enqueue,
    pending_count_of,
    sample_event,
    sql,
    verify,
    write_from_processes,
    write_from_threads,
)


def _seqs(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(event_table.c.seq).order_by("seq")).scalars())


def _checkpoints(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(checkpoint_table.c.seq).order_by("seq")).scalars())


def test_an_enqueued_event_commits_with_its_action_and_is_chained_after(
    engine: Engine, log: AuditLog, clock: Clock
) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            Organisation(
                slug="fife", name="Fife", kind=OrganisationKind.authority, created_at=START
            )
        )
        session.flush()
        log.enqueue(session.connection(), sample_event(1))
    when = clock.now
    assert pending_count_of(engine) == 1 and _seqs(engine) == []
    result = verify(engine, log)
    assert result.ok and result.pending == 1 and result.events == 0

    assert log.chain_committed(engine) == 1
    assert pending_count_of(engine) == 0 and _seqs(engine) == [1]
    with engine.connect() as connection:
        row = connection.execute(select(event_table)).one()
    # The event keeps the time of its action, not the time it was chained.
    assert row.at_us == int(when.timestamp() * 1_000_000)
    assert row.request_id == "req-1" and row.review == "SWG24"
    result = verify(engine, log)
    assert result.ok and result.pending == 0 and result.events == 1
    # Nothing left: another chaining round does nothing.
    assert log.chain_committed(engine) == 0


def test_a_rolled_back_action_leaves_nothing_to_chain(engine: Engine, log: AuditLog) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        log.enqueue(connection, sample_event(1))
        raise RuntimeError("the action failed after its event was stored")
    assert pending_count_of(engine) == 0
    assert log.chain_committed(engine) == 0 and _seqs(engine) == []


def test_an_event_refused_at_enqueue_rolls_back_its_action(engine: Engine, log: AuditLog) -> None:
    with pytest.raises(ForbiddenDetail), Session(engine) as session, session.begin():
        session.add(
            Organisation(
                slug="fife", name="Fife", kind=OrganisationKind.authority, created_at=START
            )
        )
        session.flush()
        event = sample_event(1)
        log.enqueue(
            session.connection(),
            AuditEvent(event.action, event.actor, details={"file_name": "case.pdf"}),
        )
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM organisation")).scalar_one() == 0
    assert pending_count_of(engine) == 0


def test_a_backlog_is_chained_with_a_checkpoint_at_every_interval(
    engine: Engine, log: AuditLog
) -> None:
    enqueue(engine, log, 3 * EVERY + 5)
    # One chaining transaction never runs past a due checkpoint.
    with engine.begin() as connection:
        first = log.chain_pending(connection)
    assert first == EVERY
    assert _checkpoints(engine) == [EVERY]
    assert log.chain_committed(engine) == 2 * EVERY + 5
    assert _seqs(engine) == list(range(1, 3 * EVERY + 6))
    assert _checkpoints(engine) == [EVERY, 2 * EVERY, 3 * EVERY]  # the tail of 5 waits
    result = verify(engine, log)
    assert result.ok and result.events == 3 * EVERY + 5


def test_appended_and_enqueued_events_share_one_chain(engine: Engine, log: AuditLog) -> None:
    for i in range(12):
        with engine.begin() as connection:
            if i % 2:
                log.enqueue(connection, sample_event(i))
            else:
                log.append(connection, sample_event(i))
        if i % 3 == 0:
            log.chain_committed(engine)
    log.chain_committed(engine)
    assert _seqs(engine) == list(range(1, 13))
    assert verify(engine, log).ok


def test_a_checkpoint_chains_what_is_pending_first(engine: Engine, log: AuditLog) -> None:
    enqueue(engine, log, 3)
    with engine.begin() as connection:
        sealed = log.checkpoint(connection)
    assert sealed == 3 and pending_count_of(engine) == 0
    assert _checkpoints(engine)[-1] == 3


def test_events_left_by_a_crash_after_commit_are_chained_later(
    database_url: str, signing_key: SigningKey
) -> None:
    """The writer committed and died before chaining: another process chains the events."""
    engine = make_engine(database_url)
    writer = AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=EVERY))
    enqueue(engine, writer, 4)
    engine.dispose()  # the writer's process is gone
    survivor_engine = make_engine(database_url)
    survivor = AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=EVERY))
    assert survivor.chain_committed(survivor_engine) == 4
    assert _seqs(survivor_engine) == [1, 2, 3, 4]
    assert verify(survivor_engine, survivor).ok
    survivor_engine.dispose()


def test_a_broken_chain_is_never_extended_by_a_checkpoint(engine: Engine, log: AuditLog) -> None:
    """Chaining refuses to sign over a tampered chain; the pending events wait, none is lost."""
    for i in range(EVERY):
        with engine.begin() as connection:
            log.enqueue(connection, sample_event(i))
        log.chain_committed(engine)
    with engine.begin() as connection:
        sql(connection, "UPDATE audit_event SET review = 'XYZ99' WHERE seq = 3")
    enqueue(engine, log, 5, start=100)
    with pytest.raises(ChainBroken) as broken:
        log.chain_committed(engine)
    assert broken.value.broken.sequence == 3
    assert pending_count_of(engine) >= 1  # still stored, waiting
    result = verify(engine, log)
    assert not result.ok and result.broken is not None and result.broken.sequence == 3


def test_the_pending_table_holds_no_sequence_and_no_hash() -> None:
    """Nothing pending can be mistaken for chained: pending rows have neither."""
    names = {c.name for c in pending_table.c}
    assert "seq" not in names and "hash" not in names


def test_concurrent_threads_enqueue_and_chain_into_one_chain(
    database_url: str, signing_key: SigningKey
) -> None:
    engine = make_engine(database_url)
    log = AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=25))
    write_from_threads(engine, log, 6, 40, "enqueue")
    assert _seqs(engine) == list(range(1, 241))
    assert pending_count_of(engine) == 0
    with engine.connect() as connection:
        request_ids = connection.execute(select(event_table.c.request_id)).scalars().all()
    assert len(set(request_ids)) == 240
    result = verify(engine, log)
    assert result.ok and result.events == 240
    engine.dispose()


def test_chaining_after_a_quiet_spell_signs_a_checkpoint(
    engine: Engine, signing_key: SigningKey
) -> None:
    clock = Clock(step=timedelta(seconds=1))
    log = AuditLog(
        VOCABULARY,
        signing_key,
        policy=CheckpointPolicy(every_events=100, every_seconds=60),
        clock=clock,
    )
    for i in range(3):
        with engine.begin() as connection:
            log.enqueue(connection, sample_event(i))
        log.chain_committed(engine)
    assert _checkpoints(engine) == [1]
    clock.now += timedelta(minutes=2)
    with engine.begin() as connection:
        log.enqueue(connection, sample_event(9))
    log.chain_committed(engine)
    assert _checkpoints(engine) == [1, 4]


def test_record_chains_at_once_when_no_other_append_is_in_flight(
    engine: Engine, log: AuditLog
) -> None:
    with engine.begin() as connection:
        assert log.record(connection, sample_event(1)) is False
    assert _seqs(engine) == [1] and pending_count_of(engine) == 0


def test_record_stores_pending_while_another_append_holds_the_head(
    pg_database_url: str, signing_key: SigningKey
) -> None:
    """A second writer does not wait for the first one's commit: its event goes pending."""
    engine = make_engine(pg_database_url)
    log = AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=EVERY))
    with engine.begin() as first:
        assert log.record(first, sample_event(1)) is False  # holds the append lock
        with engine.begin() as second:
            assert log.record(second, sample_event(2)) is True  # no wait
        assert pending_count_of(engine) == 1
    # The first has committed; the second's writer chains after its own commit.
    assert log.chain_committed(engine) == 1
    assert _seqs(engine) == [1, 2] and pending_count_of(engine) == 0
    assert verify(engine, log).ok
    engine.dispose()


def test_chaining_without_the_head_row_keeps_the_events_pending(
    database_url: str, signing_key: SigningKey
) -> None:
    """A missing head row is refused, not recreated (that could fork the chain); the events
    wait, none lost, and the chaining lock is let go (another connection chains them later)."""
    policy = CheckpointPolicy(every_events=EVERY)
    engine = make_engine(database_url)
    log = AuditLog(VOCABULARY, signing_key, policy=policy)
    enqueue(engine, log, 2)
    with engine.begin() as connection:
        sql(connection, "DELETE FROM audit_head")
    with pytest.raises(ChainBroken, match="portal init"):
        log.chain_committed(engine)
    assert pending_count_of(engine) == 2 and _seqs(engine) == []
    with engine.begin() as connection:
        sql(
            connection,
            "INSERT INTO audit_head (id, seq, hash, checkpoint_seq, checkpoint_us) "
            "VALUES (1, 0, :genesis, 0, 0)",
            genesis=GENESIS.hex(),
        )
    other = make_engine(database_url)  # a session-level lock left held would stop this one
    assert AuditLog(VOCABULARY, signing_key, policy=policy).chain_committed(other) == 2
    assert _seqs(engine) == [1, 2] and verify(engine, log).ok
    other.dispose()
    engine.dispose()


def test_a_pending_event_gone_under_the_chaining_lock_moves_nothing(
    pg_database_url: str, signing_key: SigningKey
) -> None:
    """The chaining statement copies the events from the pending table by id: if one of them
    is not found there, the head does not move and the whole transaction is rolled back, so
    the chain never gets a gap (PostgreSQL; SQLite inserts the values it read)."""
    policy = CheckpointPolicy(every_events=EVERY)
    engine = make_engine(pg_database_url)
    log = AuditLog(VOCABULARY, signing_key, policy=policy)
    enqueue(engine, log, 3)

    def delete_one_first(_conn, cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        if statement.startswith("WITH chained AS"):
            cursor.execute(
                "DELETE FROM audit_pending WHERE id = (SELECT max(id) FROM audit_pending)"
            )

    sa_event.listen(engine, "before_cursor_execute", delete_one_first)
    with pytest.raises(ChainBroken, match="pending events changed"):
        log.chain_committed(engine)
    sa_event.remove(engine, "before_cursor_execute", delete_one_first)
    assert pending_count_of(engine) == 3 and _seqs(engine) == []  # the delete rolled back too
    other = make_engine(pg_database_url)
    assert AuditLog(VOCABULARY, signing_key, policy=policy).chain_committed(other) == 3
    assert _seqs(engine) == [1, 2, 3] and verify(engine, log).ok
    other.dispose()
    engine.dispose()


class _PausingLog(AuditLog):
    """Holds the chaining lock, after chaining, until the test lets it go."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.holding = threading.Event()
        self.release = threading.Event()

    def _chain_locked(self, connection, **kwargs):  # type: ignore[no-untyped-def]
        result = super()._chain_locked(connection, **kwargs)
        if not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(30)
        return result


def test_a_writer_that_finds_the_chaining_lock_taken_is_chained_by_the_holder(
    pg_database_url: str, signing_key: SigningKey
) -> None:
    """The holder looks again after its commit: an event committed while it held the lock is
    chained by it, although its own writer gave up at once."""
    engine = make_engine(pg_database_url)
    policy = CheckpointPolicy(every_events=EVERY)
    holder = _PausingLog(VOCABULARY, signing_key, policy=policy)
    writer = AuditLog(VOCABULARY, signing_key, policy=policy)
    with engine.begin() as connection:
        holder.enqueue(connection, sample_event(1))
    counted: list[int] = []
    thread = threading.Thread(target=lambda: counted.append(holder.chain_committed(engine)))
    thread.start()
    assert holder.holding.wait(30)  # event 1 chained, transaction open, lock held
    with engine.begin() as connection:
        writer.enqueue(connection, sample_event(2))
    assert writer.chain_committed(engine) == 0  # the lock is taken: it leaves at once
    assert pending_count_of(engine) == 2  # the holder's chaining of event 1 is not committed
    holder.release.set()
    thread.join(30)
    assert counted == [2]  # its own event, then the writer's, found by looking again
    assert pending_count_of(engine) == 0 and _seqs(engine) == [1, 2]
    assert verify(engine, writer).ok
    engine.dispose()


@pytest.mark.slow
def test_eight_processes_enqueueing_on_postgresql_leave_nothing_unchained(
    pg_database_url: str, signing_key: SigningKey
) -> None:
    """Every event through the pending table, 8 chainers racing for the lock: one chain, and
    none left pending (a writer that gives up on the lock relies on the holder's second look)."""
    write_from_processes(pg_database_url, signing_key, 8, 150, "enqueue")
    engine = make_engine(pg_database_url)
    assert pending_count_of(engine) == 0
    assert _seqs(engine) == list(range(1, 1201))
    assert verify(
        engine, AuditLog(VOCABULARY, signing_key, policy=CheckpointPolicy(every_events=100))
    ).ok
    engine.dispose()


def test_chaining_on_a_writers_own_connection(engine: Engine, log: AuditLog) -> None:
    """A writer that keeps one connection chains on it, between its transactions."""
    with engine.connect() as connection:
        for i in range(3):
            with connection.begin():
                log.enqueue(connection, sample_event(i))
            assert log.chain_committed(connection) == 1
    assert _seqs(engine) == [1, 2, 3] and pending_count_of(engine) == 0
    assert verify(engine, log).ok
