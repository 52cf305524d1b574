"""Shared pieces for the audit tests: a clock the tests set, a signing key, a log with a short
checkpoint interval so that tampering tests cross several checkpoints."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from audit import (
    Actor,
    AuditEvent,
    AuditLog,
    CheckpointPolicy,
    Outcome,
    SigningKey,
    Target,
    Verification,
    verify_log,
)
from audit.verification import pending_count
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind
from portal.db import make_engine

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVERY = 10  # checkpoint every 10 events in these tests


class Clock:
    """Time that moves only when a test moves it (one second per reading by default)."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def log(signing_key: SigningKey, clock: Clock) -> AuditLog:
    return AuditLog(
        VOCABULARY,
        signing_key,
        policy=CheckpointPolicy(every_events=EVERY, every_seconds=86_400),
        clock=clock,
    )


def sample_event(i: int) -> AuditEvent:
    """A varied, valid event: user i % 5, alternating actions and reviews."""
    actions = [Action.DOCUMENT_DOWNLOADED, Action.DOCUMENT_UPLOADED, Action.SIGN_IN]
    return AuditEvent(
        action=actions[i % 3],
        actor=Actor(user_id=i % 5 + 1, role="inspector", organisation_id=2),
        outcome=Outcome.SUCCESS if i % 7 else Outcome.DENIED,
        target=Target(TargetKind.DOCUMENT, f"DOC{i:04d}"),
        review="SWG24" if i % 2 else "ABC25",
        document=f"7KQ2-M9XD-{i % 10}",
        client="203.0.113.7",
        request_id=f"req-{i}",
        details={"size_bytes": i * 100, "mfa": True},
    )


def fill(engine: Engine, log: AuditLog, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        with engine.begin() as connection:
            log.append(connection, sample_event(i))


def enqueue(engine: Engine, log: AuditLog, count: int, start: int = 0) -> None:
    """``count`` events stored pending, one transaction each, none chained yet."""
    for i in range(start, start + count):
        with engine.begin() as connection:
            log.enqueue(connection, sample_event(i))


def verify(engine: Engine, log: AuditLog, **kwargs: int) -> Verification:
    """In one snapshot, as ``portal audit verify`` runs it (REPEATABLE READ on PostgreSQL)."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    with connection, connection.begin():
        # Only the numeric options come through ``kwargs``: no witness here (test_witness.py).
        return verify_log(
            connection,
            [log.public_key],
            every_events=log.policy.every_events,
            witness=None,
            **kwargs,
        )


def pending_count_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return pending_count(connection)


def sql(connection: Connection, statement: str, **params: object) -> None:
    connection.execute(text(statement), params)


@pytest.fixture
def filled(engine: Engine, log: AuditLog) -> Iterator[Engine]:
    """35 events: checkpoints at 1 (first event), 11, 21, 31; a tail of 4 unsigned events."""
    fill(engine, log, 35)
    yield engine


def write_event(engine: Engine, log: AuditLog, event: AuditEvent, way: str) -> None:
    """One event in a transaction of its own: ``append`` (chained in the transaction), ``record``
    (the portal's way) or ``enqueue`` (every event through the pending table: the chainers'
    test); chained after the commit when it went pending, as the portal does."""
    pending = False
    with engine.begin() as connection:
        if way == "record":
            pending = log.record(connection, event)
        elif way == "enqueue":
            log.enqueue(connection, event)
            pending = True
        else:
            log.append(connection, event)
    if pending:
        log.chain_committed(engine)


def write_from_threads(engine: Engine, log: AuditLog, threads: int, count: int, way: str) -> None:
    """``threads`` writers at once, ``count`` events each (request ids w<thread>-<i>)."""
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(count):
                event = sample_event(i)
                tagged = AuditEvent(event.action, event.actor, request_id=f"w{worker}-{i}")
                write_event(engine, log, tagged, way)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    running = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert errors == []


def _process_writer(url: str, pem: bytes, worker: int, count: int, way: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    log = AuditLog(VOCABULARY, SigningKey(key), policy=CheckpointPolicy(every_events=100))  # type: ignore[arg-type]
    engine = make_engine(url, pool_size=1)
    for i in range(count):
        event = AuditEvent(
            Action.DOCUMENT_DOWNLOADED, Actor(worker, "inspector", 1), request_id=f"w{worker}-{i}"
        )
        write_event(engine, log, event, way)
    engine.dispose()


def write_from_processes(url: str, key: SigningKey, workers: int, count: int, way: str) -> None:
    """``workers`` processes at once, ``count`` events each, checkpoints every 100 events."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_process_writer, args=(url, key.to_pem(), n, count, way))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
