"""Witnesses: the signed checkpoints, kept where a database writer cannot rewrite them.

A signed checkpoint vouches for the chain up to it, but it lives in the same database as the
events: someone who can write there can cut the log back to an older checkpoint (deleting the
later events and checkpoints and moving the head), or restore an older backup, and the rest still
verifies. A witness holds a copy of every checkpoint outside the database and its backups, so that
verification can compare: a log that ends before the latest witnessed checkpoint, or holds a
different checkpoint at a witnessed sequence number, fails, naming the witnessed sequence.

Two witnesses behind one small interface (``Witness``):

* ``FileWitness``: an append-only file of JSON lines, one per checkpoint, outside the database
  and its backups (the embedded default: a folder of the portal's home that ``portal backup``
  never copies). Appends take an exclusive ``flock`` and are flushed to disk.
* ``S3Witness``: one object per checkpoint under a prefix of an S3 bucket, best in a versioned
  bucket with Object Lock, whose retention keeps even the bucket's owner from deleting it.

A witness only ever receives checkpoints whose signature verifies against the log's keys, and
only in order: ``witness_checkpoints`` refuses to extend a witness whose latest entry the
database contradicts (that is the attack, not something to paper over). What each attack becomes
is written down in docs/audit-format.md ("Threat model").

The witness's own lines carry the checkpoint as signed, so anyone holding the log's public key can
check a witness, or a single line of it kept as a receipt, without the portal.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, select

from .errors import AuditError, ChainBroken
from .signing import PublicKey
from .tables import checkpoint_table
from .verification import Break, BreakKind, CheckpointRow, check_checkpoint

WITNESS_FORMAT = "audit-witness/1"


class WitnessError(AuditError):
    """The witness cannot be read or written (unreachable, unreadable, or not a witness)."""


def checkpoint_line(checkpoint: CheckpointRow) -> str:
    """One checkpoint as a witness line (and as a receipt a DPO keeps): JSON, one line."""
    return json.dumps(
        {"format": WITNESS_FORMAT, **checkpoint._asdict()}, sort_keys=True, separators=(",", ":")
    )


def parse_checkpoint_line(line: str | bytes, *, where: str) -> CheckpointRow:
    try:
        data = json.loads(line)
        if not isinstance(data, dict) or data.get("format") != WITNESS_FORMAT:
            raise ValueError("not an audit witness line")
        row = CheckpointRow(**{name: data[name] for name in CheckpointRow._fields})
        if not all(isinstance(getattr(row, n), int) for n in ("seq", "at_us", "every_events")):
            raise ValueError("numbers expected")
        if not isinstance(row.previous_seq, int) or not isinstance(row.hash, str):
            raise ValueError("a number and a hash expected")
    except (ValueError, KeyError, TypeError) as exc:
        raise WitnessError(f"{where}: not a witnessed checkpoint ({exc})") from None
    return row


class Witness(Protocol):
    """Where checkpoints are kept outside the database. ``name`` says which, for messages."""

    @property
    def name(self) -> str: ...

    def latest(self) -> CheckpointRow | None:
        """The witnessed checkpoint with the highest sequence number, or None if none yet."""
        ...

    def entries(self) -> Iterator[CheckpointRow]:
        """Every witnessed checkpoint, in order."""
        ...

    def record(self, checkpoints: Sequence[CheckpointRow]) -> int:
        """Keep those of ``checkpoints`` (in order) above the latest; return how many."""
        ...


class FileWitness:
    """An append-only file of checkpoint lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return f"the witness file {self.path}"

    def entries(self) -> Iterator[CheckpointRow]:
        try:
            with self.path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield parse_checkpoint_line(line, where=f"{self.path}, line {number}")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WitnessError(f"cannot read {self.name}: {exc.strerror}") from None

    def latest(self) -> CheckpointRow | None:
        last = None
        for entry in self.entries():
            if last is not None and entry.seq <= last.seq:
                raise WitnessError(f"{self.name} is out of order at checkpoint {entry.seq}")
            last = entry
        return last

    def record(self, checkpoints: Sequence[CheckpointRow]) -> int:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WitnessError(f"cannot write {self.name}: {exc.strerror}") from None
        with os.fdopen(fd, "ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # another process may be appending
            try:
                latest = self.latest()  # under the lock: what the other process wrote counts
                above = latest.seq if latest is not None else 0
                fresh = [c for c in checkpoints if c.seq > above]
                if not fresh:
                    return 0
                handle.write(b"".join((checkpoint_line(c) + "\n").encode() for c in fresh))
                handle.flush()
                os.fsync(handle.fileno())
                return len(fresh)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class S3Witness:
    """One object per checkpoint, ``{prefix}/{seq:020d}.json``, in an S3 bucket.

    ``client`` is a boto3 S3 client. ``retain_until`` (a function of the checkpoint's time) sets
    Object Lock retention in COMPLIANCE mode on each object, for buckets created with Object
    Lock; None leaves retention to the bucket's default.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        *,
        retain_until: Any = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._retain_until = retain_until

    @property
    def name(self) -> str:
        return f"the witness s3://{self.bucket}/{self.prefix}/"

    def _key(self, seq: int) -> str:
        return f"{self.prefix}/{seq:020d}.json"

    def _keys(self) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + "/"
            )
            for page in pages:
                keys += [item["Key"] for item in page.get("Contents", [])]
        except Exception as exc:  # botocore's errors have no common base worth importing here
            raise WitnessError(f"cannot list {self.name}: {type(exc).__name__}") from None
        return sorted(k for k in keys if k.endswith(".json"))

    def _read(self, key: str) -> CheckpointRow:
        """The first version written under ``key``: in a versioned bucket a later write (by
        anyone holding the bucket's credentials) adds a version, and under Object Lock the first
        one cannot be deleted, so what was witnessed is what was written first."""
        try:
            found = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
            versions = [v for v in found.get("Versions", []) if v["Key"] == key]
            extra: dict[str, Any] = {}
            if versions and any(v.get("VersionId") not in (None, "null") for v in versions):
                # S3 lists a key's versions newest first: the last is the first written.
                extra = {"VersionId": versions[-1]["VersionId"]}
            body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
        except Exception as exc:
            raise WitnessError(f"cannot read {key} of {self.name}: {type(exc).__name__}") from None
        entry = parse_checkpoint_line(body, where=f"{self.name}{key.rsplit('/', 1)[-1]}")
        if self._key(entry.seq) != key:
            raise WitnessError(f"{key} of {self.name} holds checkpoint {entry.seq}")
        return entry

    def entries(self) -> Iterator[CheckpointRow]:
        for key in self._keys():
            yield self._read(key)

    def latest(self) -> CheckpointRow | None:
        keys = self._keys()
        return self._read(keys[-1]) if keys else None

    def record(self, checkpoints: Sequence[CheckpointRow]) -> int:
        latest = self.latest()
        above = latest.seq if latest is not None else 0
        fresh = [c for c in checkpoints if c.seq > above]
        for checkpoint in fresh:
            extra: dict[str, Any] = {}
            if self._retain_until is not None:
                until: datetime = self._retain_until(checkpoint)
                extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(checkpoint.seq),
                    Body=(checkpoint_line(checkpoint) + "\n").encode(),
                    ContentType="application/json",
                    **extra,
                )
            except Exception as exc:
                raise WitnessError(f"cannot write {self.name}: {type(exc).__name__}") from None
        return len(fresh)


def _checkpoint_at(connection: Connection, seq: int) -> CheckpointRow | None:
    row = connection.execute(
        select(*checkpoint_table.c).where(checkpoint_table.c.seq == seq)
    ).one_or_none()
    return CheckpointRow(*row) if row is not None else None


def witness_checkpoints(connection: Connection, witness: Witness, keys: Sequence[PublicKey]) -> int:
    """Give ``witness`` the database's signed checkpoints it does not hold yet; return how many.

    Called by the worker every round and after every export and verification. It never extends
    a witness the database contradicts, and never witnesses a checkpoint whose signature fails:
    it raises ``ChainBroken`` instead (what ``check_against_witness`` reports).
    """
    latest = witness.latest()
    if latest is not None:
        broken = _compare(connection, latest, witness, keys, disposed_through=0)
        if broken is not None:
            raise ChainBroken(broken)
    above = latest.seq if latest is not None else 0
    rows = connection.execute(
        select(*checkpoint_table.c)
        .where(checkpoint_table.c.seq > above)
        .order_by(checkpoint_table.c.seq)
    ).all()
    fresh = [CheckpointRow(*row) for row in rows]
    for checkpoint in fresh:
        if not check_checkpoint(checkpoint, keys):
            detail = f"the checkpoint at {checkpoint.seq} is not signed by a trusted key"
            raise ChainBroken(Break(checkpoint.seq, BreakKind.BAD_SIGNATURE, detail))
    return witness.record(fresh) if fresh else 0


def _compare(
    connection: Connection,
    witnessed: CheckpointRow,
    witness: Witness,
    keys: Sequence[PublicKey],
    *,
    disposed_through: int,
    latest: int | None = None,
    stored_checkpoints: dict[int, CheckpointRow] | None = None,
) -> Break | None:
    if not check_checkpoint(witnessed, keys):
        detail = f"{witness.name} holds a checkpoint at {witnessed.seq} not signed by a trusted key"
        return Break(witnessed.seq, BreakKind.BAD_SIGNATURE, detail)
    if witnessed.seq < disposed_through:
        return None  # disposed of at the end of its retention period (a signed epoch says so)
    stored = (
        stored_checkpoints.get(witnessed.seq)
        if stored_checkpoints is not None
        else _checkpoint_at(connection, witnessed.seq)
    )
    if stored is None:
        last = connection.execute(
            select(checkpoint_table.c.seq).order_by(checkpoint_table.c.seq.desc()).limit(1)
        ).scalar()
        last_text = f"its last checkpoint is at {last}" if last is not None else "no checkpoint"
        held = f"checkpoints up to {latest}" if latest and latest > witnessed.seq else "one"
        detail = (
            f"{witness.name} holds a checkpoint signed at {witnessed.seq} ({held}); the database "
            f"has none there ({last_text}): the log was cut back or an older copy restored"
        )
        return Break(witnessed.seq, BreakKind.ROLLED_BACK, detail)
    if stored.hash != witnessed.hash or stored.signature != witnessed.signature:
        detail = (
            f"the database's checkpoint at {witnessed.seq} differs from the one {witness.name} "
            "holds: the log was rewritten"
        )
        return Break(witnessed.seq, BreakKind.REWRITTEN, detail)
    return None


def check_against_witness(
    connection: Connection,
    witness: Witness,
    keys: Sequence[PublicKey],
    *,
    disposed_through: int = 0,
) -> Break | None:
    """Compare the database with every checkpoint the witness holds; the first disagreement.

    ``disposed_through``: the epoch's sequence number, when events were disposed of; witnessed
    checkpoints before it are no longer in the database and are not looked for.
    """
    previous = 0
    entries = list(witness.entries())
    latest = entries[-1].seq if entries else None
    # The database's checkpoints at and after the first witnessed one, in one query (not one
    # per witnessed checkpoint: a million events have a thousand).
    stored: dict[int, CheckpointRow] = {}
    if entries:
        rows = connection.execute(
            select(*checkpoint_table.c).where(
                checkpoint_table.c.seq >= entries[0].seq, checkpoint_table.c.seq <= entries[-1].seq
            )
        )
        stored = {row[0]: CheckpointRow(*row) for row in rows}
    for witnessed in entries:
        if witnessed.seq <= previous:
            return Break(
                witnessed.seq,
                BreakKind.REWRITTEN,
                f"{witness.name} is out of order at checkpoint {witnessed.seq}",
            )
        previous = witnessed.seq
        broken = _compare(
            connection,
            witnessed,
            witness,
            keys,
            disposed_through=disposed_through,
            latest=latest,
            stored_checkpoints=stored,
        )
        if broken is not None:
            return broken
    return None
