"""Exports for DPOs: JSON Lines or CSV, filtered, verifiable offline with the public key alone.

An export covers a whole stretch of the chain between two signed checkpoints: the events that
match the filter in full, the others as their digest and link only ("hidden"), so that the chain
still verifies without revealing them. The file ends with a seal: the SHA-256 of every byte before
it, signed, so that no byte of the file can change unnoticed. docs/audit-format.md has the layout.

Given the witness's latest checkpoint (``witnessed``), the export carries that witness line (a
``witnessed`` record, right after the header) and reaches at least to it, so that the offline
check can compare the export with the witness, and with any receipt a DPO kept. Given the log's
public keys, the header carries them (PEM), for a DPO who checks against a receipt only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Literal

from sqlalchemy import Connection, func, select

from .encoding import (
    EVENT_FIELDS,
    EXPORT_FORMAT,
    GENESIS,
    event_digest,
    iso,
    seal_message,
    to_us,
)
from .queries import EventFilter
from .signing import PublicKey, SigningKey
from .tables import checkpoint_table, event_table
from .verification import CheckpointRow
from .witness import checkpoint_line

ExportFormat = Literal["jsonl", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv")

CSV_COLUMNS = ("record", "seq", "time", *EVENT_FIELDS[1:], "digest", "hash", "signature", "extra")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode


@dataclass(frozen=True)
class ExportSummary:
    first_seq: int
    last_seq: int
    shown: int
    hidden: int
    checkpoints: int
    witnessed: int | None = None  # the sequence number of the witness line it carries


def export_log(
    connection: Connection,
    signing_key: SigningKey,
    out: BinaryIO,
    *,
    format: ExportFormat,
    where: EventFilter | None = None,
    now: datetime,
    batch: int = 20_000,
    witnessed: CheckpointRow | None = None,
    public_keys: Sequence[PublicKey] = (),
) -> ExportSummary:
    """Write the export of the events matching ``where``, up to the last signed checkpoint.

    Call ``AuditLog.checkpoint`` (and commit) first, so that the export reaches the head. Run in
    one snapshot (REPEATABLE READ on PostgreSQL). ``witnessed``: the witness's latest
    checkpoint (``Witness.latest()``, after ``witness_checkpoints``): carried as is, and the
    export reaches to it (hidden events past the filter's last match), when the database holds
    it. A witnessed checkpoint past the database's end is carried all the same: the offline
    check then names the cut. ``public_keys``: the keys the header carries (the signing key's is
    always among them).
    """
    where = where or EventFilter()
    writer = _JsonLines(out) if format == "jsonl" else _Csv(out)
    signed_end = connection.execute(select(func.max(checkpoint_table.c.seq))).scalar() or 0
    # Reach the witnessed checkpoint when the database holds one there (a signed stretch end).
    reach = 0
    if witnessed is not None and witnessed.seq <= signed_end:
        held = connection.execute(
            select(checkpoint_table.c.seq).where(checkpoint_table.c.seq == witnessed.seq)
        ).scalar()
        reach = witnessed.seq if held is not None else 0
    bounds = connection.execute(
        select(func.min(event_table.c.seq), func.max(event_table.c.seq))
        .where(*where.clauses())
        .where(event_table.c.seq <= signed_end)
    ).one()
    anchor_cp: CheckpointRow | None = None
    if bounds[0] is None and reach:
        # Nothing matches: the witnessed checkpoint alone, as the anchor of an empty stretch.
        at = connection.execute(
            select(*checkpoint_table.c).where(checkpoint_table.c.seq == reach)
        ).one()
        anchor_cp = CheckpointRow(*at)
        first, last = reach + 1, reach
    elif bounds[0] is None:
        first, last = 1, 0  # nothing matches: header and seal only
    else:
        before = connection.execute(
            select(*checkpoint_table.c)
            .where(checkpoint_table.c.seq < bounds[0])
            .order_by(checkpoint_table.c.seq.desc())
            .limit(1)
        ).one_or_none()
        anchor_cp = CheckpointRow(*before) if before is not None else None
        first = anchor_cp.seq + 1 if anchor_cp is not None else 1
        last = connection.execute(
            select(func.min(checkpoint_table.c.seq)).where(checkpoint_table.c.seq >= bounds[1])
        ).scalar_one()
        last = max(last, reach)
    keys = {signing_key.fingerprint: signing_key.public_key}
    keys.update((k.fingerprint, k) for k in public_keys)
    header: dict[str, Any] = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "public_key_sha256": signing_key.fingerprint,
        "first_seq": first,
        "last_seq": last,
        "anchor": anchor_cp.hash if anchor_cp is not None else GENESIS.hex(),
        "exported_at": iso(to_us(now)),
        "filter": _describe(where),
        "public_keys": [k.to_pem().decode("ascii") for k in keys.values()],
    }
    writer.header(header)
    if witnessed is not None:
        writer.witnessed(checkpoint_line(witnessed))
    if anchor_cp is not None:
        writer.checkpoint(anchor_cp)
    checkpoints = {
        row[0]: CheckpointRow(*row)
        for row in connection.execute(
            select(*checkpoint_table.c).where(
                checkpoint_table.c.seq >= first, checkpoint_table.c.seq <= last
            )
        )
    }
    matches = where.matcher()
    shown = hidden = 0
    query = (
        select(*event_table.c)
        .where(event_table.c.seq >= first, event_table.c.seq <= last)
        .order_by(event_table.c.seq)
    )
    result = connection.execution_options(stream_results=True).execute(query)
    for chunk in result.partitions(batch):
        for row in chunk:
            if matches(row):
                writer.event(row)
                shown += 1
            else:
                writer.hidden(row[0], event_digest(row).hex(), row[-1])
                hidden += 1
            checkpoint = checkpoints.get(row[0])
            if checkpoint is not None:
                writer.checkpoint(checkpoint)
    digest = writer.body_digest()
    writer.seal(digest, signing_key.sign(seal_message(digest, signing_key.fingerprint)))
    return ExportSummary(
        first,
        last,
        shown,
        hidden,
        len(checkpoints),
        witnessed.seq if witnessed is not None else None,
    )


def _describe(where: EventFilter) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for name in ("actor", "action", "review", "document", "outcome"):
        value = getattr(where, name)
        if value is not None:
            described[name] = value if isinstance(value, int) else str(value)
    if where.target is not None:
        described["target"] = f"{where.target.kind}:{where.target.ref}"
    if where.since is not None:
        described["since"] = iso(to_us(where.since))
    if where.until is not None:
        described["until"] = iso(to_us(where.until))
    return described


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text and that never spans two lines."""
    text = "" if value is None else str(value)
    # Defence in depth: validated fields never hold line breaks, but one event is one line.
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return text


def unsafe_cell(text: str) -> str:
    """The value ``safe_cell`` was given (line breaks aside, which events never hold)."""
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t":
        return text[1:]
    return text


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()

    def _line(self, text: str) -> None:
        data = text.encode("utf-8") + b"\n"
        self._hash.update(data)
        self._out.write(data)

    def body_digest(self) -> str:
        return self._hash.hexdigest()

    def header(self, header: dict[str, Any]) -> None:
        raise NotImplementedError

    def event(self, row: Sequence[Any]) -> None:
        raise NotImplementedError

    def hidden(self, seq: int, digest: str, link: str) -> None:
        raise NotImplementedError

    def checkpoint(self, cp: CheckpointRow) -> None:
        raise NotImplementedError

    def witnessed(self, line: str) -> None:
        raise NotImplementedError

    def seal(self, digest: str, signature: str) -> None:
        raise NotImplementedError


class _JsonLines(_Writer):
    def header(self, header: dict[str, Any]) -> None:
        self._line(_dumps(header))

    def event(self, row: Sequence[Any]) -> None:
        record: dict[str, Any] = {"type": "event", "time": iso(row[1])}
        record.update(zip(EVENT_FIELDS, row, strict=False))
        record["details"] = json.loads(row[14])
        record["hash"] = row[-1]
        self._line(_dumps(record))

    def hidden(self, seq: int, digest: str, link: str) -> None:
        self._line(_dumps({"type": "hidden", "seq": seq, "digest": digest, "hash": link}))

    def checkpoint(self, cp: CheckpointRow) -> None:
        self._line(_dumps({"type": "checkpoint", **cp._asdict()}))

    def witnessed(self, line: str) -> None:
        # The witness's own line, verbatim (a string): what a receipt holds, byte for byte.
        self._line(_dumps({"type": "witnessed", "line": line}))

    def seal(self, digest: str, signature: str) -> None:
        # Not part of the sealed body: written after the digest was taken.
        self._out.write(_dumps({"type": "seal", "sha256": digest, "signature": signature}).encode())
        self._out.write(b"\n")


class _Csv(_Writer):
    def __init__(self, out: BinaryIO) -> None:
        super().__init__(out)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="", quoting=csv.QUOTE_MINIMAL)
        self._row(CSV_COLUMNS)

    def _row(self, cells: Iterable[object], *, sealed: bool = True) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow([safe_cell(cell) for cell in cells])
        if sealed:
            self._line(self._buffer.getvalue())
        else:
            self._out.write(self._buffer.getvalue().encode("utf-8") + b"\n")

    def _record(self, record: str, **cells: object) -> None:
        self._row([record, *(cells.get(name) for name in CSV_COLUMNS[1:])])

    def header(self, header: dict[str, Any]) -> None:
        self._record("header", extra=_dumps(header))

    def event(self, row: Sequence[Any]) -> None:
        fields = dict(zip(EVENT_FIELDS, row, strict=False))
        self._record("event", time=iso(row[1]), hash=row[-1], **fields)

    def hidden(self, seq: int, digest: str, link: str) -> None:
        self._record("hidden", seq=seq, digest=digest, hash=link)

    def checkpoint(self, cp: CheckpointRow) -> None:
        extra = {k: v for k, v in cp._asdict().items() if k not in ("seq", "hash", "signature")}
        self._record(
            "checkpoint", seq=cp.seq, hash=cp.hash, signature=cp.signature, extra=_dumps(extra)
        )

    def witnessed(self, line: str) -> None:
        self._record("witnessed", extra=line)

    def seal(self, digest: str, signature: str) -> None:
        cells = ["seal", *("" for _ in CSV_COLUMNS[1:])]
        cells[CSV_COLUMNS.index("digest")] = digest
        cells[CSV_COLUMNS.index("signature")] = signature
        self._row(cells, sealed=False)
