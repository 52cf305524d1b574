"""The witness: rollback and tamper attacks by someone who can write to the database (issue 17).

Found by a tester with write access to a copy of a real database (633 events):

    DELETE FROM audit_event WHERE seq>160; DELETE FROM audit_checkpoint WHERE seq>160;
    DELETE FROM audit_pending; UPDATE audit_head SET seq=160, hash=…, checkpoint_seq=160, …

and ``portal audit verify`` said "verified … last signed at 160", exit 0. Each attack below is run
against a real SQLite and PostgreSQL log (checkpoints every 10 events, 35 events, the witness given
every checkpoint up to 31), first without the witness, then with it. What is detected and what is
not is in docs/audit-format.md ("Threat model"); ``ATTACKS`` holds the same table and a test
checks that the page says so.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from audit import AuditLog, BreakKind, ChainBroken, Verification, verify_log
from audit.tables import checkpoint_table, event_table
from audit.witness import (
    FileWitness,
    Witness,
    WitnessError,
    checkpoint_line,
    parse_checkpoint_line,
    witness_checkpoints,
)
from portal.db import make_engine
from tests.audit.conftest import fill, sql

REPO = Path(__file__).resolve().parents[2]


def _verify(engine: Engine, log: AuditLog, witness: Witness | None) -> Verification:
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    with connection, connection.begin():
        return verify_log(
            connection, [log.public_key], every_events=log.policy.every_events, witness=witness
        )


def _witness(engine: Engine, log: AuditLog, witness: FileWitness) -> int:
    with engine.connect() as connection:
        return witness_checkpoints(connection, witness, [log.public_key])


def _cut_back_to(connection: Connection, seq: int) -> None:
    """The tester's attack: everything after ``seq`` deleted, the head moved back to it."""
    link = connection.execute(select(event_table.c.hash).where(event_table.c.seq == seq)).scalar()
    sql(connection, "DELETE FROM audit_event WHERE seq > :s", s=seq)
    sql(connection, "DELETE FROM audit_checkpoint WHERE seq > :s", s=seq)
    sql(connection, "DELETE FROM audit_pending")
    last_cp = connection.execute(
        select(checkpoint_table.c.seq, checkpoint_table.c.at_us)
        .where(checkpoint_table.c.seq <= seq)
        .order_by(checkpoint_table.c.seq.desc())
        .limit(1)
    ).one()
    sql(
        connection,
        "UPDATE audit_head SET seq = :s, hash = :h, checkpoint_seq = :cs, checkpoint_us = :cu",
        s=seq,
        h=link,
        cs=last_cp.seq,
        cu=last_cp.at_us,
    )


def cut_back_to_a_checkpoint(connection: Connection) -> None:
    _cut_back_to(connection, 21)


def cut_back_between_checkpoints(connection: Connection) -> None:
    _cut_back_to(connection, 25)


def delete_one_event_after_the_last_witnessed_checkpoint(connection: Connection) -> None:
    # Event 35 is after checkpoint 31, the last one signed and witnessed: the unsigned tail.
    _cut_back_to(connection, 34)


def move_the_head_back_only(connection: Connection) -> None:
    link = connection.execute(select(event_table.c.hash).where(event_table.c.seq == 30)).scalar()
    sql(connection, "UPDATE audit_head SET seq = 30, hash = :h", h=link)


def rewrite_a_witnessed_checkpoint(connection: Connection) -> None:
    sql(connection, "UPDATE audit_checkpoint SET hash = :h WHERE seq = 31", h="0" * 64)


Attack = Callable[[Connection], None]
# attack, detected without the witness, detected with it, the break's kind with it
ATTACKS: list[tuple[Attack, bool, bool, BreakKind | None]] = [
    (cut_back_to_a_checkpoint, False, True, BreakKind.ROLLED_BACK),
    (cut_back_between_checkpoints, False, True, BreakKind.ROLLED_BACK),
    (move_the_head_back_only, True, True, BreakKind.INSERTED),
    (rewrite_a_witnessed_checkpoint, True, True, None),
    (delete_one_event_after_the_last_witnessed_checkpoint, False, False, None),
]


@pytest.mark.parametrize(
    ("attack", "without", "with_witness", "kind"),
    ATTACKS,
    ids=[a[0].__name__ for a in ATTACKS],
)
def test_attacks_on_the_database_against_the_witness(
    filled: Engine,
    log: AuditLog,
    tmp_path: Path,
    attack: Attack,
    without: bool,
    with_witness: bool,
    kind: BreakKind | None,
) -> None:
    witness = FileWitness(tmp_path / "witness" / "audit.jsonl")
    assert _witness(filled, log, witness) == 4  # checkpoints 1, 11, 21, 31
    assert _verify(filled, log, witness).ok
    with filled.begin() as connection:
        attack(connection)
    assert (not _verify(filled, log, None).ok) is without
    found = _verify(filled, log, witness)
    assert (not found.ok) is with_witness, found
    if kind is not None:
        assert found.broken is not None and found.broken.kind is kind
    if kind is BreakKind.ROLLED_BACK:
        assert found.broken is not None and found.broken.sequence == 31
        assert "31" in found.broken.detail and str(witness.path) in found.broken.detail


def test_a_restored_older_copy_of_the_database_is_found_out(
    sqlite_database_url: str, log: AuditLog, tmp_path: Path
) -> None:
    """Restoring an old backup is the same attack: the witness is not in the backup."""
    path = Path(sqlite_database_url.removeprefix("sqlite:///"))
    engine = make_engine(sqlite_database_url)
    witness = FileWitness(tmp_path / "witness.jsonl")
    fill(engine, log, 22)
    _witness(engine, log, witness)
    engine.dispose()
    shutil.copyfile(path, tmp_path / "old.db")
    engine = make_engine(sqlite_database_url)
    fill(engine, log, 13, start=22)
    assert _witness(engine, log, witness) == 1  # checkpoint 31
    engine.dispose()
    shutil.copyfile(tmp_path / "old.db", path)  # the restore
    engine = make_engine(sqlite_database_url)
    try:
        assert _verify(engine, log, None).ok  # on its own, the old copy verifies
        found = _verify(engine, log, witness)
        assert found.broken is not None and found.broken.kind is BreakKind.ROLLED_BACK
        assert found.broken.sequence == 31
        # And the worker refuses to extend a witness the database contradicts.
        with pytest.raises(ChainBroken):
            _witness(engine, log, witness)
    finally:
        engine.dispose()


def test_an_older_witness_file_hides_a_cut_but_a_dpos_receipt_does_not(
    filled: Engine, log: AuditLog, tmp_path: Path
) -> None:
    """Replacing the witness with an older copy: whoever can write both the database and the
    witness can cut back to the copy's last checkpoint. A receipt a DPO kept from an earlier
    verification (one witness line) still finds it."""
    witness = FileWitness(tmp_path / "audit.jsonl")
    _witness(filled, log, witness)
    lines = witness.path.read_text().splitlines()
    receipt = FileWitness(tmp_path / "receipt.jsonl")
    receipt.path.write_text(lines[-1] + "\n")  # checkpoint 31, as printed by a verification
    with filled.begin() as connection:
        cut_back_to_a_checkpoint(connection)
    witness.path.write_text("\n".join(lines[:3]) + "\n")  # the copy from before checkpoint 31
    assert _verify(filled, log, witness).ok  # not detected: written down as such
    found = _verify(filled, log, receipt)
    assert found.broken is not None and found.broken.kind is BreakKind.ROLLED_BACK


def test_a_forged_or_garbled_witness_line_is_refused(
    filled: Engine, log: AuditLog, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "audit.jsonl")
    _witness(filled, log, witness)
    first = parse_checkpoint_line(witness.path.read_text().splitlines()[0], where="test")
    forged = first._replace(seq=99, previous_seq=31)
    with witness.path.open("a") as handle:
        handle.write(checkpoint_line(forged) + "\n")
    found = _verify(filled, log, witness)
    assert found.broken is not None and found.broken.kind is BreakKind.BAD_SIGNATURE
    assert found.broken.sequence == 99
    witness.path.write_text('{"format": "audit-witness/1", "seq": "x"}\n')
    garbled = _verify(filled, log, witness)  # not known to be whole: never a pass
    assert garbled.broken is not None and garbled.broken.kind is BreakKind.UNWITNESSED
    assert "line 1" in garbled.broken.detail
    witness.path.write_text("not json\n")
    with pytest.raises(WitnessError):
        witness.latest()


def test_witnessing_is_idempotent_and_follows_new_checkpoints(
    engine: Engine, log: AuditLog, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "w" / "audit.jsonl")
    assert witness.latest() is None and _witness(engine, log, witness) == 0
    fill(engine, log, 12)
    assert _witness(engine, log, witness) == 2  # 1 and 11
    assert _witness(engine, log, witness) == 0
    fill(engine, log, 10, start=12)
    assert _witness(engine, log, witness) == 1
    latest = witness.latest()
    assert latest is not None and latest.seq == 21
    assert [c.seq for c in witness.entries()] == [1, 11, 21]
    assert oct(witness.path.stat().st_mode & 0o777) == "0o600"
    verified = _verify(engine, log, witness)
    assert verified.ok and verified.witnessed == latest


def test_the_threat_model_says_what_the_tests_find() -> None:
    page = (REPO / "docs" / "audit-format.md").read_text()
    section = page.split("## Threat model", 1)[1]
    detected = sum(1 for _, _, found, _ in ATTACKS if found)
    assert f"detected {detected + 1} of {len(ATTACKS) + 2}" in section  # + restore, + old witness
    for attack, _, found, _ in ATTACKS:
        words = attack.__name__.replace("_", " ")
        row = next((line for line in section.splitlines() if words in line.lower()), None)
        assert row is not None, words
        verdict = row.rstrip().rsplit("|", 2)[-2].strip()  # the "with the witness" column
        assert verdict == ("detected" if found else "not detected"), row
    assert re.search(r"older witness.*\| not detected \|", section, re.IGNORECASE)


def test_verification_reports_the_unsigned_tail_and_when_it_is_stale(
    filled: Engine, log: AuditLog
) -> None:
    result = _verify(filled, log, None)
    assert result.ok and result.tail_events == 4  # 32..35 after checkpoint 31
    with filled.connect() as connection:
        since = connection.execute(
            select(event_table.c.at_us).where(event_table.c.seq == 32)
        ).scalar_one()
    assert result.tail_since_us == since
    assert result.tail_age_seconds(since + 90_000_000) == 90
    assert not result.tail_is_stale(since + 120_000_000, every_seconds=60)  # exactly 2T: not yet
    assert result.tail_is_stale(since + 121_000_000, every_seconds=60)
    with filled.begin() as connection:
        log.checkpoint(connection)
    sealed = _verify(filled, log, None)
    assert sealed.tail_events == 0 and sealed.tail_since_us is None
    assert not sealed.tail_is_stale(since + 10**12, every_seconds=60)
