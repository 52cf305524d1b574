"""Tampering with the stored log is detected, and the first broken sequence number named.

The attacker here has write access to the database but not the signing key file. ``filled`` holds
35 events with checkpoints at 1, 11, 21 and 31.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.engine import Engine

from audit import AuditLog, BreakKind, ChainBroken, SigningKey
from audit.encoding import GENESIS, chain_hash, checkpoint_message, event_digest
from audit.tables import event_table

from .conftest import fill, sample_event, sql, verify


def _rechain(connection: Connection) -> None:
    """What an attacker without the key can do: recompute every link and the head."""
    link = GENESIS
    rows = connection.execute(select(*event_table.c).order_by(event_table.c.seq)).all()
    for row in rows:
        link = chain_hash(link, event_digest(row))
        sql(connection, "UPDATE audit_event SET hash = :h WHERE seq = :s", h=link.hex(), s=row[0])
    sql(connection, "UPDATE audit_head SET seq = :s, hash = :h", s=rows[-1][0], h=link.hex())


def _broken(engine: Engine, log: AuditLog, **kwargs: int) -> tuple[int, BreakKind]:
    result = verify(engine, log, **kwargs)
    assert result.broken is not None, "tampering went unnoticed"
    return result.broken.sequence, result.broken.kind


def test_an_untouched_log_verifies_whole_and_by_range(filled: Engine, log: AuditLog) -> None:
    result = verify(filled, log)
    assert result.ok and result.events == 35 and result.checkpoints == 4
    assert result.last_checkpoint is not None and result.last_checkpoint.seq == 31
    ranged = verify(filled, log, first=14, last=18)
    assert ranged.ok and (ranged.first_seq, ranged.last_seq) == (12, 21)  # widened to signatures


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("user_id", 99),
        ("action", "auth.sign_in"),
        ("details", '{"mfa":false}'),
        ("at_us", 1),
        ("hash", "0" * 64),
        ("outcome", "failure"),
        ("client", None),
    ],
)
def test_an_edited_field_is_named(
    filled: Engine, log: AuditLog, column: str, value: object
) -> None:
    with filled.begin() as connection:
        sql(connection, f"UPDATE audit_event SET {column} = :v WHERE seq = 14", v=value)  # noqa: S608
    assert _broken(filled, log) == (14, BreakKind.CHANGED)
    assert _broken(filled, log, first=12, last=16) == (14, BreakKind.CHANGED)


def test_an_edit_in_the_unsigned_tail_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 99 WHERE seq = 34")
    assert _broken(filled, log) == (34, BreakKind.CHANGED)


def test_a_deleted_row_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_event WHERE seq = 17")
    assert _broken(filled, log) == (17, BreakKind.DELETED)


def test_an_inserted_row_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        # Make room at 17 (in two steps: a unique key is checked row by row) and slip a row in,
        # with a link that chains correctly from 16.
        sql(connection, "UPDATE audit_event SET seq = seq + 1000 WHERE seq >= 17")
        sql(connection, "UPDATE audit_event SET seq = seq - 999 WHERE seq >= 1000")
        forged = list(
            connection.execute(select(*event_table.c).where(event_table.c.seq == 16)).one()
        )
        forged[0], forged[3] = 17, 4
        previous = bytes.fromhex(str(forged[-1]))
        forged[-1] = chain_hash(previous, event_digest(forged)).hex()
        connection.execute(
            event_table.insert().values(dict(zip(event_table.c.keys(), forged, strict=True)))
        )
    assert _broken(filled, log) == (17, BreakKind.INSERTED)


def test_an_inserted_row_with_a_bad_link_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET seq = seq + 1000 WHERE seq >= 17")
        sql(connection, "UPDATE audit_event SET seq = seq - 999 WHERE seq >= 1000")
        row = list(connection.execute(select(*event_table.c).where(event_table.c.seq == 16)).one())
        row[0] = 17
        connection.execute(
            event_table.insert().values(dict(zip(event_table.c.keys(), row, strict=True)))
        )
    assert _broken(filled, log) == (17, BreakKind.INSERTED)


def test_two_swapped_rows_are_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET seq = -1 WHERE seq = 23")
        sql(connection, "UPDATE audit_event SET seq = 23 WHERE seq = 24")
        sql(connection, "UPDATE audit_event SET seq = 24 WHERE seq = -1")
    assert _broken(filled, log) == (23, BreakKind.REORDERED)


def test_a_cut_tail_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_event WHERE seq > 28")
    assert _broken(filled, log) == (29, BreakKind.TRUNCATED)


def test_a_deleted_checkpoint_is_named(filled: Engine, log: AuditLog) -> None:
    # Each checkpoint signs the sequence number of the one before it.
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_checkpoint WHERE seq = 21")
    assert _broken(filled, log) == (12, BreakKind.MISSING_CHECKPOINT)


def test_checkpoints_resigned_with_another_key_are_named(filled: Engine, log: AuditLog) -> None:
    attacker = SigningKey.generate()
    with filled.begin() as connection:
        rows = connection.execute(
            text("SELECT seq, hash, at_us, every_events, previous_seq FROM audit_checkpoint")
        ).all()
        for seq, link, at_us, every, previous in rows:
            message = checkpoint_message(
                seq=seq,
                hash_hex=link,
                at_us=at_us,
                every_events=every,
                previous_seq=previous,
                fingerprint=attacker.fingerprint,
            )
            sql(
                connection,
                "UPDATE audit_checkpoint SET key_fingerprint = :f, signature = :s WHERE seq = :q",
                f=attacker.fingerprint,
                s=attacker.sign(message),
                q=seq,
            )
    assert _broken(filled, log) == (1, BreakKind.BAD_SIGNATURE)


def test_a_checkpoint_signature_claiming_our_key_is_named(filled: Engine, log: AuditLog) -> None:
    attacker = SigningKey.generate()
    with filled.begin() as connection:
        sql(
            connection,
            "UPDATE audit_checkpoint SET signature = :s WHERE seq = 21",
            s=attacker.sign(b"anything"),
        )
    assert _broken(filled, log) == (21, BreakKind.BAD_SIGNATURE)


def test_a_consistently_rewritten_chain_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 99 WHERE seq = 15")
        _rechain(connection)
    assert _broken(filled, log) == (12, BreakKind.REWRITTEN)  # events 12..21: the signed window


def test_a_rewritten_chain_without_its_checkpoints_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 99 WHERE seq = 15")
        _rechain(connection)
        sql(connection, "DELETE FROM audit_checkpoint")
    assert _broken(filled, log) == (1, BreakKind.MISSING_CHECKPOINT)


def test_the_log_refuses_to_sign_a_rewritten_chain(filled: Engine, log: AuditLog) -> None:
    # Rewrite, delete the checkpoint that contradicts it, and hope that the portal's next
    # checkpoint will vouch for the forgery.
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 98 WHERE seq = 25")
        _rechain(connection)
        sql(connection, "DELETE FROM audit_checkpoint WHERE seq = 31")
    with pytest.raises(ChainBroken) as caught, filled.begin() as connection:
        log.checkpoint(connection)
    broken = caught.value.broken
    assert (broken.sequence, broken.kind) == (22, BreakKind.MISSING_CHECKPOINT)
    fill(filled, log, 3, start=35)  # appends go on while no checkpoint is due (36..38) ...
    with pytest.raises(ChainBroken), filled.begin() as connection:
        for i in range(10):  # ... and are refused, with their action, once one is due (41)
            log.append(connection, sample_event(40 + i))
    assert _broken(filled, log) == (22, BreakKind.MISSING_CHECKPOINT)


def test_the_log_refuses_to_sign_after_a_rewrite_behind_its_last_checkpoint(
    filled: Engine, log: AuditLog
) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_event SET user_id = 98 WHERE seq = 25")
        _rechain(connection)
    with pytest.raises(ChainBroken) as caught, filled.begin() as connection:
        log.checkpoint(connection)
    assert caught.value.broken.sequence == 32  # the first link that no longer meets 31's
    assert _broken(filled, log) == (22, BreakKind.REWRITTEN)


def test_an_edited_head_is_named(filled: Engine, log: AuditLog) -> None:
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_head SET seq = 40")
    assert _broken(filled, log) == (36, BreakKind.TRUNCATED)
    with filled.begin() as connection:
        sql(connection, "UPDATE audit_head SET seq = 33")
    assert _broken(filled, log) == (34, BreakKind.INSERTED)
