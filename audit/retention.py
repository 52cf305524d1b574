"""Disposing of events at the end of the log's retention period, so that the rest still verifies.

The log cannot simply lose its oldest events: every link covers everything before it, and a
verifier that found events 1 to *n* missing would rightly call it tampering. A disposal therefore
cuts the log at a **signed checkpoint** *S* whose events are all older than the cut-off, signs an
**epoch** (``audit-epoch/1``: *S*, the link at *S*, the cut-off, the time, the previous epoch)
with the log's key, and deletes the events up to *S* and the checkpoints before it, in one
transaction. The checkpoint at *S* stays as the anchor: verification starts from its signed link.
A database writer cannot move the start later (that takes a new signed epoch), and deleting the
epoch makes the log start at event 1 again, which is then missing (``deleted``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from .encoding import epoch_message, to_us
from .errors import ChainBroken
from .log import AuditLog, _lock_head
from .signing import PublicKey
from .tables import checkpoint_table, epoch_table, event_table
from .verification import latest_epoch, verify_log


@dataclass(frozen=True)
class Disposal:
    """What a disposal did: ``events`` disposed of, the log now starting after ``through_seq``
    (0 and 0: nothing was old enough, or no signed checkpoint lies before the cut-off)."""

    events: int
    through_seq: int
    before: datetime


def disposable_through(connection: Connection, before: datetime) -> int:
    """The last signed checkpoint after which the log could start: every event up to it is
    older than ``before``. 0 when there is none (nothing to dispose of)."""
    before_us = to_us(before)
    epoch = latest_epoch(connection)
    start = epoch.seq if epoch is not None else 0
    first_young = connection.execute(
        select(func.min(event_table.c.seq)).where(
            event_table.c.seq > start, event_table.c.at_us >= before_us
        )
    ).scalar()
    query = select(func.max(checkpoint_table.c.seq)).where(checkpoint_table.c.seq > start)
    if first_young is not None:
        query = query.where(checkpoint_table.c.seq < first_young)
    return int(connection.execute(query).scalar() or 0)


def dispose(
    log: AuditLog,
    connection: Connection,
    *,
    before: datetime,
    now: datetime | None = None,
    keys: Sequence[PublicKey] = (),
) -> Disposal:
    """Dispose of the events older than ``before`` (up to the last signed checkpoint before the
    first younger event), in the caller's transaction. Refuses (``ChainBroken``) if the stretch
    to be disposed of does not verify: a disposal must never hide tampering."""
    head = _lock_head(connection)  # no append runs while the log is cut
    through = disposable_through(connection, before)
    if through == 0 or through > head.seq:
        return Disposal(0, 0, before)
    trusted = tuple(keys) or log.public_keys
    checked = verify_log(connection, trusted, last=through, every_events=log.policy.every_events)
    if checked.broken is not None:
        raise ChainBroken(checked.broken)
    anchor = connection.execute(
        select(checkpoint_table.c.hash).where(checkpoint_table.c.seq == through)
    ).scalar_one()
    previous = latest_epoch(connection)
    previous_seq = previous.seq if previous is not None else 0
    at_us = to_us(now if now is not None else log.now())
    values = {
        "seq": through,
        "hash": anchor,
        "before_us": to_us(before),
        "at_us": at_us,
        "previous_seq": previous_seq,
        "key_fingerprint": log.signing_fingerprint,
    }
    message = epoch_message(
        seq=through,
        hash_hex=anchor,
        before_us=to_us(before),
        at_us=at_us,
        previous_seq=previous_seq,
        fingerprint=log.signing_fingerprint,
    )
    connection.execute(insert(epoch_table).values(**values, signature=log.sign(message)))
    gone = connection.execute(delete(event_table).where(event_table.c.seq <= through)).rowcount
    connection.execute(delete(checkpoint_table).where(checkpoint_table.c.seq < through))
    return Disposal(int(gone or 0), through, before)
