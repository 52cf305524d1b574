"""An export checked offline against a witness and against the receipts a DPO kept (issue 17).

The export carries the witness's latest checkpoint (the witness's own, signed line) and the log's
public keys; ``verify_export(receipts=...)`` compares it with what the DPO kept from earlier
verifications. Each hostile case runs on SQLite and PostgreSQL (35 events, checkpoints every 10,
sealed at 35 and witnessed: 1, 11, 21, 31, 35). Before this, an export made from a log cut back
to a checkpoint verified, and so did an older export shown as the current one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from audit import (
    AuditLog,
    BreakKind,
    CheckpointPolicy,
    CheckpointRow,
    EventFilter,
    ExportFormat,
    ExportUnreadable,
    FileWitness,
    SigningKey,
    WitnessError,
    checkpoint_line,
    export_log,
    parse_receipts,
    verify_export,
    witness_checkpoints,
)
from audit.encoding import GENESIS, checkpoint_message
from portal.audit_vocabulary import VOCABULARY
from tests.audit.conftest import START, Clock, fill, sql
from tests.audit.test_witness import cut_back_to_a_checkpoint


def _sealed_and_witnessed(engine: Engine, log: AuditLog, witness: FileWitness) -> CheckpointRow:
    with engine.begin() as connection:
        log.checkpoint(connection)
    with engine.connect() as connection:
        witness_checkpoints(connection, witness, log.public_keys)
    latest = witness.latest()
    assert latest is not None
    return latest


def _export(
    engine: Engine,
    log: AuditLog,
    key: SigningKey,
    witnessed: CheckpointRow | None,
    fmt: ExportFormat = "jsonl",
    where: EventFilter | None = None,
) -> bytes:
    out = io.BytesIO()
    with engine.connect() as connection, connection.begin():
        export_log(
            connection,
            key,
            out,
            format=fmt,
            where=where,
            now=START,
            witnessed=witnessed,
            public_keys=log.public_keys,
        )
    return out.getvalue()


@pytest.fixture
def witness(tmp_path: Path) -> FileWitness:
    return FileWitness(tmp_path / "witness" / "audit.jsonl")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_carries_the_witnessed_checkpoint_and_agrees_with_receipts(
    filled: Engine,
    log: AuditLog,
    signing_key: SigningKey,
    witness: FileWitness,
    fmt: ExportFormat,
) -> None:
    latest = _sealed_and_witnessed(filled, log, witness)
    assert latest.seq == 35
    data = _export(filled, log, signing_key, latest, fmt)
    assert checkpoint_line(latest).encode() in data.replace(b'\\"', b'"').replace(b'""', b'"')
    receipt = parse_receipts(checkpoint_line(latest).encode() + b"\n", where="receipt")
    whole_witness = parse_receipts(witness.path.read_bytes(), where=str(witness.path))
    assert [c.seq for c in whole_witness] == [1, 11, 21, 31, 35]
    for key in (signing_key.public_key, None):  # the key given, or the ones the export carries
        for receipts in ([], receipt, whole_witness):
            check = verify_export(data, key, receipts=receipts)
            assert check.ok, check.verification.broken
            assert check.witnessed == latest and check.verification.witnessed == latest
            assert check.keys_from_export is (key is None)
    # A filtered export reaches the witnessed checkpoint too (hidden events past its matches),
    # so that a receipt can be checked against it.
    where = EventFilter(actor=2, review="ABC25")  # events 7, 17, 27
    filtered = verify_export(
        _export(filled, log, signing_key, latest, fmt, where), None, receipts=whole_witness
    )
    assert filtered.ok, filtered.verification.broken
    assert (filtered.shown, filtered.verification.last_seq) == (3, 35)


def test_a_truncated_export_fails_naming_where_it_stops(
    filled: Engine, log: AuditLog, signing_key: SigningKey, witness: FileWitness
) -> None:
    latest = _sealed_and_witnessed(filled, log, witness)
    lines = _export(filled, log, signing_key, latest).splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b'"seq":25,' in line)
    check = verify_export(b"".join(lines[:cut]), signing_key.public_key)
    assert check.verification.broken is not None
    assert check.verification.broken.kind is BreakKind.TRUNCATED


def test_an_export_with_an_event_removed_fails_at_that_event(
    filled: Engine, log: AuditLog, signing_key: SigningKey, witness: FileWitness
) -> None:
    latest = _sealed_and_witnessed(filled, log, witness)
    lines = _export(filled, log, signing_key, latest).splitlines(keepends=True)
    gone = [line for line in lines if b'"type":"event"' not in line or b'"seq":33,' not in line]
    assert len(gone) == len(lines) - 1
    check = verify_export(b"".join(gone), None)
    broken = check.verification.broken
    assert broken is not None and broken.kind is BreakKind.DELETED and broken.sequence == 33


def test_an_export_of_a_log_cut_back_fails_against_a_newer_receipt(
    filled: Engine, log: AuditLog, signing_key: SigningKey, witness: FileWitness, tmp_path: Path
) -> None:
    """The tester's cut-back (to checkpoint 21), then an export. Even when the attacker also
    put back an older witness file (the export then carries its line), the receipt the DPO kept
    at 35 finds it, naming the witnessed sequence and what the export holds."""
    latest = _sealed_and_witnessed(filled, log, witness)
    receipt = parse_receipts(checkpoint_line(latest).encode(), where="receipt")
    old_lines = witness.path.read_text().splitlines()[:3]  # up to 21
    with filled.begin() as connection:
        cut_back_to_a_checkpoint(connection)

    # The real witness still in place: the export carries its line at 35, and fails alone.
    carried = verify_export(_export(filled, log, signing_key, witness.latest()), None)
    broken = carried.verification.broken
    assert broken is not None and broken.kind is BreakKind.ROLLED_BACK and broken.sequence == 35
    assert "events 1 to 21" in broken.detail and "the witness line the export carries" in (
        broken.detail
    )

    # An older witness put back: the export verifies on its own (as before this change) ...
    witness.path.write_text("\n".join(old_lines) + "\n")
    data = _export(filled, log, signing_key, witness.latest())
    assert verify_export(data, signing_key.public_key).ok
    # ... but not against the DPO's receipt.
    check = verify_export(data, signing_key.public_key, receipts=receipt, receipt_name="R")
    broken = check.verification.broken
    assert broken is not None and broken.kind is BreakKind.ROLLED_BACK and broken.sequence == 35
    assert broken.detail.startswith("R witnessed the log up to the checkpoint signed at 35")
    assert "events 1 to 21" in broken.detail
    # An older export shown as the current one: the same finding.
    assert not verify_export(data, None, receipts=receipt).ok


def test_a_garbled_receipt_is_refused_as_input(tmp_path: Path) -> None:
    for garbled in (b"", b"not json\n", b'{"format":"audit-witness/1","seq":"x"}\n'):
        with pytest.raises(WitnessError):
            parse_receipts(garbled, where="receipt")


def _other_log_checkpoint(key: SigningKey, seq: int, link: str) -> CheckpointRow:
    message = checkpoint_message(
        seq=seq,
        hash_hex=link,
        at_us=1,
        every_events=10,
        previous_seq=0,
        fingerprint=key.fingerprint,
    )
    return CheckpointRow(seq, link, 1, 10, 0, key.fingerprint, key.sign(message))


def test_a_receipt_from_another_log_fails(
    filled: Engine,
    log: AuditLog,
    signing_key: SigningKey,
    witness: FileWitness,
    sqlite_database_url: str,
) -> None:
    latest = _sealed_and_witnessed(filled, log, witness)
    data = _export(filled, log, signing_key, latest)
    # Another installation (its own key): its receipt is not signed by this log's key.
    stranger = _other_log_checkpoint(SigningKey.generate(), 11, "ab" * 32)
    check = verify_export(data, signing_key.public_key, receipts=[stranger])
    broken = check.verification.broken
    assert broken is not None and broken.kind is BreakKind.BAD_SIGNATURE and broken.sequence == 11
    assert "another log" in broken.detail
    # Another log signed with the same key (a copy of the installation, a test instance): the
    # receipt is signed, but the export's checkpoint at 11 is not the one it holds ...
    same_key = _other_log_checkpoint(signing_key, 11, "cd" * 32)
    broken = verify_export(data, None, receipts=[same_key]).verification.broken
    assert broken is not None and broken.kind is BreakKind.REWRITTEN and broken.sequence == 11
    # ... or the export has no checkpoint where the other log signed one.
    other = _other_log_checkpoint(signing_key, 14, "cd" * 32)
    broken = verify_export(data, None, receipts=[other]).verification.broken
    assert broken is not None and broken.kind is BreakKind.REWRITTEN and broken.sequence == 14
    assert "no checkpoint at 14" in broken.detail


def test_an_export_signed_by_another_key_with_its_own_keys_fails_against_a_receipt(
    filled: Engine, log: AuditLog, signing_key: SigningKey, witness: FileWitness
) -> None:
    """A forger who rebuilds the whole log under a key of their own makes an export that
    verifies with the keys it carries; the DPO's receipt, signed by the real key, refuses it."""
    latest = _sealed_and_witnessed(filled, log, witness)
    forger = SigningKey.generate()
    forged_log = AuditLog(
        VOCABULARY, forger, policy=CheckpointPolicy(every_events=10), clock=Clock()
    )
    with filled.begin() as connection:
        sql(connection, "DELETE FROM audit_checkpoint")
        sql(connection, "DELETE FROM audit_event")
        sql(
            connection,
            "UPDATE audit_head SET seq = 0, hash = :h, checkpoint_seq = 0, checkpoint_us = 0",
            h=GENESIS.hex(),
        )
    fill(filled, forged_log, 35)
    with filled.begin() as connection:
        forged_log.checkpoint(connection)
    data = _export(filled, forged_log, forger, None)
    assert verify_export(data, None).ok  # whole, by its own keys: the CLI warns of that
    receipt = parse_receipts(checkpoint_line(latest).encode(), where="receipt")
    broken = verify_export(data, None, receipts=receipt).verification.broken
    assert broken is not None and broken.kind is BreakKind.BAD_SIGNATURE and broken.sequence == 35
    with pytest.raises(ExportUnreadable):  # keys that cannot be read: not an export
        verify_export(data.replace(b"BEGIN PUBLIC KEY", b"BEGIN PUBLIC KEX", 1), None)


def test_a_forged_witness_line_in_an_export_fails(
    filled: Engine, log: AuditLog, signing_key: SigningKey, witness: FileWitness
) -> None:
    latest = _sealed_and_witnessed(filled, log, witness)
    # A witnessed line the key did not sign (the sealing key signs the file, though: whoever
    # made this holds the key, which the threat model puts out of reach; the check is cheap).
    forged = latest._replace(seq=99, previous_seq=35)
    data = _export(filled, log, signing_key, forged)
    broken = verify_export(data, None).verification.broken
    assert broken is not None and broken.kind is BreakKind.BAD_SIGNATURE and broken.sequence == 99
    line = json.loads(data.splitlines()[1])
    assert line["type"] == "witnessed" and json.loads(line["line"])["seq"] == 99
