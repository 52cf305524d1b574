"""The console API's part of the OpenAPI document (merged by portal.web.openapi); its responses are
the models of console.schemas."""

from __future__ import annotations

from audit import Outcome
from portal.audit_vocabulary import Action
from portal.console import schemas
from portal.web.openapi_parts import Json, operation
from portal.web.openapi_parts import errors as _errors
from portal.web.openapi_parts import json_response as _json
from portal.web.openapi_parts import path_parameter as _path
from portal.web.openapi_parts import query_parameter as _query

FILTERS = [
    _query("actor", "A user's id or email address.", {"type": "string", "maxLength": 320}),
    _query("action", "One action of the registry.", {"enum": [a.value for a in Action]}),
    _query("review", "A review code.", {"type": "string", "maxLength": 32}),
    _query("document", "A document reference.", {"type": "string", "maxLength": 64}),
    _query(
        "case",
        "A case reference: events about the case or any of its documents.",
        {"type": "string", "maxLength": 64},
    ),
    _query("outcome", "success, failure or denied.", {"enum": [o.value for o in Outcome]}),
    _query("from", "First day (UTC), included.", {"type": "string", "format": "date"}),
    _query("to", "Last day (UTC), included.", {"type": "string", "format": "date"}),
]
PAGING = [
    _query(
        "before",
        "The `next` cursor of the previous page.",
        {"type": "string", "pattern": "^[0-9]{1,19}$"},
    ),
    _query(
        "limit", "Events per page (1 to 200; 50).", {"type": "string", "pattern": "^[0-9]{1,4}$"}
    ),
]

_EXPORT_FILE = {"schema": {"type": "string", "format": "binary"}}

PATHS: Json = {
    "/api/v1/audit/events": {
        "get": operation(
            "searchAuditEvents",
            "Search the audit log, newest first, by keyset pages (DPOs; audited)",
            "Filters combine; a page ends with `next`, the `before` of the following page. The "
            "search itself is recorded in the log.",
            {"200": _json(schemas.Events, "One page of events."), **_errors(400, 404)},
            parameters=[*FILTERS, *PAGING],
        )
    },
    "/api/v1/audit/export": {
        "get": operation(
            "exportAuditLog",
            "Export the audit log, sealed, verifiable offline (DPOs; audited)",
            "The events the filters select, with the checkpoints that sign them, streamed as an "
            "attachment; `portal audit verify --export FILE` checks it without the database.",
            {
                "200": {
                    "description": "The export, as an attachment (docs/audit-format.md).",
                    "content": {"application/x-ndjson": _EXPORT_FILE, "text/csv": _EXPORT_FILE},
                },
                **_errors(400, 404, 409),
            },
            parameters=[
                {
                    "name": "format",
                    "in": "query",
                    "required": True,
                    "description": "jsonl or csv.",
                    "schema": {"enum": ["jsonl", "csv"]},
                },
                *FILTERS,
            ],
        )
    },
    "/api/v1/audit/verify": {
        "post": operation(
            "verifyAuditLog",
            "Verify the log in the database (no body), or an export file (DPOs; audited)",
            "Checks the hash chain and every signed checkpoint; the first break, if any, is "
            "named by its sequence number.",
            {
                "200": _json(schemas.Verification, "The verification: ok, or the first break."),
                **_errors(400, 404, 413),
            },
            requestBody={
                "required": False,
                "content": {"application/octet-stream": _EXPORT_FILE},
            },
        )
    },
    "/api/v1/audit/documents/{ref}": {
        "get": operation(
            "getDocumentHistory",
            "A document's metadata (no file name) and every event naming it (DPOs)",
            "Destroyed documents too: the audit log outlives them. The view is audited as a "
            "metadata view.",
            {
                "200": _json(schemas.DocumentHistory, "The document and its history."),
                **_errors(400, 404),
            },
            parameters=[_path("ref", "The document's reference."), *PAGING],
        )
    },
    "/api/v1/audit/users/{user_id}": {
        "get": operation(
            "getUserHistory",
            "What one user did, newest first (DPOs; audited)",
            "The account and its events, by keyset pages.",
            {"200": _json(schemas.UserHistory, "The user and their events."), **_errors(400, 404)},
            parameters=[_path("user_id", "The user's number."), *PAGING],
        )
    },
    "/api/v1/cases/{reference}/subject-access": {
        "get": operation(
            "getSubjectAccess",
            "Everything held for one case: documents, accesses, holds, destruction (DPOs; audited)",
            "For a subject access request: every document of the case with every event naming "
            "it, however many.",
            {
                "200": _json(
                    schemas.SubjectAccess,
                    "The case and every document held for it (CSV with format=csv).",
                ),
                **_errors(400, 404),
            },
            parameters=[
                _path("reference", "The case reference."),
                _query("format", "json (the default) or csv.", {"enum": ["json", "csv"]}),
            ],
        )
    },
    "/api/v1/audit/anomalies": {
        "get": operation(
            "listAuditAnomalies",
            "Bulk downloads, out-of-hours access, repeated failed sign-ins (DPOs)",
            "The anomaly rules run over the window now, without raising alerts.",
            {"200": _json(schemas.Anomalies, "Findings, newest first."), **_errors(400, 404)},
            parameters=[
                _query(
                    "days",
                    "The window, in days up to now (1 to 90; 7).",
                    {"type": "string", "pattern": "^[0-9]{1,3}$"},
                )
            ],
        )
    },
    "/api/v1/audit/alerts": {
        "get": operation(
            "listAuditAlerts",
            "Alerts raised by the anomaly rules and the witness (DPOs)",
            "What the worker raised and mailed to the DPOs.",
            {
                "200": _json(
                    schemas.Alerts, "The newest 200 alerts, those not acknowledged first."
                ),
                **_errors(404),
            },
        )
    },
    "/api/v1/audit/alerts/{alert_id}/acknowledge": {
        "post": operation(
            "acknowledgeAuditAlert",
            "Acknowledge an alert (DPOs; audited)",
            "Once only: a second acknowledgement is a 409. Takes no body.",
            {"200": _json(schemas.Alert, "The alert, acknowledged."), **_errors(400, 404, 409)},
            parameters=[_path("alert_id", "The alert's number.")],
        )
    },
}
