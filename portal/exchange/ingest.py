"""Ingest: bytes become a document. One service for every way in; no HTTP.

The JSON API's upload, the upload form (pages) and tus (``portal.uploads``, which the command line's
``portal upload`` speaks) all go through here, so that a document is made, refused and audited
the same way whichever door it came in by:

  1. ``prepare``: may the caller upload into this review (and request, and case) now?
     (``documents.prepare_upload``; a refusal here is a plain refusal, nothing was sent yet);
  2. ``receive``: stream → size limit → type check → hash and seal → blob
     (``documents.store_upload_async``); a refusal of the content (too large, a type not
     allowed, a checksum that does not match) is audited as ``document.rejected`` before it is
     raised, and nothing is kept;
  3. ``record``: the document row and its event in one transaction, only after the blob is
     durable; if that fails the blob is destroyed at once rather than left for the sweep;
  4. ``scan``: the scan to run once the caller has its answer (the worker retries whatever it
     does not finish).

tus keeps its parts in its own tables and makes the document at completion
(``portal.uploads.sessions.complete_upload``), inside its lease and in transactions that also
move its own state: it takes the same steps (``documents.store_upload`` and ``record_upload``),
audits a rejection with ``audit_rejection`` and has its scan from ``Ingest.scan``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from functools import partial

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session

from portal.auditing import Auditor
from portal.errors import Refusal
from portal.exchange import documents, scans
from portal.exchange.acting import Acting
from portal.exchange.documents import StoredUpload, UploadTarget
from portal.exchange.errors import TooLarge
from portal.exchange.models import Document
from portal.leases import Clock
from portal.scanning import Scanner
from storage import Vault


@dataclass(frozen=True)
class Ingest:
    """What ingest needs of the runtime: the stores, the log, the scanner and the limit."""

    engine: Engine
    vault: Vault
    auditor: Auditor
    scanner: Scanner
    clock: Clock
    max_bytes: int

    def prepare(
        self,
        acting: Acting,
        *,
        review_code: str,
        request_id: str | None = None,
        case_reference: str | None = None,
    ) -> UploadTarget:
        """May ``acting`` upload here now (and into this request and case)? The target, or the
        refusal (``NotFound`` for what the caller may not see, ``ReviewNotOpen``, ...)."""
        with Session(self.engine) as db:
            return documents.prepare_upload(
                db,
                acting,
                review_code=review_code,
                request_id=request_id or None,
                case_reference=case_reference or None,
            )

    async def receive(
        self,
        acting: Acting,
        target: UploadTarget,
        chunks: AsyncIterable[bytes],
        *,
        filename: str,
        expected_sha256: str | None,
        declared_length: int | None = None,
    ) -> Document:
        """Stream ``chunks`` into the vault, then record the document (``pending_scan``).

        ``declared_length``, when the caller announced one (a Content-Length that is the file's
        own), is refused at once if over the limit, before a byte is read."""
        if declared_length is not None and declared_length > self.max_bytes:
            refusal = TooLarge(
                f"The file is larger than the limit of {self.max_bytes:,} bytes. Nothing was kept."
            )
            await anyio.to_thread.run_sync(self.reject, acting, target, refusal)
            raise refusal
        try:
            stored = await documents.store_upload_async(
                self.vault,
                target,
                chunks,
                max_bytes=self.max_bytes,
                expected_sha256=expected_sha256,
                filename=filename,
            )
        except Refusal as refused:
            await anyio.to_thread.run_sync(self.reject, acting, target, refused)
            raise
        return await anyio.to_thread.run_sync(
            partial(self.record, acting, target, stored, filename=filename)
        )

    def reject(self, acting: Acting, target: UploadTarget, refusal: Refusal) -> None:
        """Audit an upload refused for its content, in a transaction of its own."""
        with Session(self.engine) as db:
            audit_rejection(db, self.auditor, acting, target, refusal)
            db.commit()

    def record(
        self, acting: Acting, target: UploadTarget, stored: StoredUpload, *, filename: str
    ) -> Document:
        """The document row and its event, committed; the blob is destroyed if they are not."""
        try:
            # expire_on_commit=False: the caller describes the document after this session.
            with Session(self.engine, expire_on_commit=False) as db:
                document = documents.record_upload(
                    db, self.auditor, acting, target, stored, filename=filename, vault=self.vault
                )
                db.commit()
                return document
        except BaseException:
            # The row did not commit: remove the blob now rather than leave it for the sweep.
            self.vault.destroy_document(stored.blob.blob_id)
            raise

    def scan(self, reference: str) -> Callable[[], object]:
        """The scan of a new document, to run once its uploader has the answer."""
        return partial(
            scans.scan_one,
            self.engine,
            self.vault,
            self.scanner,
            self.auditor,
            now=self.clock(),
            reference=reference,
            clock=self.clock,
        )


def audit_rejection(
    db: Session, auditor: Auditor, acting: Acting, target: UploadTarget, refusal: Refusal
) -> None:
    """``document.rejected`` for an upload refused for its content (size, type, checksum), in the
    caller's transaction: its code is the reason recorded; nothing was kept."""
    documents.audit_refused_upload(db, auditor, acting, target, refusal.code)
