"""Exports: a range or a filtered selection verifies offline with the public key alone; one edited
byte fails; CSV cells are safe in a spreadsheet and one event is one line."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from audit import (
    Actor,
    AuditEvent,
    AuditLog,
    BreakKind,
    EventFilter,
    EventRejected,
    ExportFormat,
    ExportUnreadable,
    SigningKey,
    Target,
    export_log,
    verify_export,
)
from audit.exports import CSV_COLUMNS, safe_cell, unsafe_cell
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind

from .conftest import START, fill


def _export(
    engine: Engine,
    log: AuditLog,
    key: SigningKey,
    fmt: ExportFormat,
    where: EventFilter | None = None,
) -> bytes:
    with engine.begin() as connection:
        log.checkpoint(connection)
    out = io.BytesIO()
    with engine.connect() as connection, connection.begin():
        export_log(connection, key, out, format=fmt, where=where, now=START)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_whole_and_filtered_exports_verify_offline(
    filled: Engine, log: AuditLog, signing_key: SigningKey, fmt: ExportFormat
) -> None:
    whole = verify_export(_export(filled, log, signing_key, fmt), signing_key.public_key)
    assert whole.ok, whole.verification.broken
    assert (whole.shown, whole.hidden, whole.verification.last_seq) == (35, 0, 35)

    where = EventFilter(actor=2, review="ABC25")  # events 7, 17, 27 (i = 6, 16, 26)
    data = _export(filled, log, signing_key, fmt, where)
    check = verify_export(data, signing_key.public_key)
    assert check.ok, check.verification.broken
    # From the checkpoint before the first match (1) to the one after the last (31).
    assert (check.verification.first_seq, check.verification.last_seq) == (2, 31)
    assert check.shown == 3 and check.hidden == 30 - 3
    assert check.header["filter"] == {"actor": 2, "review": "ABC25"}
    # Hidden events reveal nothing but a digest: no actor, action or document.
    assert data.count(b"7KQ2-M9XD-") == 3


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_exported_range_verifies_offline(
    filled: Engine, log: AuditLog, signing_key: SigningKey, fmt: ExportFormat
) -> None:
    # Events 15..18 by time: the export runs from the checkpoint before (11) to the one after (21).
    where = EventFilter(since=START + timedelta(seconds=15), until=START + timedelta(seconds=19))
    check = verify_export(_export(filled, log, signing_key, fmt, where), signing_key.public_key)
    assert check.ok, check.verification.broken
    assert (check.verification.first_seq, check.verification.last_seq) == (12, 21)
    assert check.shown == 4 and check.hidden == 6


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_every_single_edited_byte_fails(
    filled: Engine, log: AuditLog, signing_key: SigningKey, fmt: ExportFormat
) -> None:
    data = _export(filled, log, signing_key, fmt, EventFilter(review="SWG24"))
    seal_at = data.rstrip(b"\n").rfind(b"\n") + 1
    for position in range(0, len(data), 7):
        edited = bytearray(data)
        edited[position] = ord("0") if data[position] != ord("0") else ord("1")
        try:
            check = verify_export(bytes(edited), signing_key.public_key)
        except ExportUnreadable:
            continue  # the header (first line) or the whole shape is gone: also a failure
        assert not check.ok, f"byte {position} edited, export still verifies"
        broken = check.verification.broken
        assert broken is not None
        if position >= seal_at:
            assert broken.kind is BreakKind.BAD_SIGNATURE  # the seal itself


def test_an_edited_event_in_an_export_is_named(
    filled: Engine, log: AuditLog, signing_key: SigningKey
) -> None:
    lines = _export(filled, log, signing_key, "jsonl").split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"seq":17,' in line and b"event" in line)
    record = json.loads(lines[index])
    record["user_id"] = 5
    lines[index] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    check = verify_export(b"\n".join(lines), signing_key.public_key)
    assert check.verification.broken is not None
    assert (check.verification.broken.sequence, check.verification.broken.kind) == (
        17,
        BreakKind.CHANGED,
    )
    # Swapping two event lines is named too.
    lines = _export(filled, log, signing_key, "jsonl").split(b"\n")
    i = next(i for i, line in enumerate(lines) if b'"seq":23,' in line and b"event" in line)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    check = verify_export(b"\n".join(lines), signing_key.public_key)
    assert check.verification.broken is not None
    assert (check.verification.broken.sequence, check.verification.broken.kind) == (
        23,
        BreakKind.REORDERED,
    )


def test_an_export_checked_with_another_key_fails(
    filled: Engine, log: AuditLog, signing_key: SigningKey
) -> None:
    data = _export(filled, log, signing_key, "jsonl")
    check = verify_export(data, SigningKey.generate().public_key)
    assert check.verification.broken is not None
    assert check.verification.broken.kind is BreakKind.BAD_SIGNATURE
    with pytest.raises(ExportUnreadable):
        verify_export(b"hello\nworld\n", signing_key.public_key)


def test_an_export_cut_short_fails(filled: Engine, log: AuditLog, signing_key: SigningKey) -> None:
    lines = _export(filled, log, signing_key, "jsonl").split(b"\n")
    cut = [line for line in lines if b'"seq":35' not in line]  # the last event and checkpoint
    check = verify_export(b"\n".join(cut), signing_key.public_key)
    assert check.verification.broken is not None
    assert check.verification.broken.kind is BreakKind.TRUNCATED


@pytest.mark.parametrize(
    "value", ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\r=1", "a\nb"]
)
def test_csv_cells_are_safe(value: str) -> None:
    cell = safe_cell(value)
    assert cell[0] not in "=+-@\t\r" and "\n" not in cell and "\r" not in cell
    if "\n" not in value and "\r" not in value:
        assert unsafe_cell(cell) == value


def test_csv_export_one_event_one_line_no_formula(
    engine: Engine, log: AuditLog, signing_key: SigningKey
) -> None:
    # First line of defence: no event field may start like a formula at all.
    with pytest.raises(EventRejected):
        AuditEvent(
            Action.DOCUMENT_SCANNED, Actor(1, "system"), target=Target(TargetKind.DOCUMENT, "-1+1")
        )
    with pytest.raises(EventRejected):  # by the vocabulary the log checks events against
        VOCABULARY.check(
            AuditEvent(
                Action.DOCUMENT_SCANNED,
                Actor(1, "system"),
                details={"malware_signature": "=cmd|' /C calc'!A0"},
            )
        )
    fill(engine, log, 4)
    data = _export(engine, log, signing_key, "csv")
    text = data.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(text.rstrip("\n").split("\n"))  # no row spans two lines
    assert rows[0] == list(CSV_COLUMNS)
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert verify_export(data, signing_key.public_key).ok
