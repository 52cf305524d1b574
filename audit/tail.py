"""The unsigned tail, cheaply: how many events follow the last signed checkpoint, and since when.

``verify_log`` reports the same after walking the whole chain; a worker that only wants to know
whether checkpoints are being signed (an alert, issue 17) reads three rows instead.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, func, select

from .tables import checkpoint_table, epoch_table, event_table


class Tail(NamedTuple):
    events: int  # events after the last signed checkpoint (or the epoch that starts the log)
    since_us: int | None  # when the oldest of them was appended; None when there are none


def unsigned_tail(connection: Connection) -> Tail:
    signed = max(
        connection.execute(select(func.max(checkpoint_table.c.seq))).scalar() or 0,
        connection.execute(select(func.max(epoch_table.c.seq))).scalar() or 0,
    )
    last = connection.execute(select(func.max(event_table.c.seq))).scalar() or 0
    if last <= signed:
        return Tail(0, None)
    since = connection.execute(
        select(event_table.c.at_us)
        .where(event_table.c.seq > signed)
        .order_by(event_table.c.seq)
        .limit(1)
    ).scalar()
    return Tail(int(last - signed), int(since) if since is not None else None)
