"""Scanning behind the upload: every document is scanned by clamd before anyone can open it.

Fail closed (SPEC §4): only a clear "OK" makes a document available. Infected → rejected and its
content destroyed at once. A zip-based document (Office Open XML, OpenDocument) is scanned whole and
then member by member (portal.scanning.scan_members), decompressed in memory from the encrypted blob:
clamd alone does not see into a ZIP64 member (issue 18); a member that cannot be read rejects it too.
Scanner down, slow, over a limit or answering an error → the document stays
``pending_scan`` and is retried with back-off; after ``flag_after`` tries it is flagged to the
administrators (and still retried). Several workers may run at once: each document is claimed
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL) with a lease in a short transaction, so two never scan
the same one, and no database lock is held while clamd reads the file. The lease is short and
renewed while the scan runs (portal.leases): a process killed mid-scan leaves the document to the
next worker within a minute, and a live scan, however long, keeps it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from audit import Actor, Outcome, Target
from portal import filetypes
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.exchange.documents import BlobFile, key_of
from portal.exchange.models import Document, DocumentState, Review
from portal.leases import Clock, moving_clock, renewed
from portal.scanning import CHUNK, ScanError, Scanner, Verdict, scan_members
from storage import DocumentKey, StorageError, Vault

SCANNER = Actor.system("scanner")

# Stored types that are zips, whose members are scanned one by one as well as the whole file.
ARCHIVE_TYPES = frozenset(
    kind.media_type
    for kind in (
        filetypes.DOCX,
        filetypes.XLSX,
        filetypes.PPTX,
        filetypes.ODT,
        filetypes.ODS,
        filetypes.ODP,
    )
)


@dataclass(frozen=True)
class ScanPolicy:
    first_retry: timedelta = timedelta(seconds=30)
    longest_retry: timedelta = timedelta(minutes=30)
    flag_after: int = 5
    # How long a claimed document is left to the process scanning it before another takes it
    # over. Renewed every third of it while the scan runs, so it need not cover the longest scan
    # (a 2 GiB file takes about 25 s), only a renewal or two that fail.
    lease: timedelta = timedelta(seconds=45)


@dataclass(frozen=True)
class ScanOutcome:
    reference: str
    state: DocumentState
    signature: str | None = None


def _retry_delay(attempts: int, policy: ScanPolicy) -> timedelta:
    delay: timedelta = min(policy.first_retry * (2 ** max(attempts - 1, 0)), policy.longest_retry)
    return delay


def _claim(db: Session, now: datetime, reference: str | None) -> Document | None:
    query = select(Document).where(
        Document.state == DocumentState.pending_scan,
        or_(col(Document.next_scan_at).is_(None), col(Document.next_scan_at) <= now),
    )
    if reference is not None:
        query = query.where(Document.reference == reference)
    query = query.order_by(col(Document.next_scan_at)).limit(1)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return db.exec(query).first()


@dataclass(frozen=True)
class _Claimed:
    document_id: int
    key: DocumentKey
    blob_id: str
    until: datetime
    size: int
    archive: bool  # a zip-based type: scanned member by member too


def _claim_with_lease(
    engine: Engine, now: datetime, reference: str | None, lease: timedelta
) -> _Claimed | None:
    """Take the next due document for ``lease``, in a short transaction of its own.

    The scan itself runs with no transaction open: a long scan must not hold a database lock
    (on SQLite, the write lock every request needs). Another worker skips the document until the
    lease runs out, which also covers a worker that dies mid-scan.
    """
    with Session(engine) as db:
        document = _claim(db, now, reference)
        if document is None:
            return None
        review = db.get(Review, document.review_id)
        assert review is not None and document.id is not None and document.blob_id
        document.next_scan_at = now + lease
        db.add(document)
        db.commit()
        return _Claimed(
            document.id,
            key_of(document, review),
            document.blob_id,
            now + lease,
            size=document.size,
            archive=document.content_type in ARCHIVE_TYPES,
        )


def _lease_renewal(engine: Engine, claimed: _Claimed) -> Callable[[datetime], bool]:
    """Move the lease on, if it is still the one this scan took (nobody has taken it over)."""
    held = claimed.until

    def renew(until: datetime) -> bool:
        nonlocal held
        with Session(engine) as db:
            moved = db.execute(
                update(Document)
                .where(
                    col(Document.id) == claimed.document_id,
                    col(Document.state) == DocumentState.pending_scan,
                    col(Document.next_scan_at) == held,
                )
                .values(next_scan_at=until)
            )
            db.commit()
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return False
        held = until
        return True

    return renew


def _scan(vault: Vault, scanner: Scanner, claimed: _Claimed) -> Verdict:
    """The whole file, then (for a zip-based document) each of its members on its own."""
    verdict = scanner.scan(vault.read(claimed.key, claimed.blob_id))
    if verdict.clean and claimed.archive:
        view = BlobFile(vault, claimed.key, claimed.blob_id, claimed.size)
        with io.BufferedReader(view, CHUNK) as stream:
            verdict = scan_members(scanner, stream)
    return verdict


def scan_one(
    engine: Engine,
    vault: Vault,
    scanner: Scanner,
    auditor: Auditor,
    *,
    now: datetime,
    reference: str | None = None,
    policy: ScanPolicy | None = None,
    clock: Clock | None = None,
) -> ScanOutcome | None:
    """Scan the next due document (or the one named); None when nothing is due.

    ``clock`` dates the lease's renewals while the scan runs; without it, time moves on from
    ``now`` in real seconds.
    """
    policy = policy or ScanPolicy()
    claimed = _claim_with_lease(engine, now, reference, policy.lease)
    if claimed is None:
        return None
    document_id, blob_id = claimed.document_id, claimed.blob_id
    problem: Exception | None = None
    try:
        with renewed(
            _lease_renewal(engine, claimed),
            length=policy.lease,
            clock=clock or moving_clock(now),
        ):
            verdict = _scan(vault, scanner, claimed)
    except (ScanError, StorageError) as failure:
        problem = failure
    with Session(engine) as db:
        document = db.get(Document, document_id)
        review = db.get(Review, document.review_id) if document else None
        if document is None or review is None or document.state is not DocumentState.pending_scan:
            return None  # withdrawn (or destroyed) while it was being scanned: nothing to record
        target = Target(TargetKind.DOCUMENT, document.reference)
        if problem is not None:
            document.scan_attempts += 1
            document.next_scan_at = now + _retry_delay(document.scan_attempts, policy)
            reason = "scanner_unavailable" if isinstance(problem, ScanError) else "storage_error"
            if document.scan_attempts >= policy.flag_after and document.scan_flagged_at is None:
                document.scan_flagged_at = now
            db.add(document)
            auditor.record(
                db,
                Action.DOCUMENT_SCANNED,
                actor=SCANNER,
                now=now,
                outcome=Outcome.FAILURE,
                target=target,
                review=review.code,
                document=document.reference,
                details={"reason": reason, "attempts": document.scan_attempts},
            )
            db.commit()
            return ScanOutcome(document.reference, DocumentState.pending_scan)
        document.scanned_at = now
        document.next_scan_at = None
        if verdict.clean:
            document.state = DocumentState.available
            document.scan_verdict = "clean"
        else:
            # Infected: the content is destroyed now (key erased here, blob deleted below).
            document.state = DocumentState.rejected
            document.scan_verdict = "infected"
            document.scan_signature = (verdict.signature or "unknown")[:100]
            document.rejected_reason = verdict.reason
            document.wrapped_key = None
            document.filename_sealed = None
            document.blob_id = None
        db.add(document)
        details: dict[str, int | bool | str] = {"verdict": document.scan_verdict or "clean"}
        if document.scan_signature:
            details["malware_signature"] = document.scan_signature
        auditor.record(
            db,
            Action.DOCUMENT_SCANNED,
            actor=SCANNER,
            now=now,
            target=target,
            review=review.code,
            document=document.reference,
            details=details,
        )
        if not verdict.clean:
            auditor.record(
                db,
                Action.DOCUMENT_REJECTED,
                actor=SCANNER,
                now=now,
                target=target,
                review=review.code,
                document=document.reference,
                details={"reason": verdict.reason},
            )
        db.commit()
        if not verdict.clean:
            vault.destroy_document(blob_id)
        return ScanOutcome(document.reference, document.state, document.scan_signature)


def scan_due(
    engine: Engine,
    vault: Vault,
    scanner: Scanner,
    auditor: Auditor,
    *,
    clock: Callable[[], datetime],
    limit: int = 100,
) -> list[ScanOutcome]:
    outcomes = []
    for _ in range(limit):
        outcome = scan_one(engine, vault, scanner, auditor, now=clock(), clock=clock)
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes


@dataclass(frozen=True)
class ScanBacklog:
    """Counts only (no references): what administrators are told about scanning."""

    waiting: int
    flagged: int


def scan_backlog(db: Session) -> ScanBacklog:
    from sqlmodel import func

    pending = Document.state == DocumentState.pending_scan
    waiting = db.exec(select(func.count()).select_from(Document).where(pending)).one()
    flagged = db.exec(
        select(func.count())
        .select_from(Document)
        .where(pending, col(Document.scan_flagged_at).is_not(None))
    ).one()
    return ScanBacklog(waiting=int(waiting), flagged=int(flagged))
