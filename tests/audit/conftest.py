"""Shared pieces for the audit tests: a clock the tests set, a signing key, a log with a short
checkpoint interval so that tampering tests cross several checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from audit import (
    Action,
    Actor,
    AuditEvent,
    AuditLog,
    CheckpointPolicy,
    Outcome,
    SigningKey,
    Target,
    TargetKind,
    Verification,
    verify_log,
)
from audit.log import pending_count

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
        signing_key, policy=CheckpointPolicy(every_events=EVERY, every_seconds=86_400), clock=clock
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


def verify(engine: Engine, log: AuditLog, **kwargs: int) -> Verification:
    with engine.connect() as connection, connection.begin():
        return verify_log(
            connection, [log.public_key], every_events=log.policy.every_events, **kwargs
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
