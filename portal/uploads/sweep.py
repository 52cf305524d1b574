"""What ``portal worker`` does for resumable uploads.

``expire_uploads`` removes sessions idle for longer than ``UPLOAD_TTL`` (and their sealed parts);
``part_blob_ids`` tells the orphan-blob sweep which blobs are parts of uploads still in progress,
so that it leaves them alone (no document row points at them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from portal.uploads.models import UploadPart
from portal.uploads.sessions import discard_expired
from storage import Vault


def expire_uploads(engine: Engine, vault: Vault, *, now: datetime) -> int:
    """Delete expired upload sessions and their part blobs; returns how many sessions."""
    return discard_expired(engine, vault, now=now)


def part_blob_ids(db: Session) -> set[str]:
    """Blob ids still in use by parts of uploads in progress."""
    return set(db.exec(select(UploadPart.blob_id)).all())
