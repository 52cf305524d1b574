"""The DPO console's pages. DPOs only; everyone else gets "not found" (the route rule).

Thin handlers: parse, call the console's functions or the destruction services, render. No page
shows a document's file name or content: the console never opens a document's key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from audit import FORMATS, EventFilter, Outcome, WitnessError, checkpoint_line
from portal import errors as portal_errors
from portal.accounts.models import Role
from portal.console import alerts, display, history, integrity, overview
from portal.console.anomalies import WINDOW, find_anomalies
from portal.console.search import cursor, find_events, read_filters, record_search
from portal.console.subject_access import for_page, view_subject_access
from portal.destruction import early, holds, services
from portal.destruction.models import HoldReason, HoldState, LiftReason
from portal.destruction.record import certificate_summary
from portal.errors import Invalid, NotAllowed, Refusal, Unavailable
from portal.exchange.errors import InvalidReference, NotFound, Refused
from portal.references import parse_reference
from portal.web.access import form_value, roles, route
from portal.web.bodies import STREAMED
from portal.web.console.api import SUBJECT_ACCESS_FORMATS, export_response, subject_access_response
from portal.web.destruction import api as destruction_api
from portal.web.errors import refusal_status
from portal.web.rendering import render
from portal.web.requests import acting_of, runtime_of, submitted_form
from portal.web.small_files import read_small_file

DPO = roles(Role.dpo)
PAGE_SIZE = 25
HISTORY_PAGE = 50


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


def _link(path: str, params: dict[str, str], before: int | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    if before is not None:
        kept["before"] = str(before)
    query = urlencode(kept)
    return path + (f"?{query}" if query else "")


def _paging(path: str, params: dict[str, str], found: Any) -> dict[str, str | None]:
    return {
        "next_page": _link(path, params, found.page.next_before)
        if found.page.next_before
        else None,
        "previous_page": _link(path, params, found.newer_before) if found.newer else None,
    }


# --- Home -------------------------------------------------------------------------------------


def home(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        counts = overview.overview(db, db.connection(), acting)
    return render(
        request, "console/home.html", {"counts": counts, "today": acting.now.date().isoformat()}
    )


def find_document(request: Request) -> Response:
    """GET /console/documents?reference=...: the home page's "find a document" box."""
    typed = request.query_params.get("reference", "").strip()
    if not typed:
        raise Refused("Enter the document's reference.", code="missing_reference")
    reference = parse_reference(typed[:100], "document reference")
    return RedirectResponse(f"/console/documents/{reference}", status_code=303)


# --- Audit search -------------------------------------------------------------------------------


def audit_search(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    params = request.query_params
    with _session(request) as db:
        form = read_filters(db, params)
        rows: list[dict[str, Any]] = []
        paging: dict[str, str | None] = {"next_page": None, "previous_page": None}
        # The newest events at once, filtered or not: every search is recorded all the same.
        searched = form.ok
        if searched:
            found = find_events(
                db.connection(), form.where, before=cursor(params.get("before")), limit=PAGE_SIZE
            )
            rows = display.event_rows(db, found.page.records)
            paging = _paging("/console/audit", form.typed, found)
            record_search(db, runtime.auditor, acting, form.where, shown=len(rows))
            db.commit()
        export_query = urlencode({k: v for k, v in form.typed.items() if v})
        context = {
            "form": form.typed,
            "errors": form.errors,
            "rows": rows,
            "searched": searched,
            "action_options": display.action_choices(),
            "outcome_options": [(o.value, display.OUTCOME_WORDS[o]) for o in Outcome],
            "export_query": export_query,
            **paging,
        }
    return render(request, "console/audit.html", context, status=400 if form.errors else 200)


def audit_export(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    params = request.query_params
    chosen = params.get("format", "jsonl")
    if chosen not in FORMATS:
        raise Invalid("Choose the format: jsonl or csv.", code="invalid_format")
    with _session(request) as db:
        form = read_filters(db, params)
    if not form.ok:
        raise Invalid(next(iter(form.errors.values())), code="invalid_filter")
    return export_response(runtime, acting, form.where, chosen)


def verify_page(request: Request) -> Response:
    return render(request, "console/verify.html", {"result": None, "file_check": None})


def verify_log(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    result = integrity.verify_database(runtime.engine, runtime.auditor, acting, runtime.witness)
    return render(
        request,
        "console/verify.html",
        {
            "result": integrity.verification_json(
                result, now=acting.now, every_seconds=runtime.auditor.log.policy.every_seconds
            ),
            "file_check": None,
        },
    )


async def verify_file(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        data = await read_small_file(request, limit=integrity.MAX_EXPORT_UPLOAD)
    except NotAllowed:  # a forged or stale form: the error page, never the form again
        raise
    except Refusal as refused:
        return render(
            request,
            "console/verify.html",
            {"result": None, "file_check": None, "errors": {"export-file": refused.message}},
            status=refusal_status(refused),
        )
    acting = acting_of(request)
    checked = await run_in_threadpool(
        integrity.verify_file,
        runtime.engine,
        runtime.auditor,
        acting,
        data,
        runtime.auditor.log.public_key,
    )
    file_check: dict[str, Any] = {"ok": checked.ok, "unreadable": checked.unreadable}
    if checked.check is not None:
        file_check.update(
            verification=integrity.verification_json(checked.check.verification),
            shown=checked.check.shown,
            hidden=checked.check.hidden,
        )
    return render(request, "console/verify.html", {"result": None, "file_check": file_check})


# --- Histories ----------------------------------------------------------------------------------


def document_history(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        metadata, where = history.view_document_history(
            db, runtime.auditor, acting, request.path_params["ref"]
        )
        db.commit()
        found = find_events(
            db.connection(),
            where,
            before=cursor(request.query_params.get("before")),
            limit=HISTORY_PAGE,
        )
        rows = display.event_rows(db, found.page.records)
    path = f"/console/documents/{metadata['reference']}"
    return render(
        request,
        "console/document.html",
        {"document": metadata, "rows": rows, **_paging(path, {}, found)},
    )


def user_history(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        account = history.find_account(db, request.path_params["user_id"])
        where = EventFilter(actor=account.user_id)
        found = find_events(
            db.connection(),
            where,
            before=cursor(request.query_params.get("before")),
            limit=HISTORY_PAGE,
        )
        rows = display.event_rows(db, found.page.records)
        record_search(db, runtime.auditor, acting, where, shown=len(rows))
        db.commit()
    path = f"/console/users/{account.user_id}"
    return render(
        request,
        "console/user.html",
        {"account": account, "rows": rows, **_paging(path, {}, found)},
    )


# --- Subject access -----------------------------------------------------------------------------


def subject_access_page(request: Request) -> Response:
    """GET /console/subject-access?case=REF: the search form, and with a case, its account."""
    runtime, acting = runtime_of(request), acting_of(request)
    typed = request.query_params.get("case", "").strip()[:100]
    found: dict[str, Any] | None = None
    errors: dict[str, str] = {}
    status = 200
    if typed:
        try:
            with _session(request) as db:
                found = for_page(view_subject_access(db, runtime.auditor, acting, typed))
                db.commit()
        except Refusal as refused:
            errors["case"] = (
                "There is no case with that reference."
                if isinstance(refused, NotFound)
                else "That is not a valid case reference: a character is wrong or two are "
                "swapped. Check it and type it again."
            )
            status = refusal_status(refused)
    return render(
        request,
        "console/subject_access.html",
        {"typed": typed, "found": found, "errors": errors},
        status=status,
    )


def subject_access_export(request: Request) -> Response:
    """GET /console/subject-access/export?case=REF&format=json|csv: the same, as a download."""
    runtime, acting = runtime_of(request), acting_of(request)
    chosen = request.query_params.get("format", "json")
    if chosen not in SUBJECT_ACCESS_FORMATS:
        raise Invalid("Choose the format: json or csv.", code="invalid_format")
    typed = request.query_params.get("case", "").strip()
    if not typed:
        raise Refused("Enter the case reference.", code="missing_reference")
    with _session(request) as db:
        found = view_subject_access(db, runtime.auditor, acting, typed)
        db.commit()
    return subject_access_response(found, chosen, download=True)


# --- Anomalies ----------------------------------------------------------------------------------


def anomalies(request: Request) -> Response:
    acting = acting_of(request)
    limits = runtime_of(request).settings.alert_thresholds
    with _session(request) as db:
        found = find_anomalies(db.connection(), now=acting.now, window=WINDOW, thresholds=limits)
        rows = display.anomaly_rows(db, found)
    return render(
        request,
        "console/anomalies.html",
        {
            "rows": rows,
            "days": WINDOW // timedelta(days=1),
            "bulk": limits.bulk_downloads,
            "failures": limits.failed_sign_ins,
            "refusals": limits.refusals,
        },
    )


def alerts_page(request: Request) -> Response:
    with _session(request) as db:
        rows = alerts.alert_rows(db, alerts.list_alerts(db))
    return render(request, "console/alerts.html", {"rows": rows})


def acknowledge_alert(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        alerts.acknowledge(db, runtime.auditor, acting, request.path_params["alert_id"])
        db.commit()
    return RedirectResponse("/console/alerts", status_code=303)


# --- Destruction ----------------------------------------------------------------------------------


def _schedule_page(request: Request, errors: dict[str, str], status: int = 200) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        rows = overview.schedule_rows(db, acting)
        return render(
            request, "console/schedule.html", {"rows": rows, "errors": errors}, status=status
        )


def schedule_page(request: Request) -> Response:
    return _schedule_page(request, {})


def _early(request: Request, approve: bool) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    code = request.path_params["code"]
    step = early.approve_early if approve else early.request_early
    try:
        with _session(request) as db:
            step(db, runtime.auditor, acting, code)
            db.commit()
    except Refusal as refused:
        if isinstance(refused, NotFound):
            raise
        return _schedule_page(
            request, {"schedule": refused.message}, status=refusal_status(refused)
        )
    return RedirectResponse("/console/destruction", status_code=303)


def request_early(request: Request) -> Response:
    return _early(request, approve=False)


def approve_early(request: Request) -> Response:
    return _early(request, approve=True)


def _holds_page(
    request: Request, errors: dict[str, str], typed: dict[str, str], status: int = 200
) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        found = [
            holds.hold_view(db, runtime.vault, h)
            for h in holds.list_holds(db, acting, include_lifted=True)
        ]
        who = display.people(
            db, [h["placed_by"] for h in found] + [h["requested_by"] for h in found]
        )
    return render(
        request,
        "console/holds.html",
        {
            "active": [h for h in found if h["state"] == HoldState.active.value],
            "requested": [h for h in found if h["state"] == HoldState.requested.value],
            "lifted": [h for h in found if h["state"] == HoldState.lifted.value][:50],
            "who": who,
            "reason_options": [(r.value, r.value.capitalize()) for r in HoldReason],
            "lift_options": [(r.value, LIFT_REASON_TEXT[r]) for r in LiftReason],
            "lift_text": {r.value: text for r, text in LIFT_REASON_TEXT.items()},
            "errors": errors,
            "typed": typed,
        },
        status=status,
    )


def holds_page(request: Request) -> Response:
    return _holds_page(request, {}, {})


LIFT_REASON_TEXT = {
    LiftReason.proceedings_concluded: "Proceedings concluded",
    LiftReason.placed_in_error: "Placed in error",
    LiftReason.superseded: "Superseded by another hold",
    LiftReason.other: "Other",
}

FIELD_OF_CODE = {
    "invalid_reason": "reason",
    "invalid_scope": "case",
    "invalid_order_reference": "order_reference",
    "invalid_reference": "document",
    "destroyed": "document",
}


def place_hold(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    form = submitted_form(request)
    typed = {
        name: form_value(form, name, 100).strip()
        for name in ("review", "document", "case", "reason", "order_reference")
    }
    try:
        if not typed["review"]:
            raise Refused("Enter the code of the review to hold.", code="missing_review")
        with _session(request) as db:
            holds.place_hold(
                db,
                runtime.auditor,
                acting,
                review_code=typed["review"],
                document_reference=typed["document"] or None,
                reason=typed["reason"],
                order_reference=typed["order_reference"] or None,
                case_reference=typed["case"] or None,
                vault=runtime.vault,
            )
            db.commit()
    except Refusal as refused:
        field = FIELD_OF_CODE.get(refused.code, "review")
        if isinstance(refused, InvalidReference):
            field = "case" if typed["case"] and not typed["document"] else "document"
        if isinstance(refused, NotFound):
            message = (
                "There is no review, or no document or case in it, with that code or reference."
            )
            field = "document" if typed["document"] else "case" if typed["case"] else "review"
        else:
            message = refused.message
        return _holds_page(request, {field: message}, typed, status=refusal_status(refused))
    return RedirectResponse("/console/holds", status_code=303)


def lift_hold(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    hold_id = request.path_params["hold_id"]
    reason = form_value(submitted_form(request), "lift_reason", 40).strip()
    try:
        with _session(request) as db:
            holds.lift_hold(db, runtime.auditor, acting, hold_id, reason=reason)
            db.commit()
    except Refusal as refused:
        if isinstance(refused, NotFound):
            raise
        field = f"lift-reason-{hold_id}" if refused.code == "invalid_lift_reason" else "holds"
        return _holds_page(request, {field: refused.message}, {}, status=refusal_status(refused))
    return RedirectResponse("/console/holds", status_code=303)


def certificates_page(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        found = services.list_certificates(db, acting)
        rows = [certificate_summary(db, c) for c in found]
    return render(request, "console/certificates.html", {"rows": rows})


def signed_certificate(request: Request) -> Response:
    """The signed JSON for a browser (the API's twin needs a token)."""
    acting = acting_of(request)
    with _session(request) as db:
        certificate = services.find_certificate(db, acting, request.path_params["ref"])
        body = services.signed(certificate).export()
        reference = certificate.reference
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="certificate-{reference}.json"'},
    )


def witness_receipt(request: Request) -> Response:
    """The latest checkpoint the witness holds, as a receipt file the DPO keeps (issue 17)."""
    runtime = runtime_of(request)
    try:
        latest = runtime.witness.latest()
    except WitnessError as exc:
        raise Unavailable(str(exc), code="witness_unavailable") from None
    if latest is None:
        raise portal_errors.NotFound(
            "Nothing has been witnessed yet: verify the log first.", code="not_witnessed"
        )
    return Response(
        checkpoint_line(latest) + "\n",
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-receipt-{latest.seq}.jsonl"'},
    )


ROUTES = [
    route("/console", home, rule=DPO, methods=["GET"]),
    route("/console/audit", audit_search, rule=DPO, methods=["GET"]),
    route("/console/audit/export", audit_export, rule=DPO, methods=["GET"]),
    route("/console/audit/verify", verify_page, rule=DPO, methods=["GET"]),
    route("/console/audit/verify", verify_log, rule=DPO, methods=["POST"]),
    # An export file, counted against MAX_EXPORT_UPLOAD by read_small_file.
    route("/console/audit/verify-file", verify_file, rule=DPO, methods=["POST"], body=STREAMED),
    route("/console/audit/receipt", witness_receipt, rule=DPO, methods=["GET"]),
    route("/console/documents", find_document, rule=DPO, methods=["GET"]),
    route("/console/documents/{ref}", document_history, rule=DPO, methods=["GET"]),
    route("/console/users/{user_id}", user_history, rule=DPO, methods=["GET"]),
    route("/console/anomalies", anomalies, rule=DPO, methods=["GET"]),
    route("/console/alerts", alerts_page, rule=DPO, methods=["GET"]),
    route("/console/alerts/{alert_id}/acknowledge", acknowledge_alert, rule=DPO, methods=["POST"]),
    route("/console/subject-access", subject_access_page, rule=DPO, methods=["GET"]),
    route("/console/subject-access/export", subject_access_export, rule=DPO, methods=["GET"]),
    route("/console/destruction", schedule_page, rule=DPO, methods=["GET"]),
    route("/console/destruction/{code}/request", request_early, rule=DPO, methods=["POST"]),
    route(
        "/console/destruction/{code}/approve",
        approve_early,
        rule=DPO,
        methods=["POST"],
        on_role_refusal=destruction_api.approval_refused,
    ),
    route("/console/holds", holds_page, rule=DPO, methods=["GET"]),
    route("/console/holds", place_hold, rule=DPO, methods=["POST"]),
    route("/console/holds/{hold_id}/lift", lift_hold, rule=DPO, methods=["POST"]),
    route("/console/certificates", certificates_page, rule=DPO, methods=["GET"]),
    route(
        "/console/certificates/{ref}/signed",
        signed_certificate,
        rule=DPO,
        methods=["GET"],
        on_role_refusal=destruction_api.certificate_refused,
    ),
]
