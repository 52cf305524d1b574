"""The sweep: blobs that no document (or upload in progress) refers to are deleted.

They are what an interrupted upload leaves behind (a process killed after its blob became durable
but before its row committed), or a blob whose deletion failed after its key was erased. Either way
they are unreadable without a key; the sweep makes them gone. A grace period keeps the sweep away
from uploads that are still being recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal.exchange.models import Document
from storage import Vault

GRACE = timedelta(hours=1)


def sweep_orphan_blobs(
    engine: Engine,
    vault: Vault,
    *,
    now: datetime,
    grace: timedelta = GRACE,
    also_in_use: Callable[[Session], set[str]] | None = None,
) -> int:
    """Delete unreferenced blobs older than ``grace``; returns how many were deleted."""
    cutoff = now - grace
    vault.store.remove_incomplete(cutoff)
    candidates = [info.blob_id for info in vault.store.list_blobs() if info.modified < cutoff]
    if not candidates:
        return 0
    with Session(engine) as db:
        in_use = set(
            db.exec(select(Document.blob_id).where(col(Document.blob_id).in_(candidates))).all()
        )
        if also_in_use is not None:
            in_use |= also_in_use(db)
    deleted = 0
    for blob_id in candidates:
        if blob_id not in in_use:
            vault.destroy_document(blob_id)
            deleted += 1
    return deleted
