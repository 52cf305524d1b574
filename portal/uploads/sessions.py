"""Resumable uploads as plain Python: create a session, add parts, turn them into a document.

An upload session belongs to the person who created it: to anybody else it does not exist (404).
Each PATCH's bytes become one *part*: a sealed blob under a fresh data key whose associated data
names the upload and the part's position, so a part moved to another upload or position does not
open. When the last byte arrives the parts are read back in order, decrypted, and streamed through
the exchange's one upload pipeline (``store_upload`` → ``record_upload``): the same size limit, type
check and checksum as every other way in. Only then are the parts deleted.

Concurrency: a part is committed with a compare-and-set on the session's offset, so two PATCHes
racing for the same offset cannot both land; the loser's blob is deleted and it gets 409. The
completion holds a lease on the session (``lease_owner``, ``lease_until``), renewed while it runs
(portal.leases): if the process dies meanwhile, the lease runs out and the client's next request
or the worker (portal.uploads.recovery) takes the completion over; the document is recorded only
with a compare-and-set on the lease, so exactly one attempt makes it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal.auditing import Auditor
from portal.errors import Refusal
from portal.exchange import documents, ingest
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound, Refused, TooLarge, TypeRefused
from portal.exchange.models import Case, Document, Review
from portal.leases import Clock, moving_clock, renewed
from portal.models import as_utc
from portal.uploads.errors import OffsetConflict, TooManyUploads, UploadExpired
from portal.uploads.models import UploadPart, UploadSession, UploadState
from portal.uploads.protocol import UploadMetadata
from storage import DocumentKey, StorageError, StoredBlob, Vault

UPLOAD_TTL = timedelta(hours=24)  # after the last PATCH (or the creation)
MAX_OPEN_UPLOADS = 50  # unfinished uploads per person: each may hold up to the size limit
MAX_PARTS = 10_000  # a client sending one byte per PATCH would otherwise make a blob per byte
# How long the completion of an upload is left to the attempt that claimed it before another may
# take it over; renewed every third of it while the completion runs.
COMPLETION_LEASE = timedelta(seconds=45)
FILENAME_PURPOSE = "upload file name"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{32}")


def new_upload_id() -> str:
    """192 random bits, URL-safe: the upload's address cannot be guessed or enumerated."""
    return secrets.token_urlsafe(24)


def new_lease_owner() -> str:
    """Names one attempt at completing an upload (not a secret: it only tells attempts apart)."""
    return secrets.token_hex(16)


def session_key_id(upload_id: str) -> str:
    return f"upload:{upload_id}"


def part_key_id(upload_id: str, index: int) -> str:
    # Bound into the part's data key and every segment of its blob (associated data).
    return f"upload:{upload_id}:part:{index}"


def _not_found() -> NotFound:
    return NotFound("There is no upload at that address that you can see.")


# --- Creating and finding ---------------------------------------------------------------------


def create_upload(
    db: Session,
    vault: Vault,
    acting: Acting,
    *,
    metadata: UploadMetadata,
    length: int,
    max_bytes: int,
) -> UploadSession:
    """A new session, after the same checks as any upload (review open, request, case, rights).

    The caller commits. Nothing is stored but the row: the file name is sealed in it.
    """
    if length > max_bytes:
        raise TooLarge(
            f"The file is larger than the limit of {max_bytes:,} bytes. Nothing was kept. "
            "Split it into smaller files, or ask the review team how to send it."
        )
    if length == 0:
        raise TypeRefused("The file is empty. Choose the file again and check it has content.")
    assert acting.user_id is not None
    target = documents.prepare_upload(
        db,
        acting,
        review_code=metadata.review,
        request_id=metadata.request,
        case_reference=metadata.case,
    )
    open_uploads = db.exec(
        select(func.count())
        .select_from(UploadSession)
        .where(
            UploadSession.user_id == acting.user_id,
            UploadSession.state != UploadState.complete,
            col(UploadSession.expires_at) > acting.now,
        )
    ).one()
    if open_uploads >= MAX_OPEN_UPLOADS:
        raise TooManyUploads(
            f"You have {open_uploads} unfinished uploads. Finish or cancel some of them first."
        )
    upload_id = new_upload_id()
    key = vault.issue_document_key(review=target.review.code, document_id=session_key_id(upload_id))
    assert target.review.id is not None
    upload = UploadSession(
        id=upload_id,
        user_id=acting.user_id,
        review_id=target.review.id,
        request_id=target.request.id if target.request else None,
        case_id=target.case.id if target.case else None,
        state=UploadState.receiving,
        length=length,
        received=0,
        parts=0,
        sha256=metadata.sha256,
        wrapped_key=key.wrapped,
        filename_sealed=vault.seal_secret(
            key, metadata.filename.encode(), purpose=FILENAME_PURPOSE
        ),
        created_at=acting.now,
        updated_at=acting.now,
        expires_at=acting.now + UPLOAD_TTL,
    )
    db.add(upload)
    db.flush()
    return upload


def find_upload(
    db: Session, acting: Acting, upload_id: str, *, allow_expired: bool = False
) -> UploadSession:
    """The caller's own upload, or NotFound (somebody else's looks exactly like none)."""
    upload = db.get(UploadSession, upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
    if upload is None or acting.user_id is None or upload.user_id != acting.user_id:
        raise _not_found()
    if not allow_expired and as_utc(upload.expires_at) <= acting.now:
        raise UploadExpired()
    return upload


def document_of(db: Session, upload: UploadSession) -> tuple[Document, Review] | None:
    if upload.document_id is None:
        return None
    document = db.get(Document, upload.document_id)
    review = db.get(Review, upload.review_id)
    return (document, review) if document is not None and review is not None else None


# --- Parts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartPlan:
    """Where the next part goes: checked before a byte of the body is read."""

    upload_id: str
    index: int
    start: int
    length: int
    key: DocumentKey | None  # None: nothing more to receive
    document_reference: str | None = None  # the upload is complete already
    # The lease owner this request writes if it claims the completion.
    owner: str = field(default_factory=new_lease_owner)

    @property
    def remaining(self) -> int:
        return self.length - self.start


def plan_part(
    db: Session, vault: Vault, acting: Acting, upload_id: str, *, offset: int
) -> PartPlan:
    upload = find_upload(db, acting, upload_id)
    if upload.state is UploadState.complete:
        if offset != upload.length:
            raise _offset_conflict(upload.length, offset)
        found = document_of(db, upload)
        return PartPlan(
            upload.id,
            upload.parts,
            upload.length,
            upload.length,
            None,
            found[0].reference if found else None,
        )
    if upload.state is UploadState.completing and lease_held(upload, acting.now):
        raise _being_completed()
    if offset != upload.received:
        raise _offset_conflict(upload.received, offset)
    if upload.received == upload.length:
        # Every byte is in and nobody is completing it (a completion failed, or the process
        # doing it died and its lease ran out): this request tries again.
        return PartPlan(upload.id, upload.parts, upload.received, upload.length, None)
    if upload.parts >= MAX_PARTS:
        raise Refused(
            f"This upload already has {MAX_PARTS:,} parts. Cancel it and upload the file again "
            "in larger chunks.",
            code="too_many_parts",
        )
    review = db.get(Review, upload.review_id)
    assert review is not None
    key = vault.issue_document_key(
        review=review.code, document_id=part_key_id(upload.id, upload.parts)
    )
    return PartPlan(upload.id, upload.parts, upload.received, upload.length, key)


def lease_held(upload: UploadSession, now: datetime) -> bool:
    """Is an attempt at completing this upload still live? (A missing lease has run out.)"""
    return upload.lease_until is not None and as_utc(upload.lease_until) > now


def _being_completed() -> OffsetConflict:
    return OffsetConflict(
        "This upload has all its bytes and is being turned into a document. "
        "Ask for its state (GET) in a moment."
    )


def _offset_conflict(actual: int, sent: int) -> OffsetConflict:
    return OffsetConflict(
        f"The upload stands at byte {actual:,}, not {sent:,}. Ask where it stands (HEAD) and "
        "continue from there."
    )


def commit_part(db: Session, acting: Acting, plan: PartPlan, blob: StoredBlob) -> int:
    """Record a stored part if the upload still stands where the plan found it; the new offset.

    The caller commits, and deletes the blob if this raises.
    """
    assert plan.key is not None
    new_offset = plan.start + blob.size
    last = new_offset == plan.length
    state = UploadState.completing if last else UploadState.receiving
    moved = db.execute(
        update(UploadSession)
        .where(
            col(UploadSession.id) == plan.upload_id,
            col(UploadSession.received) == plan.start,
            col(UploadSession.parts) == plan.index,
            col(UploadSession.state) == UploadState.receiving,
            col(UploadSession.expires_at) > acting.now,
        )
        .values(
            received=new_offset,
            parts=plan.index + 1,
            state=state,
            # The last part claims the completion for this request, in the same write.
            lease_owner=plan.owner if last else None,
            lease_until=acting.now + COMPLETION_LEASE if last else None,
            updated_at=acting.now,
            expires_at=acting.now + UPLOAD_TTL,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise OffsetConflict(
            "Another request added to this upload at the same time; these bytes were discarded. "
            "Ask where it stands (HEAD) and continue from there."
        )
    db.add(
        UploadPart(
            upload_id=plan.upload_id,
            part_index=plan.index,
            start=plan.start,
            size=blob.size,
            blob_id=blob.blob_id,
            wrapped_key=plan.key.wrapped,
        )
    )
    db.flush()
    return new_offset


def claim_completion(db: Session, acting: Acting, upload_id: str, *, owner: str) -> bool:
    """Claim the completion of an upload that has every byte and nobody completing it: one that
    failed (back to ``receiving``) or one whose completing process died (its lease ran out).

    A compare-and-set: of two requests (or a request and the worker) claiming at once, one wins.
    The caller commits.
    """
    lease_over = or_(
        col(UploadSession.lease_until).is_(None), col(UploadSession.lease_until) <= acting.now
    )
    moved = db.execute(
        update(UploadSession)
        .where(
            col(UploadSession.id) == upload_id,
            col(UploadSession.user_id) == acting.user_id,
            col(UploadSession.received) == col(UploadSession.length),
            or_(
                col(UploadSession.state) == UploadState.receiving,
                (col(UploadSession.state) == UploadState.completing) & lease_over,
            ),
        )
        .values(
            state=UploadState.completing,
            lease_owner=owner,
            lease_until=acting.now + COMPLETION_LEASE,
            updated_at=acting.now,
        )
        # Rows the caller has loaded are not brought up to date in Python (SQLite's naive
        # datetimes do not compare with ``now``): the database's answer is the one that counts.
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def _completing_by(upload_id: str, owner: str) -> tuple[Any, ...]:
    """The compare-and-set condition: the upload is still completing under this attempt's lease."""
    return (
        col(UploadSession.id) == upload_id,
        col(UploadSession.state) == UploadState.completing,
        col(UploadSession.lease_owner) == owner,
    )


def _lease_renewal(engine: Engine, upload_id: str, owner: str) -> Callable[[datetime], bool]:
    def renew(until: datetime) -> bool:
        with Session(engine) as db:
            moved = db.execute(
                update(UploadSession)
                .where(
                    *_completing_by(upload_id, owner),
                )
                .values(lease_until=until)
            )
            db.commit()
        return bool(moved.rowcount == 1)  # type: ignore[attr-defined]

    return renew


# --- Completion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    key: DocumentKey
    blob_id: str
    start: int
    size: int


def _plaintext(vault: Vault, parts: list[_Part]) -> Iterator[bytes]:
    for part in parts:
        yield from vault.read(part.key, part.blob_id)


def complete_upload(
    engine: Engine,
    vault: Vault,
    auditor: Auditor,
    acting: Acting,
    upload_id: str,
    *,
    max_bytes: int,
    owner: str,
    clock: Clock | None = None,
) -> str:
    """Parts → the upload pipeline → a document (``pending_scan``); returns its reference.

    The session must be ``completing`` under ``owner``'s lease (claimed by ``commit_part`` or
    ``claim_completion``); the lease is renewed while the parts are read, dated by ``clock``
    (without it, time moves on from ``acting.now`` in real seconds). A refusal for the content
    (type, size, checksum) or for the target (review closed since) leaves nothing: no parts, no
    session, no document; it is audited like any refused upload. Any other failure puts the
    session back to ``receiving`` with its parts, so that an empty PATCH at the final offset
    tries again. If another attempt took the completion over meanwhile (this one's lease ran
    out), this one records nothing and raises OffsetConflict.
    """
    with Session(engine) as db:
        upload = db.get(UploadSession, upload_id)
        if upload is None:
            raise _not_found()
        if upload.state is not UploadState.completing or upload.lease_owner != owner:
            raise _being_completed()
        review = db.get(Review, upload.review_id)
        assert review is not None
        rows = db.exec(
            select(UploadPart)
            .where(UploadPart.upload_id == upload_id)
            .order_by(col(UploadPart.part_index))
        ).all()
        parts = [
            _Part(
                DocumentKey(review.code, part_key_id(upload_id, r.part_index), r.wrapped_key),
                r.blob_id,
                r.start,
                r.size,
            )
            for r in rows
        ]
        case = db.get(Case, upload.case_id) if upload.case_id is not None else None
        expected_sha256 = upload.sha256
        length = upload.length
        session_key = DocumentKey(review.code, session_key_id(upload_id), upload.wrapped_key)
        filename = vault.open_secret(
            session_key, upload.filename_sealed, purpose=FILENAME_PURPOSE
        ).decode()
        try:
            # Checked again: the review may have closed, or the caller lost a right, meanwhile.
            target: documents.UploadTarget | None = documents.prepare_upload(
                db,
                acting,
                review_code=review.code,
                request_id=str(upload.request_id) if upload.request_id is not None else None,
                case_reference=case.reference if case is not None else None,
            )
            refusal: Exception | None = None
        except Refusal as refused:
            target, refusal = None, refused
    if target is None:
        assert refusal is not None
        with Session(engine) as db:
            blob_ids = _delete_held(db, upload_id, owner)
            db.commit()
        _destroy_quietly(vault, blob_ids or [])
        raise refusal
    try:
        _check_contiguous(parts, length)
        with renewed(
            _lease_renewal(engine, upload_id, owner),
            length=COMPLETION_LEASE,
            clock=clock or moving_clock(acting.now),
        ):
            stored = documents.store_upload(
                vault,
                target,
                _plaintext(vault, parts),
                max_bytes=max_bytes,
                expected_sha256=expected_sha256,
                filename=filename,
            )
    except Refusal as refused:
        with Session(engine) as db:
            ingest.audit_rejection(db, auditor, acting, target, refused)
            # If another attempt has taken over, this rolls back: that one audits what it finds.
            blob_ids = _delete_held(db, upload_id, owner)
            db.commit()
        _destroy_quietly(vault, blob_ids or [])
        raise
    except Exception as failure:
        if _back_to_receiving(engine, upload_id, owner) is False:
            # Taken over while this attempt ran (its lease ran out): the other attempt may well
            # have deleted the parts this one was reading. It makes the document.
            raise _being_completed() from failure
        raise
    except BaseException:
        _back_to_receiving(engine, upload_id, owner)
        raise
    try:
        with Session(engine) as db:
            document = documents.record_upload(
                db, auditor, acting, target, stored, filename=filename, vault=vault
            )
            blob_ids = _delete_parts(db, upload_id)
            done = db.execute(
                update(UploadSession)
                .where(
                    *_completing_by(upload_id, owner),
                )
                .values(
                    state=UploadState.complete,
                    document_id=document.id,
                    # The document holds its own key and sealed name now: the session's copies are
                    # erased at once, not left for a day (the row stays, for the client's HEAD).
                    wrapped_key=b"",
                    filename_sealed=b"",
                    lease_owner=None,
                    lease_until=None,
                    updated_at=acting.now,
                    expires_at=acting.now + UPLOAD_TTL,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                # Taken over (or cancelled) while this attempt ran: the other one makes the
                # document; this one's row, event and blob must not exist.
                db.rollback()
                raise _being_completed()
            db.commit()
            reference = document.reference
    except BaseException:
        # The row did not commit: remove the document's blob now rather than leave it to the sweep.
        vault.destroy_document(stored.blob.blob_id)
        _back_to_receiving(engine, upload_id, owner)
        raise
    _destroy_quietly(vault, blob_ids)
    return reference


def _check_contiguous(parts: list[_Part], length: int) -> None:
    position = 0
    for part in parts:
        if part.start != position:
            break
        position += part.size
    if position != length:
        # Only a bug or a tampered database gets here: never assemble a file with a hole.
        raise StorageError("the parts of an upload do not cover it exactly")


def _back_to_receiving(engine: Engine, upload_id: str, owner: str) -> bool | None:
    """Give the completion up (it failed), if it is still this attempt's to give: True when it
    was, False when another attempt holds it now, None when the database could not say."""
    try:
        with Session(engine) as db:
            moved = db.execute(
                update(UploadSession)
                .where(
                    *_completing_by(upload_id, owner),
                )
                .values(state=UploadState.receiving, lease_owner=None, lease_until=None)
            )
            db.commit()
    except Exception:
        return None  # the lease runs out by itself: the next attempt takes the completion over
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


# --- Removing ---------------------------------------------------------------------------------


def _delete_parts(db: Session, upload_id: str) -> list[str]:
    blob_ids = list(
        db.exec(select(UploadPart.blob_id).where(UploadPart.upload_id == upload_id)).all()
    )
    db.execute(delete(UploadPart).where(col(UploadPart.upload_id) == upload_id))
    return blob_ids


def delete_upload_rows(db: Session, upload_id: str) -> list[str]:
    """Delete a session and its parts' rows; returns the blobs to destroy after the commit.

    The rows hold the wrapped keys of the session and of every part: deleting them is the
    cryptographic erase of an upload (destruction uses it too)."""
    blob_ids = _delete_parts(db, upload_id)
    db.execute(delete(UploadSession).where(col(UploadSession.id) == upload_id))
    return blob_ids


def _delete_held(db: Session, upload_id: str, owner: str) -> list[str] | None:
    """``delete_upload_rows`` if this attempt still holds the completion, else None (after a
    rollback: the parts' rows are deleted first, the session only if its lease is ours)."""
    blob_ids = _delete_parts(db, upload_id)
    gone = db.execute(
        delete(UploadSession).where(
            *_completing_by(upload_id, owner),
        )
    )
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        db.rollback()
        return None
    return blob_ids


def _destroy_quietly(vault: Vault, blob_ids: list[str]) -> None:
    # Rows go first, blobs after the commit: a blob whose deletion fails here is an orphan that
    # the worker's sweep removes; a row pointing at a missing blob would be worse.
    for blob_id in blob_ids:
        with suppress(StorageError):
            vault.destroy_document(blob_id)


def _discard_now(engine: Engine, vault: Vault, upload_id: str) -> None:
    with Session(engine) as db:
        blob_ids = delete_upload_rows(db, upload_id)
        db.commit()
    _destroy_quietly(vault, blob_ids)


def terminate_upload(engine: Engine, vault: Vault, acting: Acting, upload_id: str) -> None:
    """tus termination: the session and every part go. A completed upload's document stays
    (it is withdrawn, if need be, like any other)."""
    with Session(engine) as db:
        find_upload(db, acting, upload_id, allow_expired=True)
    _discard_now(engine, vault, upload_id)


def discard_expired(engine: Engine, vault: Vault, *, now: datetime, batch: int = 100) -> int:
    """Delete sessions idle past their expiry, and their parts; returns how many."""
    removed = 0
    while True:
        with Session(engine) as db:
            query: Any = (
                select(UploadSession.id)
                .where(col(UploadSession.expires_at) <= now)
                .order_by(col(UploadSession.expires_at))
                .limit(batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                # Several workers may sweep at once: each takes sessions the others have not.
                query = query.with_for_update(skip_locked=True)
            expired = list(db.exec(query).all())
            blob_ids: list[str] = []
            for upload_id in expired:
                blob_ids += delete_upload_rows(db, upload_id)
            db.commit()
        _destroy_quietly(vault, blob_ids)
        removed += len(expired)
        if len(expired) < batch:
            return removed
