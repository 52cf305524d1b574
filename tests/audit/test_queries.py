"""Searching: filters, newest first, keyset pages that neither skip nor repeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from audit import AuditLog, EventFilter, Outcome, Target, search
from portal.audit_vocabulary import Action, TargetKind

from .conftest import START


def _all_pages(engine: Engine, where: EventFilter, limit: int) -> list[int]:
    seqs: list[int] = []
    before = None
    with engine.connect() as connection:
        while True:
            page = search(connection, where, before=before, limit=limit)
            seqs += [record.seq for record in page.records]
            if page.next_before is None:
                return seqs
            before = page.next_before


def test_filters_and_pages(filled: Engine, log: AuditLog) -> None:
    assert _all_pages(filled, EventFilter(), 7) == list(range(35, 0, -1))
    assert _all_pages(filled, EventFilter(actor=2), 2) == [32, 27, 22, 17, 12, 7, 2]
    assert _all_pages(filled, EventFilter(action=Action.SIGN_IN), 100) == list(range(33, 0, -3))
    assert _all_pages(filled, EventFilter(outcome=Outcome.DENIED), 3) == [29, 22, 15, 8, 1]
    both = EventFilter(review="SWG24", document="7KQ2-M9XD-3")
    assert _all_pages(filled, both, 3) == [34, 24, 14, 4]
    target = EventFilter(target=Target(TargetKind.DOCUMENT, "DOC0009"))
    assert _all_pages(filled, target, 5) == [10]
    window = EventFilter(since=START + timedelta(seconds=3), until=START + timedelta(seconds=6))
    assert _all_pages(filled, window, 5) == [5, 4, 3]


def test_records_read_back(filled: Engine) -> None:
    with filled.connect() as connection:
        record = search(connection, EventFilter(actor=2), limit=1).records[0]
    assert record.seq == 32 and record.actor.user_id == 2 and record.actor.role == "inspector"
    assert record.details == {"mfa": True, "size_bytes": 3100}
    assert record.at == START + timedelta(seconds=32) and record.at.utcoffset() == timedelta(0)
    assert record.target == Target(TargetKind.DOCUMENT, "DOC0031")
    with pytest.raises(ValueError), filled.connect() as connection:
        search(connection, limit=0)
