"""Verifying an export file with the public key alone: no database, no portal.

Four checks, in this order so that the report names the first broken sequence number:
1. the chain: every event's digest and link recomputed from the signed checkpoint before it;
2. every checkpoint's signature, and that the file ends at a signed checkpoint;
3. the seal: the SHA-256 of every byte before it, signed (it catches edits to the header);
4. the witness: the witness line the export carries, and every receipt (or whole witness file)
   the DPO kept, must be signed by the key and agree with the export. An export that ends before
   a witnessed checkpoint fails as ``rolled_back``, one that holds a different checkpoint (or
   none) at a witnessed sequence number as ``rewritten``, naming the witnessed sequence and what
   the export holds.

The key is the one given (``public_key``, the portal's published key), or else the keys the
export's header carries: then the export only proves itself, unless a receipt signed by the log's
key (kept by the DPO, outside the portal) vouches for it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .encoding import EVENT_FIELDS, EXPORT_FORMAT, encode_details, iso, seal_message
from .errors import ExportUnreadable, SignatureInvalid, SigningKeyError
from .exports import CSV_COLUMNS, unsafe_cell
from .signing import PublicKey
from .verification import Break, BreakKind, CheckpointRow, Verification, check_checkpoint, walk
from .witness import WitnessError, parse_checkpoint_line


@dataclass(frozen=True)
class ExportCheck:
    verification: Verification
    header: dict[str, Any]
    shown: int
    hidden: int
    # The witness line the export carries (None: an export made without a witness).
    witnessed: CheckpointRow | None = None
    # How many receipt lines were compared with the export.
    receipts: int = 0
    # The keys it was checked with, and whether they came from the export itself.
    fingerprints: tuple[str, ...] = ()
    keys_from_export: bool = False

    @property
    def ok(self) -> bool:
        return self.verification.ok


def export_public_keys(header: dict[str, Any]) -> list[PublicKey]:
    """The public keys an export's header carries (none in exports made before they did)."""
    pems = header.get("public_keys", [])
    if not isinstance(pems, list) or not all(isinstance(pem, str) for pem in pems):
        raise ExportUnreadable("the export header's public keys cannot be read")
    try:
        return [PublicKey.from_pem(pem.encode("ascii")) for pem in pems]
    except (SigningKeyError, UnicodeEncodeError, ValueError):
        raise ExportUnreadable("the export header's public keys cannot be read") from None


def verify_export(
    data: bytes,
    public_key: PublicKey | None = None,
    *,
    receipts: Sequence[CheckpointRow] = (),
    receipt_name: str = "the receipt",
) -> ExportCheck:
    """Verify an export (JSON Lines or CSV). Raise ``ExportUnreadable`` if it is not one.

    ``public_key``: the log's public key; None: the keys the export carries. ``receipts``:
    witnessed checkpoints the DPO kept (``parse_receipts``), which the export must reach and agree
    with; ``receipt_name`` names them in messages.
    """
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
    keys_from_export = public_key is None
    keys = export_public_keys(header) if public_key is None else [public_key]
    if not keys:
        raise ExportUnreadable(
            "the export carries no public key (made before exports did): give the portal's"
        )
    fingerprints = tuple(k.fingerprint for k in keys)
    sealer = next((k for k in keys if k.fingerprint == header.get("public_key_sha256")), None)
    empty = Verification(first, first - 1, 0, 0, None, anchor.hex())
    if sealer is None:
        broken = Break(
            first,
            BreakKind.BAD_SIGNATURE,
            "the export was signed by another key (its fingerprint differs from this public key)",
        )
        return ExportCheck(
            empty.with_break(broken), header, 0, 0, None, 0, fingerprints, keys_from_export
        )

    state = _Rows(records[1:], first)
    anchor_cp = state.anchor_checkpoint(first)
    result = walk(
        state.rows(),
        first_seq=first,
        anchor=anchor,
        checkpoints=state.checkpoints,
        keys=keys,
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
        result = _check_seal(result, body, seal, sealer, first)
    witnessed = None
    if result.broken is None:
        try:
            witnessed = state.witnessed()
        except WitnessError:
            result = result.with_break(
                Break(first, BreakKind.CHANGED, "the export's witness line cannot be read")
            )
    if witnessed is not None:
        result = replace(result, witnessed=witnessed)
    against = [(witnessed, "the witness line the export carries")] if witnessed else []
    against += [(receipt, receipt_name) for receipt in receipts]
    for entry, whose in against:
        if result.broken is not None:
            break
        disagreement = _against_witness(entry, whose, state.checkpoints, keys, first, last)
        if disagreement is not None:
            result = result.with_break(disagreement)
    return ExportCheck(
        result,
        header,
        state.shown,
        state.hidden,
        witnessed,
        len(receipts),
        fingerprints,
        keys_from_export,
    )


def parse_receipts(data: bytes, *, where: str) -> list[CheckpointRow]:
    """The witnessed checkpoints of a receipt (one line) or a whole witness file, in order.

    Raise ``WitnessError`` if it is not one: empty, a line that is not a witnessed checkpoint,
    or lines out of order.
    """
    entries: list[CheckpointRow] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            entry = parse_checkpoint_line(line, where=f"{where}, line {number}")
            if entries and entry.seq <= entries[-1].seq:
                raise WitnessError(f"{where}: out of order at checkpoint {entry.seq}")
            entries.append(entry)
    if not entries:
        raise WitnessError(f"{where}: no witnessed checkpoint in it")
    return entries


def _against_witness(
    witnessed: CheckpointRow,
    whose: str,
    checkpoints: dict[int, CheckpointRow],
    keys: Sequence[PublicKey],
    first: int,
    last: int,
) -> Break | None:
    seq = witnessed.seq
    held = f"events {first} to {last}" if last >= first else f"no events (it starts after {last})"
    if not check_checkpoint(witnessed, keys):
        return Break(
            seq,
            BreakKind.BAD_SIGNATURE,
            f"{whose} holds a checkpoint at {seq} that the key this export is checked with did "
            f"not sign (key {witnessed.key_fingerprint[:16]}): a receipt of another log, or an "
            "export signed by another key",
        )
    if seq > last:
        return Break(
            seq,
            BreakKind.ROLLED_BACK,
            f"{whose} witnessed the log up to the checkpoint signed at {seq}; the export holds "
            f"{held}, signed up to {last}: the log was cut back, or the export is older than "
            f"{whose} (export again)",
        )
    if seq < first - 1:
        return None  # before the export's stretch, which starts at a later signed checkpoint
    held_cp = checkpoints.get(seq)
    if held_cp is None:
        return Break(
            seq,
            BreakKind.REWRITTEN,
            f"{whose} witnessed a checkpoint signed at {seq}; the export holds {held} but no "
            f"checkpoint at {seq}: the log was rewritten",
        )
    if held_cp.hash != witnessed.hash or held_cp.signature != witnessed.signature:
        return Break(
            seq,
            BreakKind.REWRITTEN,
            f"the export's checkpoint at {seq} and the one in {whose} differ: the log was "
            "rewritten (or cut back and appended to again) after it was witnessed, or the "
            "receipt is of another log",
        )
    return None


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
        if kind == "witnessed":
            return {"type": "witnessed", "line": row["extra"]}
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
        self._witness_lines: list[Any] = []
        for record in records:
            if isinstance(record, dict) and record.get("type") == "checkpoint":
                checkpoint = _checkpoint(record)
                if checkpoint is not None:
                    self.checkpoints.setdefault(checkpoint.seq, checkpoint)
            elif isinstance(record, dict) and record.get("type") == "witnessed":
                self._witness_lines.append(record.get("line"))

    def witnessed(self) -> CheckpointRow | None:
        """The witness line the export carries (at most one), or None."""
        if not self._witness_lines:
            return None
        line = self._witness_lines[0]
        if len(self._witness_lines) > 1 or not isinstance(line, str):
            raise WitnessError("the export carries more than one witness line, or a broken one")
        return parse_checkpoint_line(line, where="the export's witness line")

    def anchor_checkpoint(self, first: int) -> CheckpointRow | None:
        return self.checkpoints.get(first - 1)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        last_seq = self._expected - 1
        for record in self._records:
            if isinstance(record, dict) and record.get("type") == "witnessed":
                continue  # not a row: read by ``witnessed``
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
