"""The exchange's JSON API under /api/v1: thin handlers over the services in this package."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from functools import partial
from typing import Any
from urllib.parse import quote

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from portal import filetypes
from portal.accounts.models import Role, User
from portal.audit_vocabulary import Action
from portal.destruction.receipts import receipt_of
from portal.exchange import documents, reviews
from portal.exchange.acting import Acting
from portal.exchange.documents import DocumentFilter
from portal.exchange.errors import NotFound, Refused, WrongBodyType
from portal.exchange.models import Document, DocumentKind, DocumentState, Review
from portal.exchange.serialize import (
    case_json,
    document_json,
    request_json,
    review_json,
)
from portal.models import parse_id
from portal.text import is_whole_number
from portal.web.access import ANY_API_USER, api_roles, route
from portal.web.bodies import STREAMED
from portal.web.jsonbody import NO_FIELDS, date_field, int_field, json_body, text_field
from portal.web.requests import acting_of, ingest_of, runtime_of, scan_after
from storage.handover import read_ahead

# Bytes of a document read and opened ahead of the response (per download: memory stays flat).
DOWNLOAD_READ_AHEAD = 2 * 1024 * 1024


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


# --- Reviews ----------------------------------------------------------------------------------


def list_reviews(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        vault = runtime_of(request).vault
        items = [review_json(vault, r) for r in reviews.list_reviews(db, acting)]
    return JSONResponse({"items": items, "next": None})


REVIEW_FIELDS = frozenset(
    {
        "code",
        "title",
        "legal_basis",
        "opens_on",
        "closes_on",
        "retention_days",
        "lead",
        "organisations",
    }
)
CHANGE_FIELDS = {
    "open": NO_FIELDS,
    "close": NO_FIELDS,
    "organisations": frozenset({"organisation"}),
    "members": frozenset({"email"}),
}
REQUEST_FIELDS = frozenset({"organisation", "title", "instructions", "due_on", "expected"})
WITHDRAW_FIELDS = frozenset({"reason"})


async def create_review(request: Request) -> Response:
    data = await json_body(request, fields=REVIEW_FIELDS)

    def work() -> dict[str, Any]:
        runtime = runtime_of(request)
        acting = acting_of(request)
        plan = reviews.ReviewPlan(
            code=text_field(data, "code"),
            title=text_field(data, "title"),
            legal_basis=text_field(data, "legal_basis"),
            opens_on=date_field(data, "opens_on"),
            closes_on=date_field(data, "closes_on"),
            retention_days=int_field(data, "retention_days"),
        )
        with _session(request) as db:
            lead_email = text_field(data, "lead", required=False)
            own = db.get(User, acting.user_id)
            if (
                lead_email
                and acting.caller is not None
                and acting.caller.role is Role.lead
                and (own is None or lead_email.strip().lower() != own.email)
            ):
                # A lead leads their own reviews: refused before the address is looked up, so
                # that the answer is the same whether or not it has an account (issue 18).
                raise Refused(reviews.LEADS_OWN_REVIEWS, code="invalid_lead")
            lead = reviews.user_by_email(db, lead_email) if lead_email else own
            assert lead is not None
            review = reviews.create_review(
                db,
                runtime.auditor,
                acting,
                plan,
                lead=lead,
                vault=runtime.vault,
            )
            for code in data.get("organisations", []) or []:
                reviews.add_organisation(
                    db, runtime.auditor, acting, review, reviews.organisation_by_code(db, str(code))
                )
            db.commit()
            return review_json(runtime.vault, review)

    return JSONResponse(await run_in_threadpool(work), status_code=201)


def get_review(request: Request) -> Response:
    with _session(request) as db:
        review = reviews.find_review(db, acting_of(request), request.path_params["code"])
        return JSONResponse(review_json(runtime_of(request).vault, review))


async def change_review(request: Request) -> Response:
    """POST /reviews/{code}/{action}: open, close, organisations, members."""
    action = request.path_params["action"]
    fields = CHANGE_FIELDS.get(action, NO_FIELDS)
    data = await json_body(request, fields=fields, optional=not fields)

    def work() -> dict[str, Any]:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            review = reviews.managed_review(db, acting, request.path_params["code"])
            if action == "open":
                reviews.open_review(db, runtime.auditor, acting, review)
            elif action == "close":
                reviews.close_review(db, runtime.auditor, acting, review)
            elif action == "organisations":
                org = reviews.organisation_by_code(db, text_field(data, "organisation"))
                reviews.add_organisation(db, runtime.auditor, acting, review, org)
            elif action == "members":
                user = reviews.team_candidate(db, text_field(data, "email"))
                reviews.add_member(db, runtime.auditor, acting, review, user)
            else:
                raise NotFound()
            db.commit()
            return review_json(runtime.vault, review)

    return JSONResponse(await run_in_threadpool(work))


# --- Requests and cases -----------------------------------------------------------------------


def list_requests(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        review = reviews.find_review(db, acting, request.path_params["code"])
        items = [
            request_json(db, runtime.vault, review, r)
            for r in reviews.list_requests(db, acting, review)
        ]
    return JSONResponse({"items": items, "next": None})


async def create_request(request: Request) -> Response:
    data = await json_body(request, fields=REQUEST_FIELDS)

    def work() -> dict[str, Any]:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            review = reviews.managed_review(db, acting, request.path_params["code"])
            created = reviews.create_request(
                db,
                runtime.auditor,
                acting,
                runtime.vault,
                review,
                organisation=reviews.organisation_by_code(db, text_field(data, "organisation")),
                title=text_field(data, "title"),
                instructions=text_field(data, "instructions", required=False),
                due_on=date_field(data, "due_on"),
                expected_items=int_field(data, "expected", default=0),
            )
            db.commit()
            return request_json(db, runtime.vault, review, created)

    return JSONResponse(await run_in_threadpool(work), status_code=201)


def list_cases(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        review = reviews.find_review(db, acting, request.path_params["code"])
        items = [case_json(c) for c in reviews.list_cases(db, acting, review)]
    return JSONResponse({"items": items, "next": None})


async def create_case(request: Request) -> Response:
    await json_body(request, fields=NO_FIELDS, optional=True)  # no body, or one with no field

    def work() -> dict[str, Any]:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            review = reviews.find_review(db, acting, request.path_params["code"])
            case = reviews.issue_case(db, runtime.auditor, acting, review)
            db.commit()
            return case_json(case)

    return JSONResponse(await run_in_threadpool(work), status_code=201)


# --- Documents --------------------------------------------------------------------------------


def upload_filename(content_disposition: str) -> str | None:
    """The file name from ``Content-Disposition`` (``filename*`` per RFC 8187, else ``filename``)."""
    if not content_disposition or len(content_disposition) > 2000:
        return None
    message = EmailMessage()
    try:
        message["content-disposition"] = content_disposition
        name = message.get_filename()
    except (ValueError, TypeError, IndexError):
        return None
    return name if name else None


def _described(request: Request, acting: Acting, document: Document, review: Review) -> Any:
    """A new document as the API shows it, read back as it was committed."""
    runtime = runtime_of(request)
    with _session(request) as db:
        committed = db.get(Document, document.id)
        assert committed is not None
        return document_json(db, acting, runtime.vault, committed, review)


async def upload_document(request: Request) -> Response:
    acting = acting_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # No Content-Type at all is taken as application/octet-stream (RFC 9110 §8.3).
    if content_type and content_type != "application/octet-stream":
        raise WrongBodyType(
            "Send the file's bytes as the body with Content-Type: application/octet-stream "
            "(curl: --data-binary @FILE -H 'Content-Type: application/octet-stream'). "
            "Nothing was kept."
        )
    filename = upload_filename(request.headers.get("content-disposition", ""))
    if filename is None:
        raise Refused(
            "Send the file's name in a Content-Disposition header, e.g. "
            "Content-Disposition: attachment; filename*=UTF-8''minutes.pdf",
            code="missing_filename",
        )
    params = request.query_params
    ingest = ingest_of(request)
    target = await run_in_threadpool(
        partial(
            ingest.prepare,
            acting,
            review_code=request.path_params["code"],
            request_id=params.get("request"),
            case_reference=params.get("case"),
        )
    )
    declared = request.headers.get("content-length", "")
    document = await ingest.receive(
        acting,
        target,
        request.stream(),
        filename=filename,
        expected_sha256=params.get("sha256") or None,
        declared_length=int(declared) if is_whole_number(declared) else None,
    )
    body = await run_in_threadpool(_described, request, acting, document, target.review)
    return JSONResponse(
        body,
        status_code=201,
        headers={"Location": f"/api/v1/documents/{body['reference']}"},
        background=scan_after(request, body["reference"]),
    )


def list_documents(request: Request) -> Response:
    runtime = runtime_of(request)
    acting = acting_of(request)
    params = request.query_params
    with _session(request) as db:
        review = reviews.find_review(db, acting, request.path_params["code"])
        where = DocumentFilter(
            organisation_id=(
                reviews.filter_organisation(db, acting, review, params["organisation"])
                if params.get("organisation")
                else None
            ),
            request_id=_query_int(params.get("request")),
            case_id=(
                reviews.find_case(db, acting, review, params["case"]).id
                if params.get("case")
                else None
            ),
            state=_query_enum(DocumentState, params.get("state")),
            kind=_query_enum(DocumentKind, params.get("kind")),
        )
        limit = min(_query_int(params.get("limit")) or 50, 200)
        page, cursor = documents.list_documents(
            db, acting, review, where, before_id=_query_int(params.get("cursor")), limit=limit
        )
        items = [document_json(db, acting, runtime.vault, d, review) for d in page]
    return JSONResponse({"items": items, "next": str(cursor) if cursor else None})


def _query_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    number = parse_id(value)
    if number is None:
        raise Refused(
            f"{value[:20]!r} is not a number that can be used here.", code="invalid_query"
        )
    return number


def _query_enum(kind: Any, value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise Refused(f"{value!r} is not one of {choices}.", code="invalid_query") from None


def get_document(request: Request) -> Response:
    runtime = runtime_of(request)
    acting = acting_of(request)
    with _session(request) as db:
        document, review = documents.view_document(
            db, runtime.auditor, acting, request.path_params["ref"]
        )
        body = document_json(db, acting, runtime.vault, document, review)
        db.commit()
    return JSONResponse(body)


def get_receipt(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        body, _, _ = receipt_of(db, acting, request.path_params["ref"])
        return JSONResponse(body)


def content_disposition(filename: str | None, media_type: str, reference: str) -> str:
    """``attachment`` with an ASCII fallback and the real name per RFC 6266 / RFC 8187.

    Both names end in the extension of the type the content was detected as, never the sender's
    (issue 18: text sent as ``run-me.bat`` is saved as ``run-me.txt``); see
    :func:`portal.filetypes.download_name`.
    """
    ascii_name = "".join(ch for ch in reference if ch.isalnum() or ch in "-_") or "document"
    value = f'attachment; filename="{filetypes.download_name(ascii_name, media_type)}"'
    if filename:
        saved = filetypes.download_name(documents.safe_filename(filename), media_type)
        value += "; filename*=UTF-8''" + quote(saved, safe="")
    return value


def content_refused(request: Request) -> None:
    """The content route refused the caller's role (uploaders, DPOs, administrators): audited
    as a denied download if the document exists (portal.web.access.RoleRefusal)."""
    with _session(request) as db:
        documents.audit_role_refusal(
            db, acting_of(request), request.path_params["ref"], Action.DOCUMENT_DOWNLOADED
        )


def download_document(request: Request) -> Response:
    runtime = runtime_of(request)
    acting = acting_of(request)
    with _session(request) as db:
        document, review, stream = documents.open_content(
            db, runtime.auditor, acting, runtime.vault, request.path_params["ref"]
        )
        name = documents.file_name(runtime.vault, document, review)
    digest = base64.b64encode(bytes.fromhex(document.sha256)).decode()
    return StreamingResponse(
        read_ahead(stream, limit=DOWNLOAD_READ_AHEAD),
        media_type=document.content_type,
        headers={
            "Content-Disposition": content_disposition(
                name, document.content_type, document.reference
            ),
            "Content-Length": str(document.size),
            "Repr-Digest": f"sha-256=:{digest}:",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def withdraw(request: Request) -> Response:
    data = await json_body(request, fields=WITHDRAW_FIELDS)

    def work() -> dict[str, Any]:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            document = documents.withdraw_document(
                db,
                runtime.auditor,
                acting,
                runtime.vault,
                request.path_params["ref"],
                text_field(data, "reason"),
            )
            review = db.get(Review, document.review_id)
            assert review is not None
            return document_json(db, acting, runtime.vault, document, review)

    return JSONResponse(await run_in_threadpool(work))


LEADS = api_roles(Role.lead, Role.admin)

ROUTES = [
    route("/api/v1/reviews", list_reviews, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/reviews", create_review, rule=LEADS, methods=["POST"]),
    route("/api/v1/reviews/{code}", get_review, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/reviews/{code}/requests", list_requests, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/reviews/{code}/requests", create_request, rule=LEADS, methods=["POST"]),
    route("/api/v1/reviews/{code}/cases", list_cases, rule=ANY_API_USER, methods=["GET"]),
    route(
        "/api/v1/reviews/{code}/cases", create_case, rule=api_roles(Role.uploader), methods=["POST"]
    ),
    route("/api/v1/reviews/{code}/documents", list_documents, rule=ANY_API_USER, methods=["GET"]),
    route(
        "/api/v1/reviews/{code}/documents",
        upload_document,
        rule=api_roles(Role.uploader, Role.inspector, Role.lead),
        methods=["POST"],
        body=STREAMED,  # counted against PORTAL_MAX_UPLOAD_BYTES by receive_document
    ),
    route("/api/v1/reviews/{code}/{action}", change_review, rule=LEADS, methods=["POST"]),
    route("/api/v1/documents/{ref}", get_document, rule=ANY_API_USER, methods=["GET"]),
    route("/api/v1/documents/{ref}/receipt", get_receipt, rule=ANY_API_USER, methods=["GET"]),
    route(
        "/api/v1/documents/{ref}/content",
        download_document,
        rule=api_roles(Role.inspector, Role.lead),
        methods=["GET"],
        on_role_refusal=content_refused,
        head=False,
    ),
    route(
        "/api/v1/documents/{ref}/withdraw",
        withdraw,
        rule=api_roles(Role.uploader, Role.inspector, Role.lead),
        methods=["POST"],
    ),
]
