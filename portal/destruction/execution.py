"""Carrying destruction out: NIST SP 800-88 cryptographic erase, verified, then certified.

For one due review, a *run* (one open run per review, whatever the number of workers):

1. documents, a batch at a time, each batch claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
   (SQLite has one writer at a time): the wrapped data key and the sealed file name are erased,
   the metadata trimmed to what the certificate keeps, the state set to ``destroyed``, a
   ``destruction_item`` row written (unique per document: no document is destroyed twice) and
   ``document.destroyed`` audited, all in one transaction; then, once committed, the blobs are
   deleted (every version). Key first: a blob whose deletion is interrupted is already unreadable,
   and the verification below deletes it. Before the documents, the review's resumable uploads go
   the same way, a batch at a time: the session and part rows (which hold their wrapped keys and
   the sealed file name) are deleted, each unfinished upload (``receiving`` or ``completing``)
   leaving a ``destruction_upload`` row with its part blobs' ids, and the part blobs are deleted.
2. when no document is left but held ones, one worker (holding the run's row lock) finishes: if
   nothing is held, the review key is erased (``vault.destroy_review``: every copy of every blob of
   the review, backups included, is then beyond use once the key service's own backups of the key
   are gone too); every blob of the run is checked absent
   (deleted again if needed), the part blobs of the run's unfinished uploads too, the key checked
   absent; the signed certificate is stored, the review
   marked ``destroyed``, and it is all audited, in one transaction. Each step takes its own time
   from the Destroyer's clock, and the certificate records each (record.py), with the key's fate.

Idempotent: a run killed anywhere completes on the next call, nothing destroyed twice, nothing
skipped. Held documents (a DPO's hold on them or their case; during an early destruction a lead's
request too) are skipped and reported; the review key is then kept for them and a later run, once
the hold is lifted, destroys them and the key, on the same early approval if there was one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from audit import Actor, SigningKey, Target
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.destruction import certificates
from portal.destruction.early import open_request
from portal.destruction.errors import DestructionIncomplete
from portal.destruction.models import (
    Certificate,
    DestroyedUpload,
    DestructionItem,
    DestructionRun,
    EarlyDestruction,
    EarlyState,
)
from portal.destruction.record import KeyOutcome, certificate_content, iso
from portal.destruction.schedule import (
    Entry,
    binding_states,
    due_reviews,
    entry_for,
    held_documents,
)
from portal.exchange.models import Document, DocumentState, Review, ReviewState
from portal.references import new_reference
from portal.uploads.models import UploadSession, UploadState
from portal.uploads.sessions import delete_upload_rows
from storage import StorageError, Vault

DESTRUCTION = Actor.system("destruction")
BATCH = 50


@dataclass
class Held:
    review: str
    document: str | None  # None: the whole review is held


@dataclass
class Failure:
    review: str
    message: str


@dataclass
class RunReport:
    """What one call did. ``certificates``: references issued by this call only."""

    certificates: list[str] = field(default_factory=list)
    destroyed: int = 0
    unfinished_uploads: int = 0  # resumable uploads in progress, discarded with their parts
    held: list[Held] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # another worker is finishing them
    planned: list[Entry] = field(default_factory=list)  # --dry-run: what would be destroyed

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"destroyed {self.destroyed} document(s)"]
        if self.unfinished_uploads:
            parts.append(f"{self.unfinished_uploads} unfinished upload(s) discarded")
        if self.certificates:
            parts.append("certificates " + ", ".join(self.certificates))
        if self.held:
            parts.append(f"{len(self.held)} held")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return "; ".join(parts)


@dataclass(frozen=True)
class Destroyer:
    """What a run needs: built by the worker or the command from the runtime.

    ``clock`` gives the time of each step (a batch destroyed, the key erased, the check, the
    issue), so that a certificate records when each thing happened, not one time for all;
    without it every step takes the ``now`` of ``run_due``. ``actor`` is who the audit log and
    the certificate name as carrying the run out: the worker, or the person at the command line.
    """

    engine: Engine
    vault: Vault
    auditor: Auditor
    signing_key: SigningKey
    public_url: str = ""
    batch: int = BATCH
    parallel: int = 8  # blob deletions and checks in flight at once
    clock: Callable[[], datetime] | None = None
    actor: Actor = DESTRUCTION

    def _time(self, now: datetime) -> datetime:
        return self.clock() if self.clock is not None else now

    def run_due(
        self, *, now: datetime, review_code: str | None = None, dry_run: bool = False
    ) -> RunReport:
        """Destroy every review due at ``now`` (or only ``review_code``)."""
        report = RunReport()
        with Session(self.engine) as db:
            entries = due_reviews(db, today=now.date(), review_code=review_code)
        for entry in entries:
            code = entry.review.code
            if entry.review_holds:
                report.held.append(Held(code, None))
                continue
            report.held.extend(Held(code, ref) for ref in entry.held_documents)
            if dry_run:
                report.planned.append(entry)
                continue
            try:
                self._destroy_review(entry.review, now, report)
            except (StorageError, DestructionIncomplete) as problem:
                report.failed.append(Failure(code, str(problem)))
        return report

    # -- one review ---------------------------------------------------------------------------

    def _destroy_review(self, review: Review, now: datetime, report: RunReport) -> None:
        assert review.id is not None
        run_id = self._open_run(review.id, now)
        if run_id is None:
            return
        # Uploads first: a completion racing the run finds its session gone and makes nothing.
        while True:
            taken = self._destroy_uploads_batch(run_id, review, now)
            if taken is None:
                break
            unfinished, part_blobs = taken
            report.unfinished_uploads += unfinished
            self._in_parallel(self._delete_blob, part_blobs)
        while True:
            destroyed = self._destroy_batch(run_id, review, now)
            if not destroyed:
                break
            report.destroyed += len(destroyed)
            self._in_parallel(self._delete_blob, destroyed)
        reference = self._finish_run(run_id, now)
        if reference is None:
            report.unfinished.append(review.code)
        else:
            report.certificates.append(reference)

    def _open_run(self, review_id: int, now: datetime) -> int | None:
        """The review's open run, started if there is something to destroy; None otherwise."""
        for _ in range(3):
            with Session(self.engine) as db:
                run = db.exec(
                    select(DestructionRun).where(DestructionRun.open_review_id == review_id)
                ).first()
                if run is not None:
                    return run.id
                review = db.get(Review, review_id)
                if review is None or review.state is not ReviewState.closed:
                    return None
                entry = entry_for(db, review, now.date())
                if not entry.due:
                    return None
                destroyable = (
                    entry.documents - len(entry.held_documents) + _unfinished_uploads(db, review_id)
                )
                if destroyable == 0 and entry.held_documents:
                    return None  # only held documents left: nothing to do until a hold lifts
                early = (
                    entry.early
                    if entry.early and entry.early.state is EarlyState.approved
                    else None
                )
                run = DestructionRun(
                    review_id=review_id,
                    open_review_id=review_id,
                    early_id=early.id if early else None,
                    started_at=self._time(now),
                )
                db.add(run)
                try:
                    db.commit()
                except IntegrityError:
                    db.rollback()  # another worker opened it first: use theirs
                    continue
                return run.id
        return None

    def _destroy_batch(self, run_id: int, review: Review, now: datetime) -> list[str]:
        """Destroy up to ``batch`` documents in one transaction; returns their blob ids."""
        with Session(self.engine) as db:
            assert review.id is not None
            now = self._time(now)  # this batch's destruction time
            # The same holds as the schedule's: a DPO's, and a lead's request during an early
            # destruction; on a document or on its case.
            states = binding_states(review, open_request(db, review), now.date())
            held = held_documents(review.id, states)
            query = (
                select(Document)
                .where(
                    Document.review_id == review.id,
                    Document.state != DocumentState.destroyed,
                    col(Document.id).not_in(held),
                )
                .order_by(col(Document.id))
                .limit(self.batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                # Several workers: each takes rows no other holds, so each document goes once.
                query = query.with_for_update(skip_locked=True, of=Document)
            documents = list(db.exec(query).all())
            if not documents:
                return []
            blob_ids = []
            for document in documents:
                assert document.id is not None
                db.add(
                    DestructionItem(
                        run_id=run_id,
                        document_id=document.id,
                        blob_id=document.blob_id,
                        previous_state=document.state.value,
                        destroyed_at=now,
                    )
                )
                if document.blob_id:
                    blob_ids.append(document.blob_id)
                previous = document.state
                _erase(document, now)
                db.add(document)
                self.auditor.record(
                    db,
                    Action.DOCUMENT_DESTROYED,
                    actor=self.actor,
                    now=now,
                    target=Target(TargetKind.DOCUMENT, document.reference),
                    review=review.code,
                    document=document.reference,
                    details={
                        "method": "crypto_erase",
                        "previous_state": previous.value,
                        "size_bytes": document.size,
                    },
                )
            db.commit()
            return blob_ids

    def _destroy_uploads_batch(
        self, run_id: int, review: Review, now: datetime
    ) -> tuple[int, list[str]] | None:
        """Delete up to ``batch`` upload sessions of the review, with their parts, in one
        transaction; returns (how many were unfinished, their part blobs), None when none is left.

        Completed sessions go too (they still hold the sealed file name for a day) but are not
        counted: their document is destroyed, and certified, as a document.
        """
        with Session(self.engine) as db:
            now = self._time(now)
            query = (
                select(UploadSession)
                .where(UploadSession.review_id == review.id)
                .order_by(col(UploadSession.id))
                .limit(self.batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            uploads = list(db.exec(query).all())
            if not uploads:
                return None
            unfinished, part_blobs = 0, []
            for upload in uploads:
                state = upload.state
                blob_ids = delete_upload_rows(db, upload.id)
                if state is UploadState.complete:
                    continue
                unfinished += 1
                part_blobs += blob_ids
                db.add(
                    DestroyedUpload(
                        run_id=run_id,
                        previous_state=state.value,
                        parts=len(blob_ids),
                        blob_ids=" ".join(blob_ids) or None,
                        destroyed_at=now,
                    )
                )
            db.commit()
            return unfinished, part_blobs

    def _delete_blob(self, blob_id: str) -> bool:
        # Unreadable already (its key is gone); if this fails, the verification deletes it.
        with contextlib.suppress(StorageError):
            self.vault.destroy_document(blob_id)
        return True

    def _in_parallel(self, work: Callable[[str], bool], blob_ids: Sequence[str]) -> list[bool]:
        """Object stores answer each request in milliseconds: a few at once, never thousands."""
        if len(blob_ids) <= 1:
            return [work(b) for b in blob_ids]
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="destroy") as pool:
            return list(pool.map(work, blob_ids))

    def _finish_run(self, run_id: int, now: datetime) -> str | None:
        """Erase the key (unless documents are held), verify, certify. One worker does it."""
        with Session(self.engine) as db:
            query = select(DestructionRun).where(DestructionRun.id == run_id)
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            run = db.exec(query).first()
            if run is None or run.completed_at is not None:
                return None
            review = db.get(Review, run.review_id)
            assert review is not None and review.id is not None
            entry = entry_for(db, review, now.date())
            if entry.review_holds or entry.documents > len(entry.held_documents):
                return None  # held meanwhile, or another worker still has documents in hand
            if _upload_sessions(db, review.id):
                return None  # another worker still has uploads in hand
            whole = not entry.held_documents
            key_erased_at = None
            if whole:
                # The review key goes first: from here every copy of every blob is beyond use
                # (once the key service's own backups of it are gone, docs/destruction.md).
                self.vault.destroy_review(review.code)
                key_erased_at = self._time(now)
            items = list(
                db.exec(select(DestructionItem).where(DestructionItem.run_id == run.id)).all()
            )
            uploads = list(
                db.exec(select(DestroyedUpload).where(DestroyedUpload.run_id == run.id)).all()
            )
            verification = self._verify(
                db,
                review,
                items,
                uploads,
                whole=whole,
                now=self._time(now),
                key_erased_at=key_erased_at,
            )
            early = db.get(EarlyDestruction, run.early_id) if run.early_id else None
            reference = new_reference()
            key = KeyOutcome(
                erased=whole,
                key_object=self.vault.keystore.key_reference(review.code),
                erased_at=key_erased_at,
            )
            now = self._time(now)  # the time of issue
            content = certificate_content(
                db,
                reference=reference,
                review=review,
                run=run,
                items=items,
                uploads=uploads,
                held=entry.held_documents,
                early=early,
                verification=verification,
                key=key,
                actor=self.actor,
                issued_at=now,
                public_url=self.public_url,
            )
            signed = certificates.sign_certificate(content, self.signing_key)
            db.add(
                Certificate(
                    reference=reference,
                    review_id=review.id,
                    run_id=run_id,
                    issued_at=now,
                    documents=len(items),
                    body=signed.body.decode("utf-8"),
                    signature=signed.signature,
                    key_fingerprint=signed.key_fingerprint,
                )
            )
            run.completed_at = now
            run.open_review_id = None
            db.add(run)
            # Verified absent: the blob ids are kept no longer than the verification needed.
            db.execute(
                update(DestructionItem)
                .where(col(DestructionItem.run_id) == run_id)
                .values(blob_id=None)
            )
            db.execute(
                update(DestroyedUpload)
                .where(col(DestroyedUpload.run_id) == run_id)
                .values(blob_ids=None)
            )
            self._record_finish(db, review, run, early, reference, items, whole=whole, now=now)
            db.commit()
            return reference

    def _verify(
        self,
        db: Session,
        review: Review,
        items: Sequence[DestructionItem],
        uploads: Sequence[DestroyedUpload],
        *,
        whole: bool,
        now: datetime,
        key_erased_at: datetime | None,
    ) -> dict[str, Any]:
        store, keystore = self.vault.store, self.vault.keystore
        blobs = [item.blob_id for item in items if item.blob_id]
        parts = [blob_id for upload in uploads for blob_id in upload.part_blob_ids()]

        def absent_now(blob_id: str) -> bool:
            if store.exists(blob_id):
                self.vault.destroy_document(blob_id)  # its deletion was interrupted: finish it
            return not store.exists(blob_id)

        absent = sum(self._in_parallel(absent_now, blobs))
        parts_absent = sum(self._in_parallel(absent_now, parts))
        assert review.id is not None
        sessions_left = _upload_sessions(db, review.id)
        keys_left = (
            db.exec(
                select(func.count())
                .select_from(Document)
                .where(
                    col(Document.id).in_([item.document_id for item in items]),
                    col(Document.wrapped_key).is_not(None),
                )
            ).one()
            if items
            else 0
        )
        key_destroyed = keystore.is_destroyed(review.code) and not keystore.has_review_key(
            review.code
        )
        if (
            absent != len(blobs)
            or parts_absent != len(parts)
            or keys_left
            or sessions_left
            or (whole and not key_destroyed)
        ):
            raise DestructionIncomplete(
                f"review {review.code}: {len(blobs) - absent} blob(s) and "
                f"{len(parts) - parts_absent} upload part(s) still present, {keys_left} data "
                f"key(s) and {sessions_left} upload session(s) left, review key destroyed: "
                f"{key_destroyed}; no certificate issued, the next run retries"
            )
        return {
            "checked_at": iso(now),
            "blobs_checked": len(blobs),
            "blobs_absent": absent,
            "part_blobs_checked": len(parts),
            "part_blobs_absent": parts_absent,
            "data_keys_erased": len(items),
            "review_key": "destroyed" if whole else "retained_for_held_documents",
            "review_key_absent": key_destroyed,
            # Which key object the key service destroyed, and when this run did it: the one
            # thing a key service's own backups must not outlive (docs/destruction.md).
            "review_key_object": keystore.key_reference(review.code),
            "review_key_destroyed_at": iso(key_erased_at) if key_erased_at else None,
            "result": "passed",
        }

    def _record_finish(
        self,
        db: Session,
        review: Review,
        run: DestructionRun,
        early: EarlyDestruction | None,
        reference: str,
        items: Sequence[DestructionItem],
        *,
        whole: bool,
        now: datetime,
    ) -> None:
        def record(action: Action, target: Target, **details: int | bool | str) -> None:
            self.auditor.record(
                db,
                action,
                actor=self.actor,
                now=now,
                target=target,
                review=review.code,
                details=details,
            )

        if whole:
            record(Action.KEY_DESTROYED, Target(TargetKind.KEY, review.code), method="crypto_erase")
            review.state = ReviewState.destroyed
            review.destroyed_at = now
            db.add(review)
            record(
                Action.REVIEW_DESTROYED, Target(TargetKind.REVIEW, review.code), count=len(items)
            )
        if early is not None and whole:
            # Only when the whole review is gone: after a partial run (something held) the
            # approval covers the rest, which a later run destroys once the hold is lifted.
            early.state = EarlyState.done
            db.add(early)
        record(
            Action.DESTRUCTION_RUN,
            Target(TargetKind.REVIEW, review.code),
            count=len(items),
            early=early is not None,
        )
        record(
            Action.CERTIFICATE_ISSUED, Target(TargetKind.CERTIFICATE, reference), count=len(items)
        )


def _upload_sessions(db: Session, review_id: int) -> int:
    """Upload sessions of the review still in the database (each holds wrapped keys)."""
    return int(
        db.exec(
            select(func.count())
            .select_from(UploadSession)
            .where(UploadSession.review_id == review_id)
        ).one()
    )


def _unfinished_uploads(db: Session, review_id: int) -> int:
    return int(
        db.exec(
            select(func.count())
            .select_from(UploadSession)
            .where(
                UploadSession.review_id == review_id,
                UploadSession.state != UploadState.complete,
            )
        ).one()
    )


def _erase(document: Document, now: datetime) -> None:
    """Crypto-erase and trim: keep what the certificate needs, and what access checks need."""
    document.wrapped_key = None
    document.filename_sealed = None
    document.blob_id = None
    document.state = DocumentState.destroyed
    document.destroyed_at = now
    document.request_id = None
    document.content_type = ""
    document.scan_verdict = None
    document.scan_signature = None
    document.next_scan_at = None
    document.rejected_reason = None
    document.withdraw_reason = None
