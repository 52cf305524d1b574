"""Verifying the chain: in the database (whole log or a range), and the walk shared with offline
verification of exports.

A walk recomputes every event's digest and link from the previous link, checks every signed
checkpoint it passes, and stops at the first break, which it names: sequence number and kind.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import Connection, func, select

from .encoding import GENESIS, chain_hash, checkpoint_message, epoch_message, event_digest_as
from .errors import SignatureInvalid
from .signing import PublicKey

if TYPE_CHECKING:
    from .witness import Witness

from .tables import (
    HEAD_ID,
    checkpoint_table,
    epoch_table,
    event_table,
    head_table,
    pending_table,
)


class BreakKind(enum.StrEnum):
    CHANGED = "changed"  # an event's content or hash no longer matches its link
    DELETED = "deleted"  # sequence numbers missing
    INSERTED = "inserted"  # a row that was never appended by the log
    REORDERED = "reordered"  # events in the wrong order
    BAD_SIGNATURE = "bad_signature"  # a checkpoint or seal not signed by a trusted key
    REWRITTEN = "rewritten"  # a consistent chain that a signed checkpoint contradicts
    TRUNCATED = "truncated"  # events cut off: a checkpoint or the head points past the end
    MISSING_CHECKPOINT = "missing_checkpoint"  # checkpoints deleted, or too long unsigned
    HEAD_MISMATCH = "head_mismatch"  # the head row is missing or does not match the last event
    ROLLED_BACK = "rolled_back"  # the log ends before a checkpoint its witness holds
    UNWITNESSED = "unwitnessed"  # the witness could not be read: not known to be whole


@dataclass(frozen=True)
class Break:
    sequence: int  # the first sequence number that cannot be trusted
    kind: BreakKind
    detail: str

    def describe(self) -> str:
        return f"{self.kind.value}: {self.detail}"


class CheckpointRow(NamedTuple):
    seq: int
    hash: str
    at_us: int
    every_events: int
    previous_seq: int
    key_fingerprint: str
    signature: str


class EpochRow(NamedTuple):
    """Where the log starts after a disposal: after ``seq``, whose link is ``hash``."""

    seq: int
    hash: str
    before_us: int
    at_us: int
    previous_seq: int
    key_fingerprint: str
    signature: str


@dataclass(frozen=True)
class Verification:
    """What a verification found. ``broken`` is None when everything verified."""

    first_seq: int
    last_seq: int
    events: int
    checkpoints: int
    last_checkpoint: CheckpointRow | None
    last_hash: str
    broken: Break | None = None
    # Events committed with their action but not chained yet (audit_pending): not part of what
    # was verified. A number that stays above zero means nothing is chaining them.
    pending: int = 0
    # How many processes walked it (``verify_log(processes=...)``); 1: one walk.
    parts: int = 1
    # The log starts after this sequence number: the events up to it were disposed of at the
    # end of their retention period (a signed epoch says so). 0: nothing disposed of.
    epoch_seq: int = 0
    # The latest checkpoint the witness holds, when verified against one (``witness=``).
    witnessed: CheckpointRow | None = None
    # The unsigned tail: events after the last signed checkpoint, which the chain alone protects,
    # and when the oldest of them was appended (microseconds; None when there is no tail).
    tail_events: int = 0
    tail_since_us: int | None = None

    def tail_age_seconds(self, now_us: int) -> float | None:
        """How long the oldest unsigned event has waited for a checkpoint, at ``now_us``."""
        if self.tail_since_us is None:
            return None
        return max(0.0, (now_us - self.tail_since_us) / 1_000_000)

    def tail_is_stale(self, now_us: int, every_seconds: int) -> bool:
        """A finding of its own: an unsigned tail older than twice the checkpoint interval means
        nothing is signing checkpoints (the worker is down, or someone is holding them back)."""
        age = self.tail_age_seconds(now_us)
        return age is not None and age > 2 * every_seconds

    @property
    def ok(self) -> bool:
        return self.broken is None

    def with_break(self, broken: Break) -> Verification:
        return replace(self, broken=broken)


# A row the walk reads: an event row (EVENT_FIELDS then hash), or, in an export, a hidden event
# given as (seq, digest, hash) only.
Row = Sequence[object]


def _signed_by(keys: Sequence[PublicKey], fingerprint: str, signature: str, message: bytes) -> bool:
    """True if the trusted key with this fingerprint signed ``message``."""
    key = next((k for k in keys if k.fingerprint == fingerprint), None)
    if key is None:
        return False
    try:
        key.verify(signature, message)
    except SignatureInvalid:
        return False
    return True


def check_checkpoint(checkpoint: CheckpointRow, keys: Sequence[PublicKey]) -> bool:
    message = checkpoint_message(
        seq=checkpoint.seq,
        hash_hex=checkpoint.hash,
        at_us=checkpoint.at_us,
        every_events=checkpoint.every_events,
        previous_seq=checkpoint.previous_seq,
        fingerprint=checkpoint.key_fingerprint,
    )
    return _signed_by(keys, checkpoint.key_fingerprint, checkpoint.signature, message)


def check_epoch(epoch: EpochRow, keys: Sequence[PublicKey]) -> bool:
    message = epoch_message(
        seq=epoch.seq,
        hash_hex=epoch.hash,
        before_us=epoch.before_us,
        at_us=epoch.at_us,
        previous_seq=epoch.previous_seq,
        fingerprint=epoch.key_fingerprint,
    )
    return _signed_by(keys, epoch.key_fingerprint, epoch.signature, message)


def latest_epoch(connection: Connection) -> EpochRow | None:
    row = connection.execute(
        select(*epoch_table.c).order_by(epoch_table.c.seq.desc()).limit(1)
    ).one_or_none()
    return EpochRow(*row) if row is not None else None


def epoch_anchor(
    connection: Connection, keys: Sequence[PublicKey]
) -> tuple[EpochRow | None, CheckpointRow | None, Break | None]:
    """The latest epoch and the checkpoint it starts from, or the break that makes them
    untrustworthy: an epoch not signed by a trusted key, or whose checkpoint is gone or
    disagrees with it."""
    epoch = latest_epoch(connection)
    if epoch is None:
        return None, None, None
    if not check_epoch(epoch, keys):
        detail = f"the epoch starting after {epoch.seq} is not signed by a trusted key"
        return epoch, None, Break(epoch.seq + 1, BreakKind.BAD_SIGNATURE, detail)
    row = connection.execute(
        select(*checkpoint_table.c).where(checkpoint_table.c.seq == epoch.seq)
    ).one_or_none()
    if row is None or row.hash != epoch.hash:
        detail = f"the checkpoint at {epoch.seq} that the epoch starts from is missing or altered"
        return epoch, None, Break(epoch.seq + 1, BreakKind.TRUNCATED, detail)
    return epoch, CheckpointRow(*row), None


def walk(
    rows: Iterable[Row],
    *,
    first_seq: int,
    anchor: bytes,
    checkpoints: dict[int, CheckpointRow],
    keys: Sequence[PublicKey],
    anchor_checkpoint: CheckpointRow | None = None,
) -> Verification:
    """Walk ``rows`` (ascending) from ``anchor``, the link before ``first_seq``."""
    last_cp = anchor_checkpoint
    # The sequence number the next checkpoint must name as its previous one (None: unknown).
    previous_cp_seq: int | None = 0 if first_seq == 1 else None
    result = Verification(first_seq, first_seq - 1, 0, 0, None, anchor.hex())
    if anchor_checkpoint is not None:
        previous_cp_seq = anchor_checkpoint.seq
        if not check_checkpoint(anchor_checkpoint, keys):
            return result.with_break(_bad_signature(anchor_checkpoint))
    prev, prev2 = anchor, b""
    expected = first_seq
    n_checked = 0
    iterator = iter(rows)
    row = next(iterator, None)
    sha256 = hashlib.sha256
    while row is not None:
        following = next(iterator, None)
        seq = row[0]
        if seq != expected:
            misplaced = _misplaced(row, following, expected)
            return _stopped(result, expected, prev, n_checked, last_cp, misplaced)
        digest = _digest(row, seq)
        link = sha256(prev + digest).digest()  # chain_hash, inlined: this loop is the hot path
        if link.hex() != row[-1]:
            mismatch = _classify(row, following, expected, prev, prev2)
            return _stopped(result, expected, prev, n_checked, last_cp, mismatch)
        checkpoint = checkpoints.get(seq)
        if checkpoint is not None:
            n_checked += 1
            broken: Break | None
            if not check_checkpoint(checkpoint, keys):
                broken = _bad_signature(checkpoint)
            elif previous_cp_seq is not None and checkpoint.previous_seq != previous_cp_seq:
                broken = Break(
                    previous_cp_seq + 1,
                    BreakKind.MISSING_CHECKPOINT,
                    f"the checkpoint at {seq} follows the one at {checkpoint.previous_seq}, "
                    f"which is missing",
                )
            elif checkpoint.hash != row[-1]:
                start = last_cp.seq + 1 if last_cp is not None else first_seq
                broken = Break(
                    start,
                    BreakKind.REWRITTEN,
                    f"events {start} to {seq} chain together but do not match the checkpoint "
                    f"signed at {seq}: they were rewritten",
                )
            else:
                broken = None
            if broken is not None:
                return _stopped(result, seq, prev, n_checked, last_cp, broken)
            last_cp = checkpoint
            previous_cp_seq = seq
        prev2, prev = prev, link
        expected += 1
        row = following
    return replace(
        result,
        last_seq=expected - 1,
        events=expected - first_seq,
        checkpoints=n_checked,
        last_checkpoint=last_cp,
        last_hash=prev.hex(),
    )


def _stopped(
    result: Verification,
    expected: int,
    prev: bytes,
    n_checked: int,
    last_cp: CheckpointRow | None,
    broken: Break,
) -> Verification:
    return replace(
        result,
        last_seq=expected - 1,
        events=expected - result.first_seq,
        checkpoints=n_checked,
        last_checkpoint=last_cp,
        last_hash=prev.hex(),
        broken=broken,
    )


def _digest(row: Row, seq: int) -> bytes:
    if len(row) == 3:  # a hidden event: its digest is all an export gives
        digest = row[1]
        assert isinstance(digest, bytes)
        return digest
    return event_digest_as(row, seq)


def _link(prev: bytes, row: Row, seq: int) -> str:
    return chain_hash(prev, _digest(row, seq)).hex()


def _classify(row: Row, following: Row | None, expected: int, prev: bytes, prev2: bytes) -> Break:
    """Name what happened at ``expected``, whose link does not match."""
    if (
        following is not None
        and following[0] == expected + 1
        and _link(prev, following, expected) == following[-1]
    ):
        # The next row is the true event `expected`: this row is out of place.
        if _link(bytes.fromhex(str(following[-1])), row, expected + 1) == row[-1]:
            return Break(
                expected, BreakKind.REORDERED, f"events {expected} and {expected + 1} swapped"
            )
        return Break(expected, BreakKind.INSERTED, f"a row was inserted at {expected}")
    if prev2 and _link(prev2, row, expected - 1) == row[-1]:
        # This row is the true event `expected - 1`, moved up by a row inserted before it.
        return Break(expected - 1, BreakKind.INSERTED, f"a row was inserted at {expected - 1}")
    return Break(expected, BreakKind.CHANGED, f"event {expected} does not match its hash")


def _misplaced(row: Row, following: Row | None, expected: int) -> Break:
    seq = row[0]
    assert isinstance(seq, int)
    if seq > expected:
        if following is not None and following[0] == expected:
            return Break(expected, BreakKind.REORDERED, f"event {expected} comes after {seq}")
        missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
        return Break(expected, BreakKind.DELETED, f"events {missing} are missing")
    return Break(
        expected, BreakKind.INSERTED, f"a row numbered {seq} appears where {expected} belongs"
    )


def _bad_signature(checkpoint: CheckpointRow) -> Break:
    return Break(
        checkpoint.seq,
        BreakKind.BAD_SIGNATURE,
        f"the checkpoint at {checkpoint.seq} is not signed by a trusted key "
        f"(key {checkpoint.key_fingerprint[:16]})",
    )


def load_checkpoints(
    connection: Connection, first: int, last: int | None
) -> dict[int, CheckpointRow]:
    query = select(*checkpoint_table.c).where(checkpoint_table.c.seq >= first)
    if last is not None:
        query = query.where(checkpoint_table.c.seq <= last)
    return {row[0]: CheckpointRow(*row) for row in connection.execute(query)}


def walk_stored(
    connection: Connection,
    keys: Sequence[PublicKey],
    *,
    start: int,
    stop: int | None,
    checkpoints: dict[int, CheckpointRow],
    anchor_cp: CheckpointRow | None,
    batch: int,
) -> Verification:
    """Walk the stored events after ``start`` (a signed checkpoint's sequence number, or 0) up to
    ``stop`` (or the end), from ``anchor_cp``'s hash (or the genesis link)."""
    query = select(*event_table.c).where(event_table.c.seq > start).order_by(event_table.c.seq)
    if stop is not None:
        query = query.where(event_table.c.seq <= stop)
    # A server-side cursor read in batches: a million events never sit in memory at once.
    # Set on the statement, not the connection (whose options would stay for the caller).
    rows = _stream(connection.execute(query.execution_options(yield_per=batch)), batch)
    return walk(
        rows,
        first_seq=start + 1,
        anchor=bytes.fromhex(anchor_cp.hash) if anchor_cp else GENESIS,
        checkpoints=checkpoints,
        keys=keys,
        anchor_checkpoint=anchor_cp,
    )


def parts_by_default() -> int:
    """How many processes a verification walks a long log in, unless told: one per CPU, at
    most 8 (``portal audit verify`` and the DPO console both)."""
    return min(8, os.cpu_count() or 1)


def verify_log(
    connection: Connection,
    keys: Sequence[PublicKey],
    *,
    first: int | None = None,
    last: int | None = None,
    every_events: int = 1000,
    batch: int = 20_000,
    processes: int = 1,
    min_part: int = 100_000,
    witness: Witness | None = None,
) -> Verification:
    """Verify the log in the database, whole or the range ``first``..``last``.

    Run it in one snapshot (REPEATABLE READ on PostgreSQL; a SQLite transaction is one) so that
    concurrent appends do not look like tampering. A range is widened to the signed checkpoints
    around it, so that what it reports as verified is vouched for by a signature.
    ``every_events`` is the configured checkpoint interval: an unsigned tail longer than it means
    checkpoints were deleted. ``processes`` > 1 (PostgreSQL): walk parts of at least
    ``min_part`` events, cut at signed checkpoints, in that many processes at once (see
    ``audit.parallel``); the result is the same as one walk's. ``witness``: compare the
    database with the checkpoints kept outside it (``audit.witness``); a log cut back before a
    witnessed checkpoint, or disagreeing with one, fails with ``rolled_back`` or ``rewritten``.
    """
    result = _verify_stored(
        connection, keys, first, last, every_events, batch, max(1, processes), min_part
    )
    result = replace(result, pending=pending_count(connection))
    if result.broken is None and first is None and last is None:
        signed = result.last_checkpoint.seq if result.last_checkpoint is not None else 0
        if result.last_seq > signed:
            since = connection.execute(
                select(event_table.c.at_us).where(event_table.c.seq == signed + 1)
            ).scalar()
            result = replace(result, tail_events=result.last_seq - signed, tail_since_us=since)
    if witness is not None and result.broken is None:
        from .witness import WitnessError, check_against_witness  # it builds on this module

        try:
            broken = check_against_witness(
                connection, witness, keys, disposed_through=result.epoch_seq
            )
            result = replace(result, witnessed=witness.latest())
        except WitnessError as exc:
            broken = Break(result.last_seq + 1, BreakKind.UNWITNESSED, str(exc))
        if broken is not None:
            result = result.with_break(broken)
    return result


def pending_count(connection: Connection) -> int:
    """How many committed events are waiting to be chained."""
    return int(connection.execute(select(func.count()).select_from(pending_table)).scalar_one())


def _verify_stored(
    connection: Connection,
    keys: Sequence[PublicKey],
    first: int | None,
    last: int | None,
    every_events: int,
    batch: int,
    processes: int,
    min_part: int,
) -> Verification:
    head = connection.execute(
        select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == HEAD_ID)
    ).one_or_none()
    epoch, epoch_cp, epoch_break = epoch_anchor(connection, keys)
    if epoch_break is not None:
        at = epoch_break.sequence
        return Verification(at, at - 1, 0, 0, None, "", epoch_break)
    if epoch is not None and (first is None or first <= epoch.seq + 1):
        first = None  # the log starts at the epoch: verify from it
    last_cp_before = None
    if first is not None and first > 1:
        last_cp_before = connection.execute(
            select(*checkpoint_table.c)
            .where(checkpoint_table.c.seq < first)
            .order_by(checkpoint_table.c.seq.desc())
            .limit(1)
        ).one_or_none()
    anchor_cp = CheckpointRow(*last_cp_before) if last_cp_before is not None else epoch_cp
    start = anchor_cp.seq if anchor_cp is not None else 0
    stop = None
    if last is not None:
        stop = connection.execute(
            select(func.min(checkpoint_table.c.seq)).where(checkpoint_table.c.seq >= last)
        ).scalar()
    checkpoints = load_checkpoints(connection, start + 1, stop)
    result = None
    if processes > 1 and connection.dialect.name == "postgresql":
        from .parallel import walk_in_parts  # it runs this module's walk in each process

        end = stop if stop is not None else (head.seq if head is not None else start)
        result = walk_in_parts(
            connection,
            keys,
            start=start,
            end=end,
            stop=stop,
            checkpoints=checkpoints,
            processes=processes,
            min_part=min_part,
            batch=batch,
        )
    if result is None:  # one walk: also how any break is found and named
        result = walk_stored(
            connection,
            keys,
            start=start,
            stop=stop,
            checkpoints=checkpoints,
            anchor_cp=anchor_cp,
            batch=batch,
        )
    if epoch is not None:
        result = replace(result, epoch_seq=epoch.seq)
    if result.broken is not None:
        return result
    end = result.last_seq
    if stop is not None:
        if end < stop:
            return result.with_break(
                Break(end + 1, BreakKind.TRUNCATED, f"the log ends at {end}, before {stop}")
            )
        return result
    beyond = [seq for seq in checkpoints if seq > end]
    if beyond:
        return result.with_break(
            Break(
                end + 1,
                BreakKind.TRUNCATED,
                f"the log ends at {end} but a checkpoint was signed at {min(beyond)}",
            )
        )
    if head is None:
        return result.with_break(Break(end + 1, BreakKind.HEAD_MISMATCH, "the head row is missing"))
    if head.seq > end:
        return result.with_break(
            Break(end + 1, BreakKind.TRUNCATED, f"the log ends at {end}, the head says {head.seq}")
        )
    if head.seq < end:
        return result.with_break(
            Break(
                head.seq + 1,
                BreakKind.INSERTED,
                f"events {head.seq + 1} to {end} were never appended through the head",
            )
        )
    if head.hash != result.last_hash:
        return result.with_break(
            Break(end, BreakKind.HEAD_MISMATCH, f"the head's hash does not match event {end}")
        )
    last_cp = result.last_checkpoint
    signed = last_cp.seq if last_cp is not None else 0
    limit = max(every_events, last_cp.every_events if last_cp is not None else 0)
    if end - signed > limit:
        return result.with_break(
            Break(
                signed + 1,
                BreakKind.MISSING_CHECKPOINT,
                f"{end - signed} events after the last signed checkpoint (at most {limit})",
            )
        )
    return result


def _stream(result: Iterable[Row], batch: int) -> Iterable[Row]:
    partitions = getattr(result, "partitions", None)
    if partitions is None:
        yield from result
        return
    for chunk in partitions(batch):
        yield from chunk
