"""The exchange's pages: home, reviews, the upload form, documents, receipts and withdrawal.

Thin handlers over the services of this package, as the JSON API is: parse, let the services decide
who may see what (anything the caller may not see is "not found"), call, render. Every page works
without JavaScript; static scripts add drag and drop, resumable uploads and live scan states.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from portal import policy
from portal.accounts.models import Role
from portal.destruction.models import Certificate
from portal.destruction.receipts import receipt_of
from portal.errors import NotAllowed, Refusal
from portal.exchange import documents, reviews
from portal.exchange.acting import Acting
from portal.exchange.asking import RequestView, view_request
from portal.exchange.documents import DocumentFilter, UploadTarget
from portal.exchange.errors import (
    ChecksumMismatch,
    InvalidReference,
    NotFound,
    Refused,
    TooLarge,
    TypeRefused,
)
from portal.exchange.models import (
    Document,
    DocumentKind,
    DocumentState,
    Review,
    ReviewOrganisation,
    ReviewState,
    WithdrawReason,
)
from portal.exchange.models import Request as RecordsRequest
from portal.exchange.multipart import FilePart, FormRefused, FormStream
from portal.exchange.serialize import document_json
from portal.models import Organisation
from portal.references import parse_reference
from portal.text import is_whole_number
from portal.web.access import ANY_USER, check_form_token, form_value, principal_of, roles, route
from portal.web.bodies import FORM_MAX_BYTES, STREAMED
from portal.web.errors import refusal_status
from portal.web.exchange import api
from portal.web.rendering import render
from portal.web.requests import acting_of, ingest_of, runtime_of, scan_after, submitted_form
from storage import Vault

PAGE_SIZE = 25
FORM_SLACK = 64 * 1024  # a form's own fields and boundaries, on top of the file

STATE_NAMES = {
    DocumentState.pending_scan: "Being checked",
    DocumentState.available: "Available",
    DocumentState.rejected: "Rejected",
    DocumentState.withdrawn: "Withdrawn",
    DocumentState.destroyed: "Destroyed",
}

WITHDRAW_REASONS = {
    WithdrawReason.wrong_file: "I sent the wrong file",
    WithdrawReason.wrong_case: "It is filed under the wrong case",
    WithdrawReason.wrong_review: "It belongs to a different review",
    WithdrawReason.duplicate: "It was sent twice",
    WithdrawReason.not_requested: "It was not asked for",
}


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


# --- Home -------------------------------------------------------------------------------------


def home(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        organisation = db.get(Organisation, principal_of(request).organisation_id)
        visible = reviews.list_reviews(db, acting)
        vault = runtime_of(request).vault
        # A destroyed review asks for nothing any more: its requests are closed, not outstanding.
        # (So is a request whose review key is gone while its row says otherwise: a database
        # restored from before the destruction.)
        asked = (
            [
                (review, view_request(vault, review, q), q)
                for review in visible
                if review.state is not ReviewState.destroyed
                for q in reviews.list_requests(db, acting, review)
            ]
            if principal_of(request).role is Role.uploader
            else []
        )
        requests = [
            (review, view, reviews.request_progress(db, q))
            for review, view, q in asked
            if not view.closed_by_destruction
        ]
        return render(
            request,
            "home.html",
            {"organisation": organisation, "reviews": visible, "requests": requests},
        )


def find_by_reference(request: Request) -> Response:
    """GET /documents?reference=...: the home page's "find a document" box."""
    typed = request.query_params.get("reference", "").strip()
    if not typed:
        raise Refused(
            "Enter the document's reference, as it is shown on its receipt.",
            code="missing_reference",
        )
    reference = parse_reference(typed[:100], "document reference")
    return RedirectResponse(f"/documents/{reference}", status_code=303)


# --- A review ---------------------------------------------------------------------------------


def review_page(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    params = request.query_params
    errors: dict[str, str] = {}
    with _session(request) as db:
        review = reviews.find_review(db, acting, request.path_params["code"])
        caller = acting.caller
        assert caller is not None
        organisations = _organisations(db, review)
        requests = [
            view_request(runtime.vault, review, q)
            for q in reviews.list_requests(db, acting, review)
        ]
        cases = reviews.list_cases(db, acting, review)
        # An uploader lists their own organisation's documents only: filtering by another one is
        # refused as a code that does not exist is (never "takes part" against "does not exist").
        filterable = (
            {i: o for i, o in organisations.items() if i == caller.organisation_id}
            if caller.role is Role.uploader
            else organisations
        )
        where, errors = _document_filter(db, acting, review, params, filterable, requests)
        page, cursor = (
            documents.list_documents(
                db, acting, review, where, before_id=_cursor(params.get("before")), limit=PAGE_SIZE
            )
            if not errors
            else ([], None)
        )
        rows = [(d, _row(db, acting, runtime.vault, d, review)) for d in page]
        created = params.get("case_created", "")
        context = {
            "review": review,
            "organisations": organisations,
            "requests": [(q, reviews.request_progress(db, q)) for q in requests],
            "cases": cases,
            "case_created": created if any(c.reference == created for c in cases) else None,
            "documents": rows,
            "filters": {k: params.get(k, "") for k in ("organisation", "request", "case", "state")},
            "organisation_options": [(o.slug, o.name) for o in organisations.values()],
            "organisation_names": {o.slug: o.name for o in organisations.values()},
            "request_options": [(q.id, _request_label(q)) for q in requests],
            "request_titles": {q.id: _request_label(q) for q in requests},
            "certificate": _certificate_reference(db, review),
            "state_options": [(s.value, STATE_NAMES[s]) for s in DocumentState if s in STATE_NAMES],
            "next_page": _page_link(review, params, cursor) if cursor else None,
            "first_page": _page_link(review, params, None) if params.get("before") else None,
            "can_upload": policy.upload_kind(db, caller, review) is not None,
            "can_issue_case": policy.can_issue_case(db, caller, review),
            "can_manage": policy.can_manage_review(db, caller, review),
            "sees_all_organisations": caller.role is not Role.uploader,
            "errors": errors,
        }
        return render(request, "exchange/review.html", context, status=400 if errors else 200)


def _organisations(db: Session, review: Review) -> dict[int, Organisation]:
    """The organisations the review asks for records, by name."""
    query = (
        select(Organisation)
        .join(ReviewOrganisation, col(ReviewOrganisation.organisation_id) == col(Organisation.id))
        .where(ReviewOrganisation.review_id == review.id)
        .order_by(col(Organisation.name))
    )
    return {o.id: o for o in db.exec(query).all() if o.id is not None}


def _document_filter(
    db: Session,
    acting: Acting,
    review: Review,
    params: Any,
    organisations: dict[int, Organisation],
    requests: list[Any],
) -> tuple[DocumentFilter, dict[str, str]]:
    """The list's filters from the query string; a bad value is an error next to its field."""
    errors: dict[str, str] = {}
    organisation_id = request_id = case_id = None
    state = None
    slug = params.get("organisation", "")
    if slug:
        organisation_id = next((i for i, o in organisations.items() if o.slug == slug), None)
        if organisation_id is None:
            errors["organisation"] = "Choose an organisation from the list."
    if params.get("request"):
        request_id = next((q.id for q in requests if str(q.id) == params["request"]), None)
        if request_id is None:
            errors["request"] = "Choose a request from the list."
    if params.get("case"):
        try:
            case_id = reviews.find_case(db, acting, review, params["case"][:100]).id
        except InvalidReference:
            errors["case"] = (
                "That is not a valid case reference: a character is wrong or two are swapped. "
                "Check it and type it again."
            )
        except NotFound:
            errors["case"] = "There is no case with that reference in this review."
    if params.get("state"):
        try:
            state = DocumentState(params["state"])
        except ValueError:
            errors["state"] = "Choose a state from the list."
    return DocumentFilter(organisation_id, request_id, case_id, state), errors


def _cursor(value: str | None) -> int | None:
    if not value or not is_whole_number(value) or len(value) > 18:
        return None
    return int(value)


def _page_link(review: Review, params: Any, cursor: int | None) -> str:
    kept = {k: params[k] for k in ("organisation", "request", "case", "state") if params.get(k)}
    if cursor is not None:
        kept["before"] = str(cursor)
    query = urlencode(kept)
    return f"/reviews/{review.code}" + (f"?{query}" if query else "") + "#documents"


def _row(
    db: Session, acting: Acting, vault: Vault, document: Document, review: Review
) -> dict[str, Any]:
    return document_json(db, acting, vault, document, review)


def create_case(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        review = reviews.find_review(db, acting, request.path_params["code"])
        case = reviews.issue_case(db, runtime.auditor, acting, review)
        db.commit()
        location = f"/reviews/{review.code}?case_created={case.reference}#cases"
    return RedirectResponse(location, status_code=303)


# --- Uploading --------------------------------------------------------------------------------


def _upload_context(request: Request, target: UploadTarget) -> dict[str, Any]:
    acting = acting_of(request)
    with _session(request) as db:
        review = target.review
        requests = (
            reviews.list_requests(db, acting, review) if target.kind is DocumentKind.record else []
        )
        vault = runtime_of(request).vault
        return {
            "review": review,
            "kind": target.kind.value,
            "request_options": [
                (q.id, _request_label(view_request(vault, review, q))) for q in requests
            ],
            "case_options": [
                (c.reference, c.reference) for c in reviews.list_cases(db, acting, review)
            ],
            "max_bytes": runtime_of(request).settings.max_upload_bytes,
        }


def _prepare(
    request: Request, request_id: str | None = None, case: str | None = None
) -> UploadTarget:
    """May the caller upload here now (and into this request and case)? The service decides."""
    return ingest_of(request).prepare(
        acting_of(request),
        review_code=request.path_params["code"],
        request_id=request_id,
        case_reference=case,
    )


def upload_page(request: Request) -> Response:
    target = _prepare(request)
    context = _upload_context(request, target)
    context["chosen"] = {
        "request": request.query_params.get("request", ""),
        "case": request.query_params.get("case", ""),
    }
    return render(request, "exchange/upload.html", context)


@dataclass
class FormUpload:
    """What the plain form sent: where to, and the document made, or the error to show."""

    chosen: dict[str, str]
    target: UploadTarget
    document: Document | None = None
    error: Refusal | None = None


async def _receive_form(request: Request) -> FormUpload:
    """Fields first, then the upload is authorised, then the file streams into the vault.

    The body is always read to its end (discarding what is not used, up to a limit), so that the
    browser sees the answer rather than a connection reset.
    """
    max_bytes = runtime_of(request).settings.max_upload_bytes
    form: FormStream | None = None
    file_part: FilePart | None = None
    error: Refusal | None = None
    try:
        form = FormStream(request.stream(), request.headers.get("content-type", ""))
        file_part = await form.read_fields()
    except FormRefused as refused:
        error = refused
    try:
        # The form's token is its first field: checked before anything is authorised or stored.
        await check_form_token(request, form.fields if form else {})
    except NotAllowed:
        if form is not None:
            await form.drain(FORM_MAX_BYTES)  # a little, so that a browser sees the answer
        raise
    fields = {**request.query_params, **(form.fields if form else {})}
    chosen = {"request": fields.get("request", "")[:20], "case": fields.get("case", "")[:100]}
    try:
        target = await run_in_threadpool(_prepare, request, chosen["request"], chosen["case"])
        upload = FormUpload(chosen, target, error=error)
        if upload.error is None and (form is None or file_part is None or not file_part.filename):
            upload.error = FormRefused("Choose a file to upload.")
        if upload.error is None and form is not None and file_part is not None:
            try:
                # The file's bytes out of the multipart body: Content-Length is not theirs.
                upload.document = await ingest_of(request).receive(
                    acting_of(request),
                    target,
                    form.file_chunks(),
                    filename=file_part.filename,
                    expected_sha256=None,
                )
            except (TooLarge, TypeRefused, ChecksumMismatch, FormRefused) as refused:
                upload.error = refused
        return upload
    finally:
        if form is not None:
            with contextlib.suppress(ClientDisconnect):  # gone already: nobody to answer
                await form.drain(limit=max_bytes + FORM_SLACK)


async def upload_submit(request: Request) -> Response:
    """The form without JavaScript: one file, streamed from the multipart body into the vault."""
    upload = await _receive_form(request)
    if upload.error is not None or upload.document is None:
        error = upload.error or FormRefused("Choose a file to upload.")
        context = {
            **await run_in_threadpool(_upload_context, request, upload.target),
            "chosen": upload.chosen,
            "errors": {"file": error.message},
        }
        return render(request, "exchange/upload.html", context, status=refusal_status(error))
    reference = upload.document.reference
    return RedirectResponse(
        f"/documents/{reference}/receipt",
        status_code=303,
        background=scan_after(request, reference),
    )


# --- A document -------------------------------------------------------------------------------


def document_page(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        document, review = documents.view_document(
            db, runtime.auditor, acting, request.path_params["ref"]
        )
        db.commit()
        caller = acting.caller
        assert caller is not None
        context = {
            "review": review,
            "document": _row(db, acting, runtime.vault, document, review),
            "record": document,
            "organisation": db.get(Organisation, document.organisation_id),
            "request_title": _request_title(db, runtime.vault, document, review),
            "can_download": policy.can_read_content(db, caller, document, review),
            "can_withdraw": policy.can_withdraw(db, caller, document, review),
            "withdraw_reason": _reason_label(document.withdraw_reason),
        }
        return render(request, "exchange/document.html", context)


def _request_title(db: Session, vault: Vault, document: Document, review: Review) -> str | None:
    found = db.get(RecordsRequest, document.request_id) if document.request_id else None
    return _request_label(view_request(vault, review, found)) if found else None


def _request_label(view: RequestView) -> str:
    """A request's name in lists: its title, or a sentence once destruction has erased it."""
    if view.title is None:
        return f"Request {view.id} (closed by destruction)"
    return view.title


def _certificate_reference(db: Session, review: Review) -> str | None:
    """The reference of the newest destruction certificate of a destroyed review, if any."""
    if review.state is not ReviewState.destroyed:
        return None
    return db.exec(
        select(Certificate.reference)
        .where(Certificate.review_id == review.id)
        .order_by(col(Certificate.id).desc())
    ).first()


def _reason_label(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return WITHDRAW_REASONS[WithdrawReason(value)]
    except ValueError:
        return value


def receipt_page(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        receipt, document, review = receipt_of(db, acting, request.path_params["ref"])
        return render(
            request,
            "exchange/receipt.html",
            {"document": document, "review": review, "receipt": receipt},
        )


def _withdrawable(request: Request, db: Session) -> tuple[Document, Review]:
    acting = acting_of(request)
    document, review = documents.find_document(db, acting, request.path_params["ref"])
    assert acting.caller is not None
    if not policy.can_withdraw(db, acting.caller, document, review):
        if document.state in (DocumentState.withdrawn, DocumentState.rejected):
            raise Refused(
                f"Document {document.reference} is already {document.state.value}: "
                "there is nothing left to withdraw.",
                code="invalid_state",
            )
        raise NotFound()
    return document, review


def withdraw_page(request: Request) -> Response:
    with _session(request) as db:
        document, review = _withdrawable(request, db)
        context = {"document": document, "review": review, "reasons": WITHDRAW_REASONS}
        return render(request, "exchange/withdraw.html", context)


def withdraw_submit(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    reason = form_value(submitted_form(request), "reason", 40)
    with _session(request) as db:
        document, review = _withdrawable(request, db)
        if reason not in {r.value for r in WithdrawReason}:
            context = {
                "document": document,
                "review": review,
                "reasons": WITHDRAW_REASONS,
                "errors": {"reason": "Choose why you are withdrawing this document."},
            }
            return render(request, "exchange/withdraw.html", context, status=400)
        reference = document.reference
        documents.withdraw_document(db, runtime.auditor, acting, runtime.vault, reference, reason)
    return RedirectResponse(f"/documents/{reference}", status_code=303)


UPLOADERS = roles(Role.uploader, Role.inspector, Role.lead)

ROUTES = [
    route("/", home, rule=ANY_USER, methods=["GET"]),
    route("/reviews/{code}", review_page, rule=ANY_USER, methods=["GET"]),
    route("/reviews/{code}/cases", create_case, rule=roles(Role.uploader), methods=["POST"]),
    route("/reviews/{code}/upload", upload_page, rule=UPLOADERS, methods=["GET"]),
    # Counted against PORTAL_MAX_UPLOAD_BYTES by _receive_form (its fields by FormStream).
    route("/reviews/{code}/upload", upload_submit, rule=UPLOADERS, methods=["POST"], body=STREAMED),
    route("/documents", find_by_reference, rule=ANY_USER, methods=["GET"]),
    route("/documents/{ref}", document_page, rule=ANY_USER, methods=["GET"]),
    route("/documents/{ref}/receipt", receipt_page, rule=ANY_USER, methods=["GET"]),
    # The API's handler, on a page address: same headers and audit, errors as pages.
    route(
        "/documents/{ref}/download",
        api.download_document,
        rule=roles(Role.inspector, Role.lead),
        methods=["GET"],
        on_role_refusal=api.content_refused,
        head=False,
    ),
    route("/documents/{ref}/withdraw", withdraw_page, rule=UPLOADERS, methods=["GET"]),
    route("/documents/{ref}/withdraw", withdraw_submit, rule=UPLOADERS, methods=["POST"]),
]
