"""Appending to the log, inside the caller's transaction, and signing checkpoints.

The caller passes its own ``Connection`` (an ORM caller passes ``session.connection()``): the event
is written in the caller's transaction, so the action and its event commit together or not at all.
Every append locks the one head row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
portal's engine begins every transaction with ``BEGIN IMMEDIATE``), so concurrent writers take
turns: one chain, no fork, no gap, no duplicate sequence number. The lock is held until the
caller commits; keep audited transactions short.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, insert, select, update

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
from .tables import HEAD_ID, checkpoint_table, event_table, head_table
from .verification import Break, BreakKind, CheckpointRow, load_checkpoints, walk

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
    every_seconds: int = 300

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

    ``clock`` and ``random_bytes`` are there so that tests set time and randomness instead of
    patching them.
    """

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        policy: CheckpointPolicy | None = None,
        clock: Clock = utc_now,
        random_bytes: RandomBytes = os.urandom,
        trusted_keys: tuple[PublicKey, ...] = (),
    ) -> None:
        self._key = signing_key
        self.policy = policy or CheckpointPolicy()
        self._clock = clock
        self._random = random_bytes
        # Keys the previous checkpoints may carry (before a key rotation).
        self.public_keys = (signing_key.public_key, *trusted_keys)

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key

    def append(
        self, connection: Connection, event: AuditEvent, *, now: datetime | None = None
    ) -> Appended:
        """Store ``event`` in the caller's transaction; raise rather than lose it.

        Any exception leaves the transaction to be rolled back by the caller, with its action.
        """
        at_us = to_us(now if now is not None else self._clock())
        head = _lock_head(connection)
        seq = head.seq + 1
        actor, target = event.actor, event.target
        row = (
            seq,
            at_us,
            self._random(16).hex(),  # salt: a hidden event's digest in an export reveals nothing
            actor.user_id,
            actor.role,
            actor.organisation_id,
            event.action.value,
            target.kind.value if target else None,
            target.ref if target else None,
            event.review,
            event.document,
            event.outcome.value,
            event.client,
            event.request_id,
            encode_details(event.details),
        )
        link = chain_hash(bytes.fromhex(head.hash), event_digest(row)).hex()
        values: dict[str, object] = dict(zip(EVENT_FIELDS, row, strict=True))
        values["hash"] = link
        due = (
            seq - head.checkpoint_seq >= self.policy.every_events
            or at_us - head.checkpoint_us >= self.policy.every_seconds * 1_000_000
        )
        # Prebuilt statements, and one round trip on PostgreSQL: the head lock is held from
        # here to the caller's commit, so every microsecond spent here is spent by every writer.
        if due:
            connection.execute(_INSERT_EVENT, values)
            self._sign_checkpoint(connection, seq=seq, hash_hex=link, at_us=at_us)
            connection.execute(
                _UPDATE_HEAD_CHECKPOINT, {"s": seq, "h": link, "cs": seq, "cu": at_us}
            )
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql(_PG_APPEND, values)
        else:
            connection.execute(_INSERT_EVENT, values)
            connection.execute(_UPDATE_HEAD, {"s": seq, "h": link})
        return Appended(seq=seq, hash=link, checkpointed=due)

    def checkpoint(self, connection: Connection, *, now: datetime | None = None) -> int:
        """Sign a checkpoint at the head unless one is there; return its sequence number.

        Called before every export, and by a periodic worker so that a quiet log is sealed too.
        """
        at_us = to_us(now if now is not None else self._clock())
        head = _lock_head(connection)
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
_UPDATE_HEAD = (
    update(head_table)
    .where(head_table.c.id == HEAD_ID)
    .values(seq=bindparam("s"), hash=bindparam("h"))
)
_UPDATE_HEAD_CHECKPOINT = _UPDATE_HEAD.values(
    checkpoint_seq=bindparam("cs"), checkpoint_us=bindparam("cu")
)
# Built from constant column names only; the values are bound parameters.
_PG_APPEND = (
    f"WITH appended AS (INSERT INTO audit_event ({', '.join(EVENT_FIELDS)}, hash) "  # noqa: S608
    f"VALUES ({', '.join(f'%({name})s' for name in EVENT_FIELDS)}, %(hash)s)) "
    f"UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = {HEAD_ID}"
)
_LOCK_HEAD = (
    select(
        head_table.c.seq, head_table.c.hash, head_table.c.checkpoint_seq, head_table.c.checkpoint_us
    )
    .where(head_table.c.id == HEAD_ID)
    .with_for_update()
)
# PostgreSQL: driver-level SQL, one round trip each. (An advisory lock to queue writers was
# measured: slower than the row lock alone.)
_QUEUE_PG = "SELECT pg_advisory_xact_lock(7283911)"  # held until the caller commits
_LOCK_HEAD_PG = (
    "SELECT seq, hash, checkpoint_seq, checkpoint_us FROM audit_head WHERE id = 1 FOR UPDATE"
)


def _lock_head(connection: Connection) -> _Head:
    if connection.dialect.name == "postgresql":
        # Writers queue on an advisory lock (granted one at a time, first come first served)
        # rather than all waking whenever the head row's lock is released and racing for it.
        connection.exec_driver_sql(_QUEUE_PG)
        row = connection.exec_driver_sql(_LOCK_HEAD_PG).one_or_none()
    else:
        row = connection.execute(_LOCK_HEAD).one_or_none()
    if row is None:
        # Migration 0002_audit creates the row; its absence means a schema built some other way.
        # Creating it here could fork the chain under concurrency, so refuse loudly instead.
        raise ChainBroken(
            Break(1, BreakKind.HEAD_MISMATCH, "the audit_head row is missing: run `portal init`")
        )
    return _Head(*row)


def _last_checkpoint(connection: Connection) -> CheckpointRow | None:
    row = connection.execute(
        select(*checkpoint_table.c).order_by(checkpoint_table.c.seq.desc()).limit(1)
    ).one_or_none()
    return CheckpointRow(*row) if row is not None else None
