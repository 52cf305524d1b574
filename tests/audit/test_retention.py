"""Disposing of the events past the log's retention period: the rest still verifies, and a
database writer cannot use disposal's shape to cut the log unnoticed.

``filled`` holds 35 events with checkpoints at 1, 11, 21 and 31 (one second apart).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from audit import AuditLog, BreakKind, ChainBroken, Disposal, SigningKey, dispose, verify_export
from audit.encoding import from_us
from audit.exports import export_log
from audit.tables import checkpoint_table, epoch_table, event_table
from portal.audit_vocabulary import VOCABULARY

from .conftest import START, fill, sample_event, sql, verify


def _time_of(engine: Engine, seq: int) -> datetime:
    with engine.connect() as connection:
        at_us = connection.execute(
            select(event_table.c.at_us).where(event_table.c.seq == seq)
        ).scalar_one()
    return from_us(at_us)


def _dispose_before(engine: Engine, log: AuditLog, seq: int) -> Disposal:
    """Dispose of everything older than event ``seq``."""
    before = _time_of(engine, seq)
    with engine.begin() as connection:
        return dispose(log, connection, before=before)


def _count(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(event_table)).scalar_one()
        cps = connection.execute(select(func.count()).select_from(checkpoint_table)).scalar_one()
    return int(events), int(cps)


def test_a_disposal_cuts_at_a_signed_checkpoint_and_the_rest_verifies(
    filled: Engine, log: AuditLog
) -> None:
    done = _dispose_before(filled, log, 26)  # events 1..25 are old: the cut is at checkpoint 21
    assert (done.events, done.through_seq) == (21, 21)
    assert _count(filled) == (14, 2)  # events 22..35; checkpoints 21 (the anchor) and 31
    result = verify(filled, log)
    assert result.ok, result.broken
    assert (result.epoch_seq, result.first_seq, result.last_seq, result.events) == (21, 22, 35, 14)
    fill(filled, log, 20, start=35)  # the log goes on after a disposal
    later = verify(filled, log)
    assert later.ok and later.last_seq == 55
    assert verify(filled, log, first=3, last=40).ok  # a range before the epoch starts at it


def test_nothing_old_enough_disposes_of_nothing(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        assert dispose(log, connection, before=START).events == 0
    assert _dispose_before(filled, log, 5).through_seq == 1  # only checkpoint 1 is before it
    assert _count(filled) == (34, 4)
    assert verify(filled, log).ok


def test_a_second_disposal_chains_to_the_first(filled: Engine, log: AuditLog) -> None:
    _dispose_before(filled, log, 15)
    fill(filled, log, 10, start=35)
    second = _dispose_before(filled, log, 34)
    assert second.through_seq == 31
    with filled.connect() as connection:
        epochs = connection.execute(
            select(epoch_table.c.seq, epoch_table.c.previous_seq).order_by(epoch_table.c.seq)
        ).all()
    assert [tuple(e) for e in epochs] == [(11, 0), (31, 11)]
    assert verify(filled, log).ok


def test_an_export_after_a_disposal_verifies_offline(
    filled: Engine, log: AuditLog, signing_key: SigningKey
) -> None:
    _dispose_before(filled, log, 26)
    with filled.begin() as connection:
        log.checkpoint(connection)
    out = io.BytesIO()
    with filled.connect() as connection, connection.begin():
        export_log(connection, signing_key, out, format="jsonl", now=START)
    check = verify_export(out.getvalue(), signing_key.public_key)
    assert check.ok, check.verification.broken
    assert (check.verification.first_seq, check.verification.last_seq) == (22, 35)


def test_deleting_the_epoch_shows_the_disposed_events_missing(
    filled: Engine, log: AuditLog
) -> None:
    _dispose_before(filled, log, 26)
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_epoch")
    result = verify(filled, log)
    assert result.broken is not None
    assert (result.broken.sequence, result.broken.kind) == (1, BreakKind.DELETED)


def test_a_later_start_without_a_signed_epoch_is_named(filled: Engine, log: AuditLog) -> None:
    """The attack disposal's shape invites: move the start to a later checkpoint, deleting
    what came before. The epoch's signature no longer matches."""
    _dispose_before(filled, log, 26)
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_event WHERE seq <= 31")
        sql(connection, "DELETE FROM audit_checkpoint WHERE seq < 31")
        hash31 = connection.execute(
            select(checkpoint_table.c.hash).where(checkpoint_table.c.seq == 31)
        ).scalar_one()
        sql(connection, "UPDATE audit_epoch SET seq = 31, hash = :h", h=hash31)
    result = verify(filled, log)
    assert result.broken is not None
    assert (result.broken.sequence, result.broken.kind) == (32, BreakKind.BAD_SIGNATURE)


def test_an_epoch_signed_by_another_key_is_named(filled: Engine, log: AuditLog) -> None:
    forger = AuditLog(VOCABULARY, SigningKey.generate(), policy=log.policy)
    before = _time_of(filled, 26)
    with filled.begin() as connection:
        dispose(forger, connection, before=before, keys=log.public_keys)
    result = verify(filled, log)
    assert result.broken is not None and result.broken.kind == BreakKind.BAD_SIGNATURE


def test_deleting_the_anchor_checkpoint_is_named(filled: Engine, log: AuditLog) -> None:
    _dispose_before(filled, log, 26)
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_checkpoint WHERE seq = 21")
    result = verify(filled, log)
    assert result.broken is not None
    assert (result.broken.sequence, result.broken.kind) == (22, BreakKind.TRUNCATED)


def test_a_tampered_stretch_is_never_disposed_of(filled: Engine, log: AuditLog) -> None:
    """Disposal must not launder tampering: the stretch to be cut must verify first."""
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 99 WHERE seq = 14")
    before = _time_of(filled, 26)
    with pytest.raises(ChainBroken), filled.begin() as connection:
        dispose(log, connection, before=before)
    assert _count(filled) == (35, 4)
    result = verify(filled, log)
    assert result.broken is not None and result.broken.sequence == 14


def test_a_young_event_among_old_ones_stops_the_cut_before_it(
    engine: Engine, log: AuditLog
) -> None:
    """Times along the chain are not strictly increasing (an event chained late keeps its
    action's time): the cut stops at the last checkpoint before the first young event."""
    fill(engine, log, 11)  # checkpoints at 1 and 11
    with engine.begin() as connection:
        log.append(connection, sample_event(11), now=START + timedelta(days=30))  # event 12
    fill(engine, log, 13, start=12)  # 13..25, checkpoint at 21
    done = _dispose_before(engine, log, 25)
    assert done.through_seq == 11
    assert verify(engine, log).ok
