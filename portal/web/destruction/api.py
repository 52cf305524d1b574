"""The destruction API under /api/v1: schedule, holds, early destruction, certificates.

DPOs and leads (leads see their own reviews and may only *request* holds); early destruction is
asked for by a DPO and approved by another DPO or an administrator. Everyone else: 404.
"""

from __future__ import annotations

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import Role
from portal.audit_vocabulary import Action
from portal.destruction import early, holds, schemas, services
from portal.destruction.models import EarlyDestruction
from portal.destruction.record import certificate_record, hold_record, schedule_entry
from portal.destruction.schedule import schedule
from portal.schemas import NoBody
from portal.web.access import api_roles, route
from portal.web.jsonbody import json_reply, parse_body
from portal.web.requests import acting_of, runtime_of

WATCHERS = api_roles(Role.dpo, Role.lead)


def _session(request: Request) -> Session:
    return Session(runtime_of(request).engine)


def get_schedule(request: Request) -> Response:
    acting = acting_of(request)
    include = request.query_params.get("include_destroyed", "") in ("1", "true", "yes")
    with _session(request) as db:
        entries = schedule(db, acting, today=acting.now.date(), include_destroyed=include)
        reply = schemas.Schedule(items=[schedule_entry(e) for e in entries], next=None)
    return json_reply(reply)


def list_holds(request: Request) -> Response:
    runtime, acting = runtime_of(request), acting_of(request)
    include = request.query_params.get("include_lifted", "") in ("1", "true", "yes")
    with _session(request) as db:
        reply = schemas.Holds(
            items=[
                hold_record(db, runtime.vault, h)
                for h in holds.list_holds(db, acting, include_lifted=include)
            ],
            next=None,
        )
    return json_reply(reply)


async def place_hold(request: Request) -> Response:
    body = await parse_body(request, schemas.NewHold)

    def work() -> schemas.Hold:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            hold = holds.place_hold(
                db,
                runtime.auditor,
                acting,
                review_code=body.review,
                document_reference=body.document,
                reason=body.reason,
                order_reference=body.order_reference,
                case_reference=body.case,
                vault=runtime.vault,
            )
            db.commit()
            return hold_record(db, runtime.vault, hold)

    return json_reply(await run_in_threadpool(work), status_code=201)


async def lift_hold(request: Request) -> Response:
    body = await parse_body(request, schemas.LiftHold)

    def work() -> schemas.Hold:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            hold = holds.lift_hold(
                db,
                runtime.auditor,
                acting,
                request.path_params["hold_id"],
                reason=body.reason,
            )
            db.commit()
            return hold_record(db, runtime.vault, hold)

    return json_reply(await run_in_threadpool(work))


def _early(review: str, row: EarlyDestruction) -> schemas.EarlyDestruction:
    return schemas.EarlyDestruction(
        review=review, state=row.state, requested_by=row.requested_by, approved_by=row.approved_by
    )


async def request_early(request: Request) -> Response:
    await parse_body(request, NoBody, optional=True)  # no body, or one with no field

    def work() -> schemas.EarlyDestruction:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            row = early.request_early(db, runtime.auditor, acting, request.path_params["code"])
            db.commit()
            return _early(request.path_params["code"].strip().upper(), row)

    return json_reply(await run_in_threadpool(work), status_code=201)


async def approve_early(request: Request) -> Response:
    await parse_body(request, NoBody, optional=True)

    def work() -> schemas.EarlyDestruction:
        runtime = runtime_of(request)
        acting = acting_of(request)
        with _session(request) as db:
            row = early.approve_early(db, runtime.auditor, acting, request.path_params["code"])
            db.commit()
            return _early(request.path_params["code"].strip().upper(), row)

    return json_reply(await run_in_threadpool(work))


def request_refused(request: Request) -> None:
    """The early-destruction request route refused the caller's role: audited as a denied
    ``destruction.requested`` if the review exists."""
    with _session(request) as db:
        early.audit_role_refusal(
            db, acting_of(request), request.path_params["code"], Action.DESTRUCTION_REQUESTED
        )


def approval_refused(request: Request) -> None:
    """The early-destruction approval route refused the caller's role: audited as a denied
    ``destruction.approved`` if the review exists."""
    with _session(request) as db:
        early.audit_role_refusal(
            db, acting_of(request), request.path_params["code"], Action.DESTRUCTION_APPROVED
        )


def certificate_refused(request: Request) -> None:
    """A certificate route refused the caller's role: audited if the certificate exists."""
    with _session(request) as db:
        services.audit_role_refusal(db, acting_of(request), request.path_params["ref"])


def list_certificates(request: Request) -> Response:
    acting = acting_of(request)
    with _session(request) as db:
        found = services.list_certificates(db, acting)
        reply = schemas.Certificates(items=[certificate_record(db, c) for c in found], next=None)
    return json_reply(reply)


def get_certificate(request: Request) -> Response:
    """The signed certificate, byte for byte what ``portal certificate export`` writes."""
    acting = acting_of(request)
    with _session(request) as db:
        certificate = services.find_certificate(db, acting, request.path_params["ref"])
        body = services.signed(certificate).export()
    return Response(body, media_type="application/json")


ROUTES = [
    route("/api/v1/destruction/schedule", get_schedule, rule=WATCHERS, methods=["GET"]),
    route("/api/v1/holds", list_holds, rule=WATCHERS, methods=["GET"]),
    route("/api/v1/holds", place_hold, rule=WATCHERS, methods=["POST"]),
    route("/api/v1/holds/{hold_id}/lift", lift_hold, rule=api_roles(Role.dpo), methods=["POST"]),
    route(
        "/api/v1/reviews/{code}/destruction/request",
        request_early,
        rule=api_roles(Role.dpo),
        methods=["POST"],
        on_role_refusal=request_refused,
    ),
    route(
        "/api/v1/reviews/{code}/destruction/approve",
        approve_early,
        rule=api_roles(Role.dpo, Role.admin),
        methods=["POST"],
        on_role_refusal=approval_refused,
    ),
    route("/api/v1/certificates", list_certificates, rule=WATCHERS, methods=["GET"]),
    route(
        "/api/v1/certificates/{ref}",
        get_certificate,
        rule=WATCHERS,
        methods=["GET"],
        on_role_refusal=certificate_refused,
    ),
]
