"""The DPO console's API under /api/v1/audit: search, export, verify, histories, anomalies.

DPOs only (everyone else: 404). The same functions as the console's pages, answered in JSON.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from audit import FORMATS, EventFilter
from portal.accounts.models import Role
from portal.console import alerts, display, history, integrity, schemas
from portal.console.anomalies import find_anomalies
from portal.console.search import cursor, find_events, read_filters, record_search
from portal.console.subject_access import as_csv, view_subject_access
from portal.destruction import services
from portal.errors import Invalid
from portal.exchange.acting import Acting
from portal.exchange.errors import TooLarge
from portal.runtime import Runtime
from portal.schemas import NoBody
from portal.web.access import api_roles, route
from portal.web.bodies import STREAMED
from portal.web.jsonbody import json_reply, parse_body
from portal.web.requests import acting_of, is_urlencoded, runtime_of
from portal.web.streaming import stream_from_thread

DPO_API = api_roles(Role.dpo)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_DAYS = 90


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


def _limit(request: Request) -> int:
    typed = request.query_params.get("limit", "")
    if not typed:
        return DEFAULT_LIMIT
    if not typed.isdigit() or len(typed) > 4 or not 1 <= int(typed) <= MAX_LIMIT:
        raise Invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}.", code="invalid_limit")
    return int(typed)


def _page(
    db: Session, where: EventFilter, request: Request
) -> tuple[list[schemas.Event], str | None]:
    found = find_events(
        db.connection(),
        where,
        before=cursor(request.query_params.get("before")),
        limit=_limit(request),
    )
    rows = display.event_rows(db, found.page.records)
    items = [schemas.Event.model_validate(_public(row)) for row in rows]
    following = found.page.next_before
    return items, str(following) if following is not None else None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("time_shown", None)
    return row


def search_events(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        form = read_filters(db, request.query_params)
        if not form.ok:
            field, message = next(iter(form.errors.items()))
            raise Invalid(f"{field}: {message}", code="invalid_filter")
        items, following = _page(db, form.where, request)
        record_search(db, runtime.auditor, acting, form.where, shown=len(items))
        db.commit()
    return json_reply(schemas.Events(items=items, next=following))


def export(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    chosen = request.query_params.get("format", "")
    if chosen not in FORMATS:
        raise Invalid("format must be jsonl or csv.", code="invalid_format")
    with _session(request) as db:
        form = read_filters(db, request.query_params)
    if not form.ok:
        field, message = next(iter(form.errors.items()))
        raise Invalid(f"{field}: {message}", code="invalid_filter")
    return export_response(runtime, acting, form.where, chosen)


async def verify(request: Request) -> Response:
    """No body: verify the log in the database. A body (an export file): verify it offline."""
    runtime, acting = runtime_of(request), acting_of(request)
    if is_urlencoded(request):
        raise Invalid(
            "Send no body to verify the log, or an export file as application/octet-stream.",
            code="invalid_body",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > integrity.MAX_EXPORT_UPLOAD:
            raise TooLarge(
                "The export is too large to check here: use `portal audit verify --export`."
            )
    if not body:
        result = await run_in_threadpool(
            integrity.verify_database, runtime.engine, runtime.auditor, acting, runtime.witness
        )
        shown = integrity.verification_json(
            result, now=acting.now, every_seconds=runtime.auditor.log.policy.every_seconds
        )
        return json_reply(schemas.Verification.model_validate({"source": "database", **shown}))
    checked = await run_in_threadpool(
        integrity.verify_file,
        runtime.engine,
        runtime.auditor,
        acting,
        bytes(body),
        runtime.auditor.log.public_key,
    )
    if checked.check is None:
        raise Invalid(checked.unreadable or "Not an export.", code="invalid_export")
    found = schemas.Verification.model_validate(
        {
            "source": "export",
            **integrity.verification_json(checked.check.verification),
            "shown": checked.check.shown,
            "hidden": checked.check.hidden,
        }
    )
    return json_reply(found)


def document_history(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        metadata, where = history.view_document_history(
            db, runtime.auditor, acting, request.path_params["ref"]
        )
        db.commit()
        items, following = _page(db, where, request)
    document = schemas.AuditedDocument.model_validate(metadata)
    return json_reply(schemas.DocumentHistory(document=document, items=items, next=following))


def user_history(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    with _session(request) as db:
        account = history.find_account(db, request.path_params["user_id"])
        where = EventFilter(actor=account.user_id)
        items, following = _page(db, where, request)
        record_search(db, runtime.auditor, acting, where, shown=len(items))
        db.commit()
    user = schemas.Account(
        id=account.user_id,
        email=account.email,
        role=account.role,
        organisation=account.organisation,
        enrolled_at=account.enrolled_at,
        disabled_at=account.disabled_at,
    )
    return json_reply(schemas.UserHistory(user=user, items=items, next=following))


def anomalies(request: Request) -> Response:
    acting = acting_of(request)
    typed = request.query_params.get("days", "7")
    if not typed.isdigit() or len(typed) > 3 or not 1 <= int(typed) <= MAX_DAYS:
        raise Invalid(f"days must be a whole number from 1 to {MAX_DAYS}.", code="invalid_days")
    with _session(request) as db:
        found = find_anomalies(
            db.connection(),
            now=acting.now,
            window=timedelta(days=int(typed)),
            thresholds=runtime_of(request).settings.alert_thresholds,
        )
        items = display.anomaly_rows(db, found)
    for item in items:
        item.pop("started_shown")
        item.pop("ended_shown")
    found_items = [schemas.Anomaly.model_validate(item) for item in items]
    return json_reply(schemas.Anomalies(items=found_items, next=None))


def list_alerts(request: Request) -> Response:
    with _session(request) as db:
        rows = alerts.alert_rows(db, alerts.list_alerts(db), page=False)
    items = [schemas.Alert.model_validate(row) for row in rows]
    return json_reply(schemas.Alerts(items=items, next=None))


async def acknowledge_alert(request: Request) -> Response:
    await parse_body(request, NoBody, optional=True)

    def work() -> schemas.Alert:
        runtime, acting = runtime_of(request), acting_of(request)
        with _session(request) as db:
            alert = alerts.acknowledge(db, runtime.auditor, acting, request.path_params["alert_id"])
            db.commit()
            return schemas.Alert.model_validate(alerts.alert_rows(db, [alert], page=False)[0])

    return json_reply(await run_in_threadpool(work))


SUBJECT_ACCESS_FORMATS = ("json", "csv")


def subject_access(request: Request) -> Response:
    """Everything held for one case: documents, every access, holds, destruction (audited)."""
    runtime, acting = runtime_of(request), acting_of(request)
    chosen = request.query_params.get("format", "json")
    if chosen not in SUBJECT_ACCESS_FORMATS:
        raise Invalid("format must be json or csv.", code="invalid_format")
    with _session(request) as db:
        found = view_subject_access(db, runtime.auditor, acting, request.path_params["reference"])
        db.commit()
    return subject_access_response(found, chosen, download=chosen == "csv")


def subject_access_response(found: dict[str, Any], chosen: str, *, download: bool) -> Response:
    """JSON or CSV; as a download, named after the case (a pseudonymous reference)."""
    name = f"subject-access-{found['case']['reference']}.{chosen}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'} if download else {}
    if chosen == "csv":
        return Response(as_csv(found), media_type="text/csv; charset=utf-8", headers=headers)
    reply = schemas.SubjectAccess.model_validate(found)
    return JSONResponse(reply.model_dump(mode="json"), headers=headers)


ROUTES = [
    route("/api/v1/audit/events", search_events, rule=DPO_API, methods=["GET"]),
    route("/api/v1/audit/export", export, rule=DPO_API, methods=["GET"]),
    # An export file, counted against MAX_EXPORT_UPLOAD by verify.
    route("/api/v1/audit/verify", verify, rule=DPO_API, methods=["POST"], body=STREAMED),
    route("/api/v1/audit/documents/{ref}", document_history, rule=DPO_API, methods=["GET"]),
    route("/api/v1/audit/users/{user_id}", user_history, rule=DPO_API, methods=["GET"]),
    route("/api/v1/audit/anomalies", anomalies, rule=DPO_API, methods=["GET"]),
    route("/api/v1/audit/alerts", list_alerts, rule=DPO_API, methods=["GET"]),
    route(
        "/api/v1/audit/alerts/{alert_id}/acknowledge",
        acknowledge_alert,
        rule=DPO_API,
        methods=["POST"],
    ),
    route(
        "/api/v1/cases/{reference}/subject-access",
        subject_access,
        rule=DPO_API,
        methods=["GET"],
    ),
]


def export_response(
    runtime: Runtime, acting: Acting, where: EventFilter, chosen: str
) -> StreamingResponse:
    """Start an audit export (recorded before its first byte) and stream it as an attachment."""
    started = integrity.start_export(
        runtime.engine,
        runtime.auditor,
        acting,
        services.signing_key(runtime.settings),
        format="csv" if chosen == "csv" else "jsonl",
        where=where,
        witness=runtime.witness,
    )
    stamp = acting.now.strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        stream_from_thread(started.write),
        media_type="text/csv; charset=utf-8" if chosen == "csv" else "application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.{chosen}"',
            "Cache-Control": "no-store",
        },
    )
