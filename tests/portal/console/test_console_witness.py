"""Every attack the threat model says the witness detects, through the real app: the API's
verify, the console's verification page, and an export checked offline (issue 17, "Done when":
detected by `portal audit verify`, the console and the API, naming the witnessed sequence).

The library's matrix is tests/audit/test_witness.py; here each attack runs against a log the
portal wrote (an upload, verifications, the worker's checkpoints every 61 s of the test clock,
each given to the witness), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, select, text
from starlette.testclient import TestClient

import audit
from audit.tables import checkpoint_table, event_table, head_table, pending_table
from portal.db import make_engine
from portal.runtime import build_runtime
from portal.worker import Worker
from tests.audit.test_witness import _cut_back_to
from tests.portal.conftest import Exchange, cheap_hasher, csrf_from
from tests.portal.console.test_console import _dpo, _public_key, _uploaded


@dataclass
class Log:
    """The portal's log before the attack: the witnessed checkpoints, and a saved copy of the
    audit tables from before the last of them (an older backup)."""

    witnessed: list[int]
    head: int
    backup: dict[str, list[Any]]


AUDIT_TABLES = (event_table, checkpoint_table, head_table, pending_table)


def _save(connection: Connection) -> dict[str, list[Any]]:
    return {
        table.name: [dict(row._mapping) for row in connection.execute(select(table))]
        for table in AUDIT_TABLES
    }


def _written(exchange: Exchange) -> Log:
    world, client, dpo = exchange.world, exchange.client, exchange.tokens["dpo"]
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    _uploaded(exchange)
    engine = make_engine(world.settings.database_url)
    backup: dict[str, list[Any]] = {}
    try:
        for round_ in range(3):
            for _ in range(3):
                assert client.post("/api/v1/audit/verify", headers=dpo).json()["ok"]
            if round_ == 2:
                with engine.connect() as connection:
                    backup = _save(connection)  # the backup, before the last checkpoint
            world.clock.advance(seconds=61)
            done = worker.run_round(force=True)
            assert done.checkpoint is not None and done.witness_problem is None
        assert client.post("/api/v1/audit/verify", headers=dpo).json()["ok"]  # an unsigned tail
        with engine.connect() as connection:
            head = connection.execute(select(head_table.c.seq)).scalar_one()
    finally:
        engine.dispose()
    witnessed = [c.seq for c in worker.runtime.witness.entries()]
    assert len(witnessed) >= 3 and witnessed[-1] < head
    return Log(witnessed, head, backup)


def cut_back_to_a_checkpoint(connection: Connection, log: Log) -> None:
    _cut_back_to(connection, log.witnessed[-2])


def cut_back_between_checkpoints(connection: Connection, log: Log) -> None:
    assert log.witnessed[-1] - log.witnessed[-2] > 1
    _cut_back_to(connection, log.witnessed[-2] + 1)


def move_the_head_back_only(connection: Connection, log: Log) -> None:
    link = connection.execute(
        select(event_table.c.hash).where(event_table.c.seq == log.head - 1)
    ).scalar_one()
    connection.execute(head_table.update().values(seq=log.head - 1, hash=link))


def rewrite_a_witnessed_checkpoint(connection: Connection, log: Log) -> None:
    connection.execute(
        checkpoint_table.update()
        .where(checkpoint_table.c.seq == log.witnessed[-1])
        .values(hash="0" * 64)
    )


def restore_an_older_copy_of_the_database(connection: Connection, log: Log) -> None:
    for table in reversed(AUDIT_TABLES):
        connection.execute(table.delete())
    for table in AUDIT_TABLES:
        if log.backup[table.name]:
            connection.execute(table.insert(), log.backup[table.name])


Attack = Callable[[Connection, Log], None]
# The attack; the kinds the API may name; the sequence number it must name (of the log).
ATTACKS: list[tuple[Attack, set[str], Callable[[Log], int], bool]] = [
    (cut_back_to_a_checkpoint, {"rolled_back"}, lambda log: log.witnessed[-1], True),
    (cut_back_between_checkpoints, {"rolled_back"}, lambda log: log.witnessed[-1], True),
    (move_the_head_back_only, {"inserted"}, lambda log: log.head, False),
    (
        rewrite_a_witnessed_checkpoint,
        {"bad_signature", "rewritten"},
        lambda log: log.witnessed[-1],
        False,
    ),
    (restore_an_older_copy_of_the_database, {"rolled_back"}, lambda log: log.witnessed[-1], True),
]


@pytest.mark.parametrize(
    ("attack", "kinds", "sequence", "cut_back"), ATTACKS, ids=[a[0].__name__ for a in ATTACKS]
)
def test_the_api_and_the_console_detect_each_attack_the_witness_detects(
    exchange: Exchange,
    attack: Attack,
    kinds: set[str],
    sequence: Callable[[Log], int],
    cut_back: bool,
) -> None:
    log = _written(exchange)
    client, dpo = exchange.client, exchange.tokens["dpo"]
    page_client: TestClient = _dpo(exchange)
    token = csrf_from(page_client.get("/console/audit/verify").text)
    assert (
        'data-ok="true"'
        in page_client.post("/console/audit/verify", data={"csrf_token": token}).text
    )
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.begin() as connection:
            attack(connection, log)
    finally:
        engine.dispose()
    expected = sequence(log)

    found = client.post("/api/v1/audit/verify", headers=dpo)
    assert found.status_code == 200, found.text
    broken = found.json()["broken"]
    assert found.json()["ok"] is False and broken is not None, found.text
    assert broken["kind"] in kinds and broken["sequence"] == expected, broken
    if cut_back:
        assert f"{expected}" in broken["detail"] and "witness" in broken["detail"]

    page = page_client.post("/console/audit/verify", data={"csrf_token": token}).text
    assert 'data-ok="false"' in page and f'data-broken="{expected}"' in page

    if cut_back:
        # An export made now carries the witness's line and fails offline, naming it; so does
        # the API's check of that file.
        exported = client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=dpo)
        assert exported.status_code == 200
        check = audit.verify_export(exported.content, _public_key(exchange.world))
        offline = check.verification.broken
        # Cut back, the portal appended again (these verifications, the export's own event and
        # checkpoint): the export ends before the witnessed checkpoint, or has another there.
        forked = {audit.BreakKind.ROLLED_BACK, audit.BreakKind.REWRITTEN}
        assert offline is not None and offline.kind in forked, offline
        assert offline.sequence == expected
        uploaded = client.post(
            "/api/v1/audit/verify",
            content=exported.content,
            headers={**dpo, "Content-Type": "application/octet-stream"},
        ).json()
        assert uploaded["ok"] is False and uploaded["broken"]["kind"] == offline.kind.value
        assert uploaded["broken"]["sequence"] == expected


def test_the_console_export_carries_the_witnessed_checkpoint(exchange: Exchange) -> None:
    log = _written(exchange)
    dpo = _dpo(exchange)
    for format_ in ("jsonl", "csv"):
        data = dpo.get(f"/console/audit/export?format={format_}").content
        check = audit.verify_export(data, _public_key(exchange.world))
        assert check.ok, check.verification.broken
        # The export signs a checkpoint at the head and witnesses it before the first byte.
        assert check.witnessed is not None and check.witnessed.seq > log.witnessed[-1]
        receipt = dpo.get("/console/audit/receipt").content
        kept = audit.parse_receipts(receipt, where="receipt")
        assert audit.verify_export(data, None, receipts=kept).ok
    engine = make_engine(exchange.world.settings.database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one() > 0
    engine.dispose()


def test_an_export_of_a_log_that_refuses_appends_is_refused_and_not_lost(
    exchange: Exchange,
) -> None:
    """Found: with the head moved back onto events still there, the export's own event could not
    be appended and the export answered 500. It is refused with a clear error that points to the
    verification, its event is kept pending, and the console says the same."""
    log = _written(exchange)
    client, dpo = exchange.client, exchange.tokens["dpo"]
    page_client: TestClient = _dpo(exchange)
    engine = make_engine(exchange.world.settings.database_url)
    try:
        with engine.begin() as connection:
            move_the_head_back_only(connection, log)
        exported = client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=dpo)
        assert exported.status_code == 409, exported.text
        error = exported.json()["error"]
        assert error["code"] == "audit_log_damaged" and "verify" in error["message"].lower()
        page = page_client.get("/console/audit/export", params={"format": "jsonl"})
        assert page.status_code == 409 and "verify" in page.text.lower()
        with engine.connect() as connection:
            pending = connection.execute(
                select(pending_table.c.action, pending_table.c.outcome)
            ).all()
        assert ("audit.exported", "failure") in [tuple(row) for row in pending]
    finally:
        engine.dispose()
