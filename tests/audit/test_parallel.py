"""Verification in parts, one process each, cut at signed checkpoints: the same answer as one walk;
any part that does not verify (or a process that fails or lies) sends it back to one walk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit import AuditLog, SigningKey, Verification, parallel, verify_log
from audit.parallel import choose_cuts, walk_part
from portal.db import make_engine

from .conftest import fill, sql, verify

EVENTS = 300  # checkpoints every 10 events (EVERY): 30 of them, plus the first event's


@pytest.fixture
def pg_filled(pg_database_url: str, log: AuditLog) -> Iterator[Engine]:
    engine = make_engine(pg_database_url)
    fill(engine, log, EVENTS)
    yield engine
    engine.dispose()


def _in_parts(engine: Engine, log: AuditLog, **kwargs: int) -> Verification:
    return verify(engine, log, processes=3, min_part=50, **kwargs)


def test_parts_give_the_same_answer_as_one_walk(pg_filled: Engine, log: AuditLog) -> None:
    one = verify(pg_filled, log)
    parts = _in_parts(pg_filled, log)
    assert one.ok and one.parts == 1 and one.events == EVENTS
    assert parts.parts == 3  # it did split
    assert replace(parts, parts=1) == one


def test_a_range_in_parts(pg_filled: Engine, log: AuditLog) -> None:
    one = verify(pg_filled, log, first=95, last=260)
    parts = _in_parts(pg_filled, log, first=95, last=260)
    assert one.ok and (one.first_seq, one.last_seq) == (92, 261)  # checkpoints at 91 and 261
    assert parts.parts == 3 and replace(parts, parts=1) == one


@pytest.mark.parametrize("seq", [5, 150, 290], ids=["first part", "middle part", "last part"])
def test_a_break_in_any_part_is_named_as_one_walk_names_it(
    pg_filled: Engine, log: AuditLog, seq: int
) -> None:
    with pg_filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET role = 'admin' WHERE seq = :seq", seq=seq)
    one = verify(pg_filled, log)
    parts = _in_parts(pg_filled, log)
    assert one.broken is not None and one.broken.sequence == seq
    assert parts == one and parts.parts == 1  # walked again in one process, same diagnosis


def test_a_tail_cut_off_is_found_in_parts_too(pg_filled: Engine, log: AuditLog) -> None:
    with pg_filled.begin() as connection:
        sql(connection, "DELETE FROM audit_event WHERE seq > 280")
    parts = _in_parts(pg_filled, log)
    # The parts verified; the end of the log, checked after the walk, does not match the head.
    assert replace(parts, parts=1) == verify(pg_filled, log)
    assert parts.broken is not None and parts.broken.sequence == 281


def dying_part(job: dict[str, object]) -> dict[str, object]:
    """A part's process that exits at once, answering nothing."""
    os._exit(3)


def lying_part(job: dict[str, object]) -> dict[str, object]:
    """A part's process that answers "verified" for its part, with a made-up last hash."""
    part = job["part"]
    assert isinstance(part, list)
    a, b = part
    return {
        "broken": False,
        "first_seq": a + 1,
        "last_seq": b,
        "events": b - a,
        "checkpoints": (b - a) // 10,
        "last_hash": "00" * 32,
    }


def test_a_failing_process_means_one_walk(
    pg_filled: Engine, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "_part_walker", lambda: dying_part)
    result = _in_parts(pg_filled, log)
    assert result.ok and result.parts == 1 and result.events == EVENTS


def test_a_part_that_claims_more_than_it_proves_is_not_believed(
    pg_filled: Engine, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers are checked: a "verified" part must end at its checkpoint's signed hash."""
    monkeypatch.setattr(parallel, "_part_walker", lambda: lying_part)
    with pg_filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET role = 'admin' WHERE seq = 50")
    result = _in_parts(pg_filled, log)
    assert result.broken is not None and result.broken.sequence == 50 and result.parts == 1


def test_a_part_walks_in_the_exported_snapshot(
    pg_filled: Engine, pg_database_url: str, log: AuditLog
) -> None:
    """A change committed after the snapshot was exported is not seen by the part's walk."""
    job = {
        "url": pg_database_url,
        "keys": [log.public_key.to_pem().decode("ascii")],
        "part": [91, 191],  # between two checkpoints
        "batch": 50,
    }
    with (
        pg_filled.connect().execution_options(isolation_level="REPEATABLE READ") as reader,
        reader.begin(),
    ):
        snapshot = reader.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        with pg_filled.begin() as writer:
            sql(writer, "UPDATE audit_event SET role = 'admin' WHERE seq = 150")
        answer = walk_part({**job, "snapshot": snapshot})
    assert answer["broken"] is False and (answer["first_seq"], answer["last_seq"]) == (92, 191)
    with pg_filled.connect() as connection:  # outside the snapshot, the change is there
        assert connection.execute(
            text("SELECT role FROM audit_event WHERE seq = 150")
        ).scalar() == ("admin")


@pytest.mark.parametrize("snapshot", ["'; DROP TABLE audit_event; --", "00000003-0000001B", ""])
def test_a_part_refuses_anything_but_a_snapshot_id(
    pg_database_url: str, signing_key: SigningKey, snapshot: str
) -> None:
    job = {
        "url": pg_database_url,
        "snapshot": snapshot,
        "keys": [signing_key.public_key.to_pem().decode("ascii")],
        "part": [0, 10],
        "batch": 10,
    }
    with pytest.raises(ValueError, match="snapshot"):
        walk_part(job)


def test_sqlite_walks_in_one_process(sqlite_database_url: str, log: AuditLog) -> None:
    engine = make_engine(sqlite_database_url)
    fill(engine, log, 60)
    with engine.connect() as connection, connection.begin():
        result = verify_log(connection, [log.public_key], processes=4, min_part=10)
    assert result.ok and result.parts == 1 and result.events == 60
    engine.dispose()


def test_cuts_fall_on_checkpoints_near_equal_shares() -> None:
    seqs = list(range(0, 1_000_001, 1000))
    assert choose_cuts(0, 1_000_000, seqs, 2, 100_000) == [500_000]
    assert choose_cuts(0, 1_000_000, seqs, 4, 100_000) == [250_000, 500_000, 750_000]
    # Never more parts than min_part allows; a short range is not split.
    assert choose_cuts(0, 250_000, seqs, 8, 100_000) == [125_000]
    assert choose_cuts(0, 150_000, seqs, 8, 100_000) == []
    # No checkpoint inside: nowhere to cut.
    assert choose_cuts(0, 1_000_000, [0, 1_000_000], 4, 100_000) == []
    # Sparse checkpoints: the nearest ones, each cut after the one before.
    assert choose_cuts(0, 1_000_000, [0, 100, 200, 900_000], 3, 100_000) == [200, 900_000]
