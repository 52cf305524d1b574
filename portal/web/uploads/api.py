"""``/api/v1/uploads``: a tus 1.0 server (core, creation, termination, checksum).

Thin handlers over ``portal.uploads.sessions``. Every response carries ``Tus-Resumable`` (added
around each route, so the error responses made in portal.web.app carry it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.accounts.models import Role
from portal.exchange import documents
from portal.exchange.acting import Acting
from portal.exchange.errors import NotFound, TooLarge
from portal.exchange.serialize import document_json
from portal.text import is_whole_number
from portal.uploads import protocol, sessions
from portal.uploads.errors import (
    BadTusRequest,
    OffsetConflict,
    PartChecksumMismatch,
    WrongContentType,
)
from portal.uploads.models import UploadState
from portal.uploads.protocol import TUS_VERSION, PartChecksum
from portal.web.access import RuledRoute, api_roles, route
from portal.web.bodies import STREAMED
from portal.web.requests import acting_of, runtime_of, scan_after
from storage import StoredBlob

BASE = "/api/v1/uploads"
UPLOADERS = api_roles(Role.uploader, Role.inspector, Role.lead)


def discover(request: Request) -> Response:
    """OPTIONS: what this server supports (no Tus-Resumable needed, per tus)."""
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": protocol.EXTENSIONS,
            "Tus-Max-Size": str(runtime_of(request).settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(protocol.CHECKSUMS),
        },
    )


def create(request: Request) -> Response:
    protocol.require_version(request.headers)
    headers = request.headers
    if "upload-defer-length" in headers:
        raise BadTusRequest(
            "Uploads of unknown length are not supported: send Upload-Length with the file's size."
        )
    length = protocol.whole_number(headers.get("upload-length"), "Upload-Length")
    if headers.get("content-length", "0").strip() not in ("", "0"):
        raise BadTusRequest("Create the upload with an empty body, then send the bytes with PATCH.")
    metadata = protocol.parse_metadata(headers.get("upload-metadata"))
    runtime = runtime_of(request)
    with Session(runtime.engine) as db:
        upload = sessions.create_upload(
            db,
            runtime.vault,
            acting_of(request),
            metadata=metadata,
            length=length,
            max_bytes=runtime.settings.max_upload_bytes,
        )
        db.commit()
        location = f"{BASE}/{upload.id}"
    return Response(status_code=201, headers={"Location": location})


def status(request: Request) -> Response:
    """HEAD: where the upload stands (tus). GET: the same as JSON, with the document once done."""
    runtime = runtime_of(request)
    acting = acting_of(request)
    if request.method == "HEAD":
        protocol.require_version(request.headers)
    with Session(runtime.engine) as db:
        upload = sessions.find_upload(db, acting, request.path_params["upload_id"])
        headers = {
            "Upload-Offset": str(upload.received),
            "Upload-Length": str(upload.length),
            "Cache-Control": "no-store",
        }
        found = sessions.document_of(db, upload)
        if found is not None:
            headers["Upload-Document-Reference"] = found[0].reference
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        body: dict[str, Any] = {
            "offset": upload.received,
            "length": upload.length,
            "state": "complete" if upload.state is UploadState.complete else "receiving",
            "document": _document(db, acting, runtime.vault, found[0]) if found else None,
        }
    return JSONResponse(body, headers=headers)


def _document(db: Session, acting: Acting, vault: Any, document: Any) -> dict[str, Any] | None:
    try:  # the caller's rights are checked as for any document they look at
        document, review = documents.find_document(db, acting, document.reference)
    except NotFound:
        return None
    return document_json(db, acting, vault, document, review)


class _PartBody:
    """The PATCH body as it arrives: counted (never past the upload's length), hashed for
    ``Upload-Checksum``, and cut short cleanly if the client goes away."""

    def __init__(self, request: Request, limit: int, checksum: PartChecksum | None) -> None:
        self._request = request
        self.limit = limit
        self.size = 0
        self.interrupted = False
        self.hash = checksum.new_hash() if checksum is not None else None

    def verified(self, checksum: PartChecksum) -> bool:
        # A PATCH cut short cannot match a checksum of the whole PATCH: it is discarded too.
        return (
            not self.interrupted and self.hash is not None and checksum.matches(self.hash.digest())
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._request.stream():
                if not chunk:
                    continue
                self.size += len(chunk)
                if self.size > self.limit:
                    raise TooLarge(
                        "More bytes were sent than the Upload-Length announced when the upload "
                        "was created. These bytes were discarded."
                    )
                if self.hash is not None:
                    self.hash.update(chunk)
                yield chunk
        except ClientDisconnect:
            # What arrived is kept as a part (unless a checksum covers the whole PATCH): the
            # client asks HEAD where the upload stands and continues from there.
            self.interrupted = True


async def _first_and_rest(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes] | None:
    """None for an empty body (no blob for nothing), else the whole stream again."""
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        return None

    async def replay() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return replay()


async def append(request: Request) -> Response:
    """PATCH: the next bytes of the upload, from ``Upload-Offset``."""
    protocol.require_version(request.headers)
    headers = request.headers
    if headers.get("content-type", "").split(";")[0].strip().lower() != protocol.OFFSET_STREAM:
        raise WrongContentType()
    offset = protocol.whole_number(headers.get("upload-offset"), "Upload-Offset")
    checksum = protocol.parse_checksum(headers.get("upload-checksum"))
    runtime = runtime_of(request)
    acting = acting_of(request)
    upload_id = request.path_params["upload_id"]

    def plan() -> sessions.PartPlan:
        with Session(runtime.engine) as db:
            return sessions.plan_part(db, runtime.vault, acting, upload_id, offset=offset)

    part = await run_in_threadpool(plan)
    if part.document_reference is not None:  # finished already: say so again (idempotent)
        return _offset_response(part.start, part.document_reference)
    declared = headers.get("content-length", "").strip()
    if is_whole_number(declared) and int(declared) > part.remaining:
        raise TooLarge(
            f"This upload has {part.remaining:,} bytes still to come, fewer than this request's "
            "body. Nothing was kept."
        )
    if part.key is None:
        # Every byte is in but no document was made (a failure, or a process that died while
        # making it): this request takes the completion over.
        return await _finish(request, acting, part, retry=True)
    body = _PartBody(request, part.remaining, checksum)
    stream = await _first_and_rest(body.chunks())
    if stream is None:
        return _offset_response(part.start, None)
    blob = await runtime.vault.write_async(part.key, stream)
    if checksum is not None and not body.verified(checksum):
        await run_in_threadpool(runtime.vault.destroy_document, blob.blob_id)
        raise PartChecksumMismatch()
    new_offset = await run_in_threadpool(_commit, request, acting, part, blob)
    if new_offset < part.length:
        return _offset_response(new_offset, None)
    return await _finish(request, acting, part, retry=False)


def _commit(request: Request, acting: Acting, part: sessions.PartPlan, blob: StoredBlob) -> int:
    runtime = runtime_of(request)
    try:
        with Session(runtime.engine) as db:
            new_offset = sessions.commit_part(db, acting, part, blob)
            db.commit()
            return new_offset
    except BaseException:
        runtime.vault.destroy_document(blob.blob_id)
        raise


async def _finish(
    request: Request, acting: Acting, part: sessions.PartPlan, *, retry: bool
) -> Response:
    runtime = runtime_of(request)
    upload_id = part.upload_id

    def work() -> str:
        if retry:
            with Session(runtime.engine) as db:
                claimed = sessions.claim_completion(db, acting, upload_id, owner=part.owner)
                db.commit()
            if not claimed:
                raise OffsetConflict(
                    "This upload is being turned into a document. Ask for its state (GET) in a "
                    "moment."
                )
        return sessions.complete_upload(
            runtime.engine,
            runtime.vault,
            runtime.auditor,
            acting,
            upload_id,
            max_bytes=runtime.settings.max_upload_bytes,
            owner=part.owner,
            clock=runtime.clock,
        )

    reference = await run_in_threadpool(work)
    response = _offset_response(part.length, reference)
    response.background = scan_after(request, reference)
    return response


def _offset_response(offset: int, reference: str | None) -> Response:
    headers = {"Upload-Offset": str(offset)}
    if reference is not None:
        headers["Upload-Document-Reference"] = reference
    return Response(status_code=204, headers=headers)


def terminate(request: Request) -> Response:
    protocol.require_version(request.headers)
    runtime = runtime_of(request)
    sessions.terminate_upload(
        runtime.engine, runtime.vault, acting_of(request), request.path_params["upload_id"]
    )
    return Response(status_code=204)


def with_tus_headers(app: ASGIApp) -> ASGIApp:
    """``Tus-Resumable`` on every response of a route, errors included (tus core)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Tus-Resumable"] = TUS_VERSION
                if message["status"] == 412:
                    headers["Tus-Version"] = TUS_VERSION
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def tus_route(path: str, handler: Any, *, methods: list[str]) -> RuledRoute:
    # Each PATCH is counted against its upload's Upload-Length (_PartBody), itself at most
    # PORTAL_MAX_UPLOAD_BYTES; the other requests have no body.
    built = route(path, handler, rule=UPLOADERS, methods=methods, body=STREAMED)
    built.app = with_tus_headers(built.app)
    return built


ROUTES = [
    tus_route(BASE, discover, methods=["OPTIONS"]),
    tus_route(BASE, create, methods=["POST"]),
    tus_route(BASE + "/{upload_id}", status, methods=["GET", "HEAD"]),
    tus_route(BASE + "/{upload_id}", append, methods=["PATCH"]),
    tus_route(BASE + "/{upload_id}", terminate, methods=["DELETE"]),
]
