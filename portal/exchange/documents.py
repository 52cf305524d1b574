"""Documents: the upload pipeline, retrieval, withdrawal. Plain Python, no HTTP.

Upload, in this order, so that a crash or a bad request at any point leaves no visible document:
  1. ``prepare_upload``: the caller may upload into this review (and request, and case) now;
  2. ``store_upload``: stream → size limit → type check on the first bytes → hash and seal → blob
     (all in one pass; any failure deletes the partial blob before raising);
  3. ``record_upload``: the document row (``pending_scan``) and its audit event, in one transaction,
     only after the blob is durable. A crash between 2 and 3 leaves a blob no row points at: the
     worker's sweep removes it.
Scanning then runs behind the upload (``portal.exchange.scans``).
"""

from __future__ import annotations

import hmac
import io
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlmodel import Session, col, select

from audit import Outcome, Target
from portal import filetypes, policy, refusals
from portal.audit_vocabulary import Action, TargetKind
from portal.auditing import Auditor
from portal.exchange.acting import Acting
from portal.exchange.errors import (
    ChecksumMismatch,
    Gone,
    InvalidReference,
    NotFound,
    Refused,
    ReviewNotOpen,
    TooLarge,
    TypeRefused,
)
from portal.exchange.models import (
    Case,
    Document,
    DocumentKind,
    DocumentState,
    Request,
    Review,
    ReviewState,
    WithdrawReason,
)
from portal.exchange.reviews import find_case, find_request, find_review
from portal.models import as_utc
from portal.references import new_reference, parse_reference
from storage import DocumentKey, KeyDestroyed, StoredBlob, Vault

MAX_FILENAME = 200


@dataclass(frozen=True)
class UploadTarget:
    """Where an upload goes, checked before a byte is read."""

    review: Review
    kind: DocumentKind
    organisation_id: int
    request: Request | None
    case: Case | None
    reference: str

    @property
    def key(self) -> DocumentKey:
        return DocumentKey(review=self.review.code, document_id=self.reference)


@dataclass(frozen=True)
class StoredUpload:
    blob: StoredBlob
    wrapped_key: bytes
    file_type: filetypes.FileType


def safe_filename(name: str) -> str:
    """The last path component, without control characters, NFC-normalised, at most 200 chars.

    Threat: a name such as ``../../etc/passwd`` or ``C:\\Windows\\x.exe`` must never steer where
    anything is written (blobs are named by random ids anyway) or what a download is saved as.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return name[:MAX_FILENAME] or "document"


def key_of(document: Document, review: Review) -> DocumentKey:
    """The document's data key as the vault wants it, rebuilt from its row."""
    return DocumentKey(
        review=review.code, document_id=document.reference, wrapped=document.wrapped_key or b""
    )


def _audit_document(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    action: Action,
    document: Document,
    review: Review,
    details: dict[str, int | bool | str] | None = None,
) -> None:
    auditor.record_as(
        db,
        acting,
        action,
        target=Target(TargetKind.DOCUMENT, document.reference),
        review=review.code,
        document=document.reference,
        details=details,
    )


def prepare_upload(
    db: Session,
    acting: Acting,
    *,
    review_code: str,
    request_id: str | None = None,
    case_reference: str | None = None,
) -> UploadTarget:
    review = find_review(db, acting, review_code)
    caller = acting.caller
    kind = policy.upload_kind(db, caller, review) if caller is not None else None
    if kind is None:
        if (
            caller is not None
            and review.state is not ReviewState.open
            and (policy.takes_part(db, caller, review) or policy.is_team_member(db, caller, review))
        ):
            raise ReviewNotOpen(
                f"Review {review.code} is {review.state.value}: it does not accept uploads now. "
                "Ask the review team if you need to send something."
            )
        raise NotFound("There is no review with that code that you can see.")
    assert caller is not None
    request = find_request(db, acting, review, request_id) if request_id else None
    case = find_case(db, acting, review, case_reference) if case_reference else None
    if kind is DocumentKind.record:
        if request is not None and request.organisation_id != caller.organisation_id:
            raise NotFound("There is no request with that number in this review.")
        if case is not None and case.organisation_id != caller.organisation_id:
            raise NotFound("There is no case with that reference in this review.")
    return UploadTarget(
        review=review,
        kind=kind,
        organisation_id=caller.organisation_id,
        request=request,
        case=case,
        reference=new_reference(),
    )


class _Gate:
    """Counts bytes (refusing one over the limit) and keeps the first bytes for the type check."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.head = bytearray()
        self.early: filetypes.FileType | None = None

    def take(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(
                f"The file is larger than the limit of {self.max_bytes:,} bytes. Nothing was kept. "
                "Split it into smaller files, or ask the review team how to send it."
            )
        if len(self.head) < filetypes.HEAD_BYTES:
            self.head += chunk[: filetypes.HEAD_BYTES - len(self.head)]
            if len(self.head) >= filetypes.HEAD_BYTES:
                self.check_early()
        return chunk

    def check_early(self) -> None:
        """Refuse an obviously disallowed type before storing the rest of it.

        Zip-based files are judged only with the whole file (in ``_finish``): from the
        head alone a package whose parts carry data descriptors (sizes after the data, as streaming
        writers make them) cannot be read, and would be refused as damaged.
        """
        if self.early is None:
            self.early = filetypes.detect(bytes(self.head))
            if not self.early.allowed and not filetypes.needs_whole_file(bytes(self.head)):
                raise TypeRefused(self.early.reason or "This type of file is not accepted.")

    def sync(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if chunk:
                yield self.take(chunk)
        self.check_early()

    async def asynchronous(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if chunk:
                yield self.take(chunk)
        self.check_early()


class BlobFile(io.RawIOBase):
    """A read-only, seekable view of a stored document's plaintext (for looking inside zips)."""

    def __init__(self, vault: Vault, key: DocumentKey, blob_id: str, size: int) -> None:
        self._vault, self._key, self._blob_id, self._size = vault, key, blob_id, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._size, self._position + len(buffer))
        if end <= self._position:
            return 0
        data = b"".join(self._vault.read(self._key, self._blob_id, start=self._position, end=end))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _finish(
    vault: Vault,
    target: UploadTarget,
    key: DocumentKey,
    blob: StoredBlob,
    gate: _Gate,
    expected_sha256: str | None,
    filename: str,
) -> StoredUpload:
    """Checks that need the whole file; on failure the blob is deleted before raising."""
    try:
        if expected_sha256 is not None and not hmac.compare_digest(
            blob.sha256, expected_sha256.strip().lower()
        ):
            raise ChecksumMismatch(
                "The file received does not match the SHA-256 you sent with it, so it was not "
                "kept. Send it again; if it fails again, check the file on your side."
            )
        if blob.size == 0:
            raise TypeRefused("The file is empty. Choose the file again and check it has content.")
        # The name only breaks a tie between allowed text types (CSV or plain text); content decides.
        file_type = filetypes.detect_named(
            bytes(gate.head),
            filename,
            open_container=lambda: io.BufferedReader(BlobFile(vault, key, blob.blob_id, blob.size)),
        )
        if not file_type.allowed:
            raise TypeRefused(file_type.reason or "This type of file is not accepted.")
    except BaseException:
        vault.destroy_document(blob.blob_id)
        raise
    return StoredUpload(blob=blob, wrapped_key=key.wrapped, file_type=file_type)


def store_upload(
    vault: Vault,
    target: UploadTarget,
    chunks: Iterable[bytes],
    *,
    max_bytes: int,
    expected_sha256: str | None = None,
    filename: str = "",
) -> StoredUpload:
    key = vault.issue_document_key(review=target.review.code, document_id=target.reference)
    gate = _Gate(max_bytes)
    blob = vault.write(key, gate.sync(chunks))
    return _finish(vault, target, key, blob, gate, expected_sha256, filename)


async def store_upload_async(
    vault: Vault,
    target: UploadTarget,
    chunks: AsyncIterable[bytes],
    *,
    max_bytes: int,
    expected_sha256: str | None = None,
    filename: str = "",
) -> StoredUpload:
    key = vault.issue_document_key(review=target.review.code, document_id=target.reference)
    gate = _Gate(max_bytes)
    blob = await vault.write_async(key, gate.asynchronous(chunks))
    return await anyio.to_thread.run_sync(
        _finish, vault, target, key, blob, gate, expected_sha256, filename
    )


def record_upload(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    target: UploadTarget,
    stored: StoredUpload,
    *,
    filename: str,
    vault: Vault,
) -> Document:
    """The document row and its audit event, in the caller's transaction (the caller commits)."""
    assert target.review.id is not None and acting.user_id is not None
    key = DocumentKey(
        review=target.review.code, document_id=target.reference, wrapped=stored.wrapped_key
    )
    document = Document(
        reference=target.reference,
        review_id=target.review.id,
        organisation_id=target.organisation_id,
        request_id=target.request.id if target.request else None,
        case_id=target.case.id if target.case else None,
        kind=target.kind,
        state=DocumentState.pending_scan,
        size=stored.blob.size,
        sha256=stored.blob.sha256,
        content_type=stored.file_type.media_type,
        wrapped_key=stored.wrapped_key,
        filename_sealed=vault.seal_secret(key, safe_filename(filename).encode()),
        blob_id=stored.blob.blob_id,
        uploaded_by=acting.user_id,
        uploaded_at=acting.now,
        scan_attempts=0,
        next_scan_at=acting.now,
    )
    db.add(document)
    db.flush()
    _audit_document(
        db,
        auditor,
        acting,
        Action.DOCUMENT_UPLOADED,
        document,
        target.review,
        {
            "size_bytes": document.size,
            "content_type": document.content_type,
            # The pseudonymous case, so that a subject-access search finds the upload.
            **({"case": target.case.reference} if target.case else {}),
        },
    )
    return document


def audit_refused_upload(
    db: Session, auditor: Auditor, acting: Acting, target: UploadTarget, reason: str
) -> None:
    """An upload refused for its content (type, size, checksum) is audited; nothing was kept."""
    auditor.record_as(
        db,
        acting,
        Action.DOCUMENT_REJECTED,
        outcome=Outcome.FAILURE,
        review=target.review.code,
        details={"reason": reason},
    )


# --- Reading --------------------------------------------------------------------------------


def _refuse(
    db: Session, acting: Acting, attempt: Action, document: Document, review: Review, reason: str
) -> None:
    """Audit a refusal of a document that exists (portal.refusals); the caller then raises."""
    refusals.record(
        db,
        acting,
        attempt,
        target=Target(TargetKind.DOCUMENT, document.reference),
        review=review.code,
        document=document.reference,
        reason=reason,
    )


def _lookup(db: Session, typed_reference: str) -> tuple[Document, Review] | None:
    reference = parse_reference(typed_reference, "document reference")
    document = db.exec(select(Document).where(Document.reference == reference)).first()
    review = db.get(Review, document.review_id) if document else None
    if document is None or review is None:
        return None
    return document, review


def find_document(
    db: Session,
    acting: Acting,
    typed_reference: str,
    *,
    keep_destroyed: bool = False,
    attempt: Action = Action.DOCUMENT_METADATA_VIEWED,
) -> tuple[Document, Review]:
    """A document the caller may see (metadata), or NotFound; a mistyped reference is invalid.

    A destroyed document is Gone, unless ``keep_destroyed`` (its receipt outlives it). A refusal
    of a document that exists is audited as a denied ``attempt``."""
    found = _lookup(db, typed_reference)
    if found is None:
        raise NotFound()
    document, review = found
    if acting.caller is not None and not policy.can_see_document(
        db, acting.caller, document, review
    ):
        reason = policy.why_not_document(db, acting.caller, document, review)
        _refuse(db, acting, attempt, document, review, reason)
        raise NotFound()
    if document.state is DocumentState.destroyed and not keep_destroyed:
        # After the access check: only those who could see it learn that it existed.
        destroyed = as_utc(document.destroyed_at or document.uploaded_at)
        raise Gone(
            f"Document {document.reference} was destroyed on {destroyed:%d %B %Y} "
            f"({destroyed.date().isoformat()}) at the end of its review; its record remains in "
            "the audit log and on the review's destruction certificate."
        )
    return document, review


def audit_role_refusal(db: Session, acting: Acting, typed_reference: str, attempt: Action) -> None:
    """A route refused the caller's role (portal.web.access): audit it if the document exists.

    Never raises for a reference that is not one or does not exist: the route answers its 404."""
    try:
        found = _lookup(db, typed_reference)
    except InvalidReference:
        return
    if found is not None:
        _refuse(db, acting, attempt, found[0], found[1], "role")


def view_document(
    db: Session, auditor: Auditor, acting: Acting, typed_reference: str
) -> tuple[Document, Review]:
    """Metadata, audited as viewed (SPEC §5). The caller commits."""
    document, review = find_document(db, acting, typed_reference)
    _audit_document(db, auditor, acting, Action.DOCUMENT_METADATA_VIEWED, document, review)
    return document, review


def file_name(vault: Vault, document: Document, review: Review) -> str | None:
    """The original file name, or None when there is none or its review key was destroyed."""
    if document.wrapped_key is None or document.filename_sealed is None:
        return None
    try:
        return vault.open_secret(key_of(document, review), document.filename_sealed).decode()
    except KeyDestroyed:
        # A database restored from before the review's destruction still holds the sealed name;
        # the key service no longer holds the key that opens it.
        return None


def _key_destroyed(document: Document, review: Review) -> Gone:
    return Gone(
        f"Document {document.reference} cannot be opened: the key of review {review.code} was "
        "destroyed, so its content is beyond use. Its record remains in the audit log."
    )


def not_downloadable(document: Document) -> Refused:
    """Why a document its team may see cannot be downloaded: not scanned yet, rejected by the scan
    (with the finding), or withdrawn. Only for callers who may see the document's metadata, which
    shows the same (policy.why_not_content answers ``not_available`` to no one else)."""
    reference = document.reference
    if document.state is DocumentState.rejected:
        finding = document.scan_verdict or document.rejected_reason or "refused"
        if document.scan_signature:
            finding += f" ({document.scan_signature})"
        return Refused(
            f"Document {reference} was rejected: {finding}. Its content was destroyed when it "
            "was rejected, so it can never be downloaded; ask the sender for a clean copy.",
            code="rejected",
        )
    if document.state is DocumentState.withdrawn:
        return Refused(
            f"Document {reference} was withdrawn by its sender and its content destroyed, so it "
            "can no longer be downloaded.",
            code="withdrawn",
        )
    return Refused(
        f"Document {reference} has not been scanned yet: it can be downloaded once the malware "
        "scan has found it clean, usually within minutes. Try again later.",
        code="not_available",
    )


def open_content(
    db: Session, auditor: Auditor, acting: Acting, vault: Vault, typed_reference: str
) -> tuple[Document, Review, Iterator[bytes]]:
    """The plaintext of an available document for a member of its review team.

    The download event is committed before this returns: no byte leaves unless it is recorded.
    """
    document, review = find_document(
        db, acting, typed_reference, attempt=Action.DOCUMENT_DOWNLOADED
    )
    if document.state is DocumentState.destroyed:
        raise Gone(
            f"Document {document.reference} was destroyed on "
            f"{document.destroyed_at:%d %B %Y} at the end of its review; its record remains."
        )
    caller = acting.caller
    if caller is not None and not policy.can_read_content(db, caller, document, review):
        reason = policy.why_not_content(db, caller, document, review)
        _refuse(db, acting, Action.DOCUMENT_DOWNLOADED, document, review, reason)
        if reason == "not_available":
            raise not_downloadable(document)
        raise NotFound()
    assert document.wrapped_key is not None and document.blob_id is not None
    # Opening reads the header: a bad blob fails here, before the download is recorded.
    try:
        stream = vault.read(key_of(document, review), document.blob_id)
    except KeyDestroyed:
        # Rows from before the review's destruction (a restored database backup): the key
        # service destroyed the review key, which puts every copy of the content beyond use.
        raise _key_destroyed(document, review) from None
    _audit_document(
        db,
        auditor,
        acting,
        Action.DOCUMENT_DOWNLOADED,
        document,
        review,
        {"size_bytes": document.size},
    )
    db.commit()
    return document, review, stream


@dataclass(frozen=True)
class DocumentFilter:
    organisation_id: int | None = None
    request_id: int | None = None
    case_id: int | None = None
    state: DocumentState | None = None
    kind: DocumentKind | None = None


def list_documents(
    db: Session,
    acting: Acting,
    review: Review,
    where: DocumentFilter,
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[Document], int | None]:
    """Newest first, ``limit`` at a time; returns the page and the cursor for the next one."""
    query = select(Document).where(Document.review_id == review.id)
    caller = acting.caller
    if caller is not None:
        if caller.role.value == "uploader":
            query = query.where(
                Document.organisation_id == caller.organisation_id,
                Document.kind == DocumentKind.record,
            )
        elif not (caller.role.value == "dpo" or policy.is_team_member(db, caller, review)):
            return [], None
    for column, value in (
        (Document.organisation_id, where.organisation_id),
        (Document.request_id, where.request_id),
        (Document.case_id, where.case_id),
        (Document.state, where.state),
        (Document.kind, where.kind),
    ):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(col(Document.id) < before_id)
    rows = list(db.exec(query.order_by(col(Document.id).desc()).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


# --- Withdrawal -------------------------------------------------------------------------------


def withdraw_document(
    db: Session,
    auditor: Auditor,
    acting: Acting,
    vault: Vault,
    typed_reference: str,
    reason: str,
) -> Document:
    """Withdraw a document sent in error: its content is destroyed at once, its record kept."""
    try:
        why = WithdrawReason(reason)
    except ValueError:
        choices = ", ".join(r.value for r in WithdrawReason)
        raise Refused(
            f"Choose a reason for withdrawing: one of {choices}.", code="invalid_reason"
        ) from None
    document, review = find_document(db, acting, typed_reference, attempt=Action.DOCUMENT_WITHDRAWN)
    caller = acting.caller
    if caller is not None and not policy.can_withdraw(db, caller, document, review):
        if document.state in (
            DocumentState.withdrawn,
            DocumentState.rejected,
            DocumentState.destroyed,
        ):
            raise Refused(
                f"Document {document.reference} is already {document.state.value}.",
                code="invalid_state",
            )
        _refuse(db, acting, Action.DOCUMENT_WITHDRAWN, document, review, "not_allowed")
        raise NotFound()
    blob_id = document.blob_id
    # Crypto-shredding: the key goes in this transaction; the blob, now unreadable, right after.
    document.state = DocumentState.withdrawn
    document.withdrawn_at = acting.now
    document.withdrawn_by = acting.user_id
    document.withdraw_reason = why.value
    document.wrapped_key = None
    document.filename_sealed = None
    document.blob_id = None
    document.next_scan_at = None
    db.add(document)
    _audit_document(
        db, auditor, acting, Action.DOCUMENT_WITHDRAWN, document, review, {"reason": why.value}
    )
    db.commit()
    # If this fails the sweep removes the blob later; without its key it is unreadable already.
    vault.destroy_document(blob_id)
    return document
