"""Appending to the log, inside the caller's transaction, and signing checkpoints.

Three ways in, all inside the caller's transaction (an ORM caller passes ``session.connection()``),
so the action and its event commit together or not at all:

* ``append`` chains the event at once. It locks the one head row (``SELECT ... FOR UPDATE`` on
  PostgreSQL; on SQLite the portal's engine begins every transaction with ``BEGIN IMMEDIATE``)
  until the caller commits, so appends are serialised through the commit's disk flush.
* ``enqueue`` stores the event unchained (``audit_pending``), taking no lock, and
  ``chain_committed`` (run right after the commit by the writer; ``chain_pending`` by the worker
  as a backstop) chains every committed pending event in one short transaction. Writers commit
  in parallel and one chaining transaction serves many of them.
* ``record`` (the portal's way) does the first when no other append is in flight and the second
  otherwise, deciding in one statement without waiting. Why pending events keep the log as
  tamper-evident as ``append`` does is in docs/audit-format.md.

Either way there is one chain: no fork, no gap, no duplicate sequence number. What differs on
PostgreSQL (its locks and one-round-trip statements) is in ``audit.postgresql``; the statements
here are portable, and are what SQLite runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from . import postgresql as pg
from .encoding import (
    EVENT_FIELDS,
    GENESIS,
    chain_hash,
    checkpoint_message,
    encode_details,
    event_digest,
    to_us,
)
from .errors import ChainBroken
from .events import AuditEvent
from .signing import PublicKey, SigningKey
from .tables import HEAD_ID, checkpoint_table, event_table, head_table, pending_table
from .verification import Break, BreakKind, CheckpointRow, load_checkpoints, walk
from .vocabulary import Vocabulary

Clock = Callable[[], datetime]
RandomBytes = Callable[[int], bytes]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint at least every ``every_events`` events or ``every_seconds`` seconds.

    Events after the last checkpoint are protected by the hash chain only: someone with write
    access to the database could rewrite or cut them. These two numbers bound that window.
    """

    every_events: int = 1000
    every_seconds: int = 60

    def __post_init__(self) -> None:
        if self.every_events < 1 or self.every_seconds < 1:
            raise ValueError("checkpoint policy needs every_events >= 1 and every_seconds >= 1")


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str
    checkpointed: bool


class AuditLog:
    """The writer's handle on the log: one per process, holding the signing key.

    ``vocabulary``: the application's words; every event is checked against it before it is
    stored. ``clock`` and ``random_bytes`` are there so that tests set time and randomness
    instead of patching them.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        signing_key: SigningKey,
        *,
        policy: CheckpointPolicy | None = None,
        clock: Clock = utc_now,
        random_bytes: RandomBytes = os.urandom,
        trusted_keys: tuple[PublicKey, ...] = (),
    ) -> None:
        self.vocabulary = vocabulary
        self._key = signing_key
        self.policy = policy or CheckpointPolicy()
        self._clock = clock
        self._random = random_bytes
        # Keys the previous checkpoints may carry (before a key rotation).
        self.public_keys = (signing_key.public_key, *trusted_keys)

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key

    @property
    def signing_fingerprint(self) -> str:
        return self._key.fingerprint

    def sign(self, message: bytes) -> str:
        """Sign one of the log's own records (a checkpoint, an epoch) with its key."""
        return self._key.sign(message)

    def now(self) -> datetime:
        return self._clock()

    def append(
        self, connection: Connection, event: AuditEvent, *, now: datetime | None = None
    ) -> Appended:
        """Store ``event`` in the caller's transaction; raise rather than lose it.

        Any exception leaves the transaction to be rolled back by the caller, with its action.
        """
        at_us = to_us(now if now is not None else self._clock())
        fields = self._fields(event, at_us)  # checked before the lock is taken
        return self._append_at(connection, _lock_head(connection), fields, at_us)

    def record(
        self, connection: Connection, event: AuditEvent, *, now: datetime | None = None
    ) -> bool:
        """Store ``event`` in the caller's transaction, chained at once if no other append is
        in flight, else pending; return True if it is pending (then call ``chain_committed``
        once the transaction has committed).

        One writer at a time pays nothing for this (the event is chained as ``append`` does);
        writers that would otherwise queue behind each other's commits store their events
        pending instead and one chaining transaction takes them all.
        """
        at_us = to_us(now if now is not None else self._clock())
        fields = self._fields(event, at_us)
        if connection.dialect.name != "postgresql":
            self._append_at(connection, _lock_head(connection), fields, at_us)
            return False  # SQLite admits one writer at a time: nothing to gain
        # One round trip: take the append lock and the head row if both are free, else store
        # the event pending (the statement does one or the other, never waiting).
        row = pg.head_or_pending(connection, fields)
        if row is None:
            return True
        self._append_at(connection, _Head(*row), fields, at_us)
        return False

    def _append_at(
        self, connection: Connection, head: _Head, fields: dict[str, object], at_us: int
    ) -> Appended:
        """Chain the event with ``fields`` (``_fields``; ``at_us`` among them) after ``head``."""
        seq = head.seq + 1
        values: dict[str, object] = {"seq": seq, **fields}
        link = chain_hash(
            bytes.fromhex(head.hash), event_digest([values[name] for name in EVENT_FIELDS])
        ).hex()
        values["hash"] = link
        due = self._checkpoint_due(head, seq, at_us)
        # Prebuilt statements, and one round trip on PostgreSQL: the head lock is held from
        # here to the caller's commit, so every microsecond spent here is spent by every writer.
        if due:
            connection.execute(_INSERT_EVENT, values)
            self._sign_checkpoint(connection, seq=seq, hash_hex=link, at_us=at_us)
            connection.execute(
                _UPDATE_HEAD_CHECKPOINT, {"s": seq, "h": link, "cs": seq, "cu": at_us}
            )
        elif connection.dialect.name == "postgresql":
            pg.append(connection, values)
        else:
            connection.execute(_INSERT_EVENT, values)
            connection.execute(_UPDATE_HEAD, {"s": seq, "h": link})
        return Appended(seq=seq, hash=link, checkpointed=due)

    def enqueue(
        self, connection: Connection, event: AuditEvent, *, now: datetime | None = None
    ) -> None:
        """Store ``event`` in the caller's transaction, to be chained once it has committed.

        Takes no lock: concurrent writers do not wait for each other. Call ``chain_committed``
        after the commit (the portal does it for every session that recorded an event); the
        worker's ``chain_committed`` picks up what a crash between the two left behind.
        """
        at_us = to_us(now if now is not None else self._clock())
        connection.execute(_INSERT_PENDING, self._fields(event, at_us))

    def chain_pending(
        self, connection: Connection, *, now: datetime | None = None, batch: int = 1000
    ) -> int:
        """Chain up to ``batch`` committed pending events, oldest first; return how many.

        Waits for the chaining lock (PostgreSQL: an advisory lock of its own; SQLite: the write
        lock), so no event is chained twice. A checkpoint is signed when one falls due, exactly
        as ``append`` does.
        """
        if connection.dialect.name == "postgresql":
            pg.lock_chaining(connection)
        return self._chain_locked(connection, now=now, batch=batch)[0]

    def chain_committed(self, bind: Engine | Connection, *, now: datetime | None = None) -> int:
        """Chain the committed pending events in short transactions of their own; return how
        many this call chained. ``bind``: an engine, or a connection with no transaction open.

        Every writer calls this right after its commit. On PostgreSQL a writer that finds the
        chaining lock taken leaves at once (one round trip, outside any transaction), because
        the holder looks again after letting the lock go: the writer committed before it tried
        the lock, so that second look sees its events. The chaining commits without waiting for
        its disk flush (``synchronous_commit`` off for that transaction alone): the events are
        durable already, having committed with their actions; if the server crashed before the
        flush, they would be pending again and chained anew, and the next flushed commit of any
        transaction flushes the chaining with it.
        """
        if isinstance(bind, Engine):
            with bind.connect() as connection:
                return self._chain_committed(connection, now)
        return self._chain_committed(bind, now)

    def _chain_committed(self, connection: Connection, now: datetime | None) -> int:
        total = 0
        if connection.dialect.name != "postgresql":
            more = True
            while more:  # SQLite: BEGIN IMMEDIATE waits for the write lock
                with connection.begin():
                    chained, more = self._chain_locked(connection, now=now, batch=1000)
                total += chained
            return total
        while True:
            # The chaining lock at session level, so that trying it costs no transaction; and
            # only if something is pending (a holder may have chained this writer's events).
            if not pg.try_chaining_lock(connection):
                # Nothing pending, or the holder will look again after letting the lock go.
                return total
            try:
                more = True
                while more:
                    with connection.begin():
                        chained, more = self._chain_locked(
                            connection, now=now, batch=1000, flush=False
                        )
                    total += chained
            finally:
                pg.release_chain_lock(connection)
            # Then look again (the loop's next try): events whose writers found the lock taken
            # while this connection held it are committed, and are ours to chain.

    def _chain_locked(
        self, connection: Connection, *, now: datetime | None, batch: int, flush: bool = True
    ) -> tuple[int, bool]:
        """Chain up to ``batch`` pending events; the caller holds the chaining lock.

        Returns how many were chained and whether more may be waiting. Locks taken, always in
        this order (so that no two transactions wait for each other): the chaining lock, the
        append lock (``append`` and ``checkpoint`` only), the head row. ``flush=False``: the
        transaction commits without waiting for the disk (PostgreSQL; see ``chain_committed``).
        """
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            # Round trips are what a chaining transaction costs: driver-level SQL, two here
            # (the head is locked in the same statement that reads the pending events).
            rows = pg.pending_and_head(connection, batch, flush=flush)
            if not rows:
                return 0, False
            if rows[0][-1] is None:
                raise _head_missing()
            head = _Head(*rows[0][-4:])
            waiting: Sequence[Sequence[Any]] = [row[:-4] for row in rows]
        else:
            waiting = connection.execute(_SELECT_PENDING, {"n": batch}).all()
            if not waiting:
                return 0, False
            head = _read_head(connection)
        # Never chain past the point where the next checkpoint is due.
        room = max(1, self.policy.every_events - (head.seq - head.checkpoint_seq))
        more = len(waiting) == batch or len(waiting) > room
        waiting = waiting[:room]
        seq, link = head.seq, bytes.fromhex(head.hash)
        ids: list[int] = []
        seqs: list[int] = []
        links: list[str] = []
        for pending in waiting:
            seq += 1
            link = chain_hash(link, event_digest((seq, *pending[1:])))
            ids.append(pending[0])
            seqs.append(seq)
            links.append(link.hex())
        if postgres:
            if not pg.move_pending(connection, ids, seqs, links, link.hex()):
                # A pending row vanished under the chaining lock.
                raise ChainBroken(
                    Break(head.seq + 1, BreakKind.HEAD_MISMATCH, "pending events changed")
                )
        else:
            values = [
                {
                    **dict(zip(EVENT_FIELDS, (n, *pending[1:]), strict=True)),
                    "hash": h,
                }
                for n, pending, h in zip(seqs, waiting, links, strict=True)
            ]
            connection.execute(_INSERT_EVENT, values)
            connection.execute(delete(pending_table).where(pending_table.c.id.in_(ids)))
            connection.execute(_UPDATE_HEAD, {"s": seq, "h": link.hex()})
        at_us = to_us(now if now is not None else self._clock())
        if self._checkpoint_due(head, seq, at_us):
            self._sign_checkpoint(connection, seq=seq, hash_hex=link.hex(), at_us=at_us)
            connection.execute(
                _UPDATE_HEAD_CHECKPOINT, {"s": seq, "h": link.hex(), "cs": seq, "cu": at_us}
            )
        return len(waiting), more

    def _checkpoint_due(self, head: _Head, seq: int, at_us: int) -> bool:
        """Whether the head, moved to ``seq`` at ``at_us``, needs a signed checkpoint."""
        return (
            seq - head.checkpoint_seq >= self.policy.every_events
            or at_us - head.checkpoint_us >= self.policy.every_seconds * 1_000_000
        )

    def _fields(self, event: AuditEvent, at_us: int) -> dict[str, object]:
        """An event's stored fields after ``seq`` (EVENT_FIELDS[1:]), by name; raise
        ``EventRejected`` or ``ForbiddenDetail`` if the vocabulary does not have its words."""
        event = self.vocabulary.check(event)
        actor, target = event.actor, event.target
        values = (
            at_us,
            self._random(16).hex(),  # salt: a hidden event's digest in an export reveals nothing
            actor.user_id,
            actor.role,
            actor.organisation_id,
            str(event.action),
            str(target.kind) if target else None,
            target.ref if target else None,
            event.review,
            event.document,
            event.outcome.value,
            event.client,
            event.request_id,
            encode_details(event.details),
        )
        return dict(zip(EVENT_FIELDS[1:], values, strict=True))

    def checkpoint(self, connection: Connection, *, now: datetime | None = None) -> int:
        """Chain what is pending, then sign a checkpoint at the head unless one is there; return
        its sequence number.

        Called before every export, and by a periodic worker so that a quiet log is sealed too.
        """
        if connection.dialect.name == "postgresql":
            # The lock order: chaining, append, head (the head row: in _chain_locked/_read_head).
            pg.lock_chaining(connection)
            pg.queue_for_head(connection)
        while self._chain_locked(connection, now=now, batch=1000)[1]:
            pass
        at_us = to_us(now if now is not None else self._clock())
        head = _read_head(connection)
        if head.seq == 0 or head.checkpoint_seq == head.seq:
            return head.seq
        self._sign_checkpoint(connection, seq=head.seq, hash_hex=head.hash, at_us=at_us)
        connection.execute(
            update(head_table)
            .where(head_table.c.id == HEAD_ID)
            .values(checkpoint_seq=head.seq, checkpoint_us=at_us)
        )
        return head.seq

    def _sign_checkpoint(
        self, connection: Connection, *, seq: int, hash_hex: str, at_us: int
    ) -> None:
        # A checkpoint vouches for everything before it, so never sign what does not verify:
        # otherwise an attacker who rewrote the chain (and deleted the checkpoints that
        # contradict it) would have the portal itself launder the forgery with a good signature.
        previous = _last_checkpoint(connection)
        limit = max(self.policy.every_events, previous.every_events if previous else 0)
        start = previous.seq if previous else 0
        if seq - start > limit:
            raise ChainBroken(
                Break(
                    start + 1,
                    BreakKind.MISSING_CHECKPOINT,
                    f"{seq - start} events since the last signed checkpoint (at most {limit})",
                )
            )
        anchor = GENESIS
        checkpoints: dict[int, CheckpointRow] = {}
        if previous is not None:
            anchor = bytes.fromhex(previous.hash)
            checkpoints = load_checkpoints(connection, previous.seq, previous.seq)
        rows = connection.execute(
            select(*event_table.c).where(event_table.c.seq > start).order_by(event_table.c.seq)
        )
        result = walk(
            rows,
            first_seq=start + 1,
            anchor=anchor,
            checkpoints=checkpoints,
            keys=self.public_keys,
            anchor_checkpoint=previous,
        )
        if result.broken is None and (result.last_seq != seq or result.last_hash != hash_hex):
            result = result.with_break(
                Break(seq, BreakKind.CHANGED, "the head does not match the last event")
            )
        if result.broken is not None:
            raise ChainBroken(result.broken)
        message = checkpoint_message(
            seq=seq,
            hash_hex=hash_hex,
            at_us=at_us,
            every_events=self.policy.every_events,
            previous_seq=start,
            fingerprint=self._key.fingerprint,
        )
        connection.execute(
            insert(checkpoint_table).values(
                seq=seq,
                hash=hash_hex,
                at_us=at_us,
                every_events=self.policy.every_events,
                previous_seq=start,
                key_fingerprint=self._key.fingerprint,
                signature=self._key.sign(message),
            )
        )


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_us: int


_INSERT_EVENT = insert(event_table)
_INSERT_PENDING = insert(pending_table)
_UPDATE_HEAD = (
    update(head_table)
    .where(head_table.c.id == HEAD_ID)
    .values(seq=bindparam("s"), hash=bindparam("h"))
)
_UPDATE_HEAD_CHECKPOINT = _UPDATE_HEAD.values(
    checkpoint_seq=bindparam("cs"), checkpoint_us=bindparam("cu")
)
_LOCK_HEAD = (
    select(
        head_table.c.seq, head_table.c.hash, head_table.c.checkpoint_seq, head_table.c.checkpoint_us
    )
    .where(head_table.c.id == HEAD_ID)
    .with_for_update()
)
_SELECT_PENDING = select(*pending_table.c).order_by(pending_table.c.id).limit(bindparam("n"))


def _lock_head(connection: Connection) -> _Head:
    if connection.dialect.name == "postgresql":
        pg.queue_for_head(connection)
    return _read_head(connection)


def _read_head(connection: Connection) -> _Head:
    """The head row, locked (``FOR UPDATE`` on PostgreSQL: this waits for an ``append`` that holds
    it, then reads the head as that append left it)."""
    if connection.dialect.name == "postgresql":
        row = pg.lock_head(connection)
    else:
        row = connection.execute(_LOCK_HEAD).one_or_none()
    if row is None:
        raise _head_missing()
    return _Head(*row)


def _head_missing() -> ChainBroken:
    # Migration 0002_audit creates the row; its absence means a schema built some other way.
    # Creating it here could fork the chain under concurrency, so refuse loudly instead.
    return ChainBroken(
        Break(1, BreakKind.HEAD_MISMATCH, "the audit_head row is missing: run `portal init`")
    )


def _last_checkpoint(connection: Connection) -> CheckpointRow | None:
    row = connection.execute(
        select(*checkpoint_table.c).order_by(checkpoint_table.c.seq.desc()).limit(1)
    ).one_or_none()
    return CheckpointRow(*row) if row is not None else None
