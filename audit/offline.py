"""Verifying an export file with the public key alone: no database, no portal.

Three checks, in this order so that the report names the first broken sequence number:
1. the chain: every event's digest and link recomputed from the signed checkpoint before it;
2. every checkpoint's signature, and that the file ends at a signed checkpoint;
3. the seal: the SHA-256 of every byte before it, signed (it catches edits to the header).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .encoding import EVENT_FIELDS, EXPORT_FORMAT, encode_details, iso, seal_message
from .errors import ExportUnreadable, SignatureInvalid
from .exports import CSV_COLUMNS, unsafe_cell
from .signing import PublicKey
from .verification import Break, BreakKind, CheckpointRow, Verification, walk


@dataclass(frozen=True)
class ExportCheck:
    verification: Verification
    header: dict[str, Any]
    shown: int
    hidden: int

    @property
    def ok(self) -> bool:
        return self.verification.ok


class _Malformed(Exception):
    pass


def verify_export(data: bytes, public_key: PublicKey) -> ExportCheck:
    """Verify an export (JSON Lines or CSV). Raise ``ExportUnreadable`` if it is not one."""
    body, seal_line = _split_seal(data)
    lines = body.decode("utf-8", errors="replace").split("\n")[:-1]
    if data.startswith(b"{"):
        records = [_json_record(line) for line in lines]
        seal = _json_record(seal_line.decode("utf-8", errors="replace"))
    elif data.startswith(b"record,"):
        records = [_csv_record(line) for line in lines[1:]]
        seal = _csv_record(seal_line.decode("utf-8", errors="replace"))
    else:
        raise ExportUnreadable("not an audit export: neither JSON Lines nor CSV of this format")
    header = records[0] if records else None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ExportUnreadable("not an audit export: the first record is not its header")
    if header.get("format") != EXPORT_FORMAT:
        raise ExportUnreadable(f"export format {header.get('format')!r} is not {EXPORT_FORMAT}")
    try:
        first, last = int(header["first_seq"]), int(header["last_seq"])
        anchor = bytes.fromhex(str(header["anchor"]))
    except (KeyError, ValueError, TypeError):
        raise ExportUnreadable("the export header is incomplete") from None
    empty = Verification(first, first - 1, 0, 0, None, anchor.hex())
    if header.get("public_key_sha256") != public_key.fingerprint:
        broken = Break(
            first,
            BreakKind.BAD_SIGNATURE,
            "the export was signed by another key (its fingerprint differs from this public key)",
        )
        return ExportCheck(empty.with_break(broken), header, 0, 0)

    state = _Rows(records[1:], first)
    anchor_cp = state.anchor_checkpoint(first)
    result = walk(
        state.rows(),
        first_seq=first,
        anchor=anchor,
        checkpoints=state.checkpoints,
        keys=[public_key],
        anchor_checkpoint=anchor_cp,
    )
    if state.malformed is not None and (
        result.broken is None or result.last_seq >= state.malformed
    ):
        result = result.with_break(
            Break(state.malformed, BreakKind.CHANGED, "a record of the export cannot be read")
        )
    if result.broken is None and result.last_seq < last:
        result = result.with_break(
            Break(result.last_seq + 1, BreakKind.TRUNCATED, f"the export stops before {last}")
        )
    if result.broken is None and result.last_seq > last:
        result = result.with_break(
            Break(last + 1, BreakKind.INSERTED, f"the export goes on past {last}")
        )
    if result.broken is None and last >= first and last not in state.checkpoints:
        result = result.with_break(
            Break(last, BreakKind.TRUNCATED, f"no signed checkpoint at the export's end ({last})")
        )
    if result.broken is None:
        result = _check_seal(result, body, seal, public_key, first)
    return ExportCheck(result, header, state.shown, state.hidden)


def _check_seal(
    result: Verification, body: bytes, seal: Any, public_key: PublicKey, first: int
) -> Verification:
    digest = hashlib.sha256(body).hexdigest()
    try:
        if not isinstance(seal, dict) or seal.get("type") != "seal" or seal["sha256"] != digest:
            raise SignatureInvalid()
        public_key.verify(str(seal["signature"]), seal_message(digest, public_key.fingerprint))
    except (SignatureInvalid, KeyError):
        return result.with_break(
            Break(
                first,
                BreakKind.BAD_SIGNATURE,
                "the export's seal does not match its content: the file was edited",
            )
        )
    return result


def _split_seal(data: bytes) -> tuple[bytes, bytes]:
    stripped = data[:-1] if data.endswith(b"\n") else data
    cut = stripped.rfind(b"\n")
    if cut < 0:
        raise ExportUnreadable("not an audit export: too short")
    return stripped[: cut + 1], stripped[cut + 1 :]


def _json_record(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _csv_record(line: str) -> Any:
    try:
        cells = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    if len(cells) != len(CSV_COLUMNS):
        return None
    row = dict(zip(CSV_COLUMNS, (unsafe_cell(cell) for cell in cells), strict=True))
    kind = row["record"]
    try:
        if kind == "header":
            return json.loads(row["extra"])
        if kind == "seal":
            return {"type": "seal", "sha256": row["digest"], "signature": row["signature"]}
        if kind == "hidden":
            return {
                "type": "hidden",
                "seq": int(row["seq"]),
                "digest": row["digest"],
                "hash": row["hash"],
            }
        if kind == "checkpoint":
            extra = json.loads(row["extra"])
            return {
                "type": "checkpoint",
                "seq": int(row["seq"]),
                "hash": row["hash"],
                "signature": row["signature"],
                **extra,
            }
        if kind == "event":
            record: dict[str, Any] = {"type": "event", "time": row["time"], "hash": row["hash"]}
            for name in EVENT_FIELDS:
                value = row[name]
                if name in ("seq", "at_us", "user_id", "organisation_id"):
                    record[name] = int(value) if value != "" else None
                else:
                    record[name] = value if value != "" else None
            record["details"] = json.loads(row["details"])
            return record
    except (ValueError, TypeError):
        return None
    return None


class _Rows:
    """Turns parsed records into the rows and checkpoints the walk reads."""

    def __init__(self, records: list[Any], first: int) -> None:
        self._records = records
        self.checkpoints: dict[int, CheckpointRow] = {}
        self.malformed: int | None = None  # the sequence number where an unreadable record sits
        self.shown = self.hidden = 0
        self._expected = first
        for record in records:
            if isinstance(record, dict) and record.get("type") == "checkpoint":
                checkpoint = _checkpoint(record)
                if checkpoint is not None:
                    self.checkpoints.setdefault(checkpoint.seq, checkpoint)

    def anchor_checkpoint(self, first: int) -> CheckpointRow | None:
        return self.checkpoints.get(first - 1)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        last_seq = self._expected - 1
        for record in self._records:
            row = _row(record)
            if row is None:
                if not (isinstance(record, dict) and record.get("type") == "checkpoint"):
                    # An unreadable line stops the walk here: everything after is unvouched.
                    self.malformed = last_seq + 1
                    return
                if _checkpoint(record) is None:
                    self.malformed = last_seq + 1
                    return
                continue
            last_seq = row[0]
            if len(row) == 3:
                self.hidden += 1
            else:
                self.shown += 1
            yield row


def _checkpoint(record: dict[str, Any]) -> CheckpointRow | None:
    try:
        return CheckpointRow(
            int(record["seq"]),
            str(record["hash"]),
            int(record["at_us"]),
            int(record["every_events"]),
            int(record["previous_seq"]),
            str(record["key_fingerprint"]),
            str(record["signature"]),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _row(record: Any) -> tuple[Any, ...] | None:
    if not isinstance(record, dict):
        return None
    try:
        if record.get("type") == "hidden":
            return (int(record["seq"]), bytes.fromhex(record["digest"]), str(record["hash"]))
        if record.get("type") == "event":
            values: list[Any] = [record[name] for name in EVENT_FIELDS[:-1]]
            details = record["details"]
            if not isinstance(details, dict):
                return None
            text = encode_details(details)
            if record.get("time") != iso(int(record["at_us"])):
                # The readable time must say what the hashed one says: an edit to it alone must
                # fail too, so the row is spoilt and the walk reports the event as changed.
                text += " "
            return (*values, text, str(record["hash"]))
    except (KeyError, ValueError, TypeError, OverflowError):
        return None
    return None
