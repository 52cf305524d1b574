"""The console API's part of the OpenAPI document (merged by portal.openapi)."""

from __future__ import annotations

from audit import Outcome
from portal.audit_vocabulary import Action
from portal.openapi_parts import Json
from portal.openapi_parts import errors as _errors
from portal.openapi_parts import json_response as _json
from portal.openapi_parts import path_parameter as _path
from portal.openapi_parts import query_parameter as _query

_TEXT_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


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

EVENT: Json = {
    "type": "object",
    "required": ["seq", "time", "actor", "action", "outcome", "details"],
    "properties": {
        "seq": {"type": "integer"},
        "time": _TIME,
        "actor": {
            "type": "object",
            "required": ["user_id", "role", "organisation_id"],
            "properties": {
                "user_id": _INT_OR_NULL,
                "email": _TEXT_OR_NULL,
                "role": _TEXT_OR_NULL,
                "organisation_id": _INT_OR_NULL,
                "organisation": _TEXT_OR_NULL,
            },
        },
        "action": {"type": "string"},
        "action_words": {"type": "string"},
        "target": {
            "type": ["object", "null"],
            "properties": {"kind": {"type": "string"}, "ref": {"type": "string"}},
        },
        "review": _TEXT_OR_NULL,
        "document": _TEXT_OR_NULL,
        "outcome": {"type": "string"},
        "outcome_words": {"type": "string"},
        "client": _TEXT_OR_NULL,
        "request_id": _TEXT_OR_NULL,
        "details": {
            "type": "object",
            "description": "Facts on the log's allow-list (docs/audit-format.md); never text.",
        },
    },
}

EVENTS: Json = {
    "type": "object",
    "required": ["items", "next"],
    "properties": {"items": {"type": "array", "items": EVENT}, "next": _TEXT_OR_NULL},
}

VERIFICATION: Json = {
    "type": "object",
    "required": ["source", "ok", "first_seq", "last_seq", "events", "broken"],
    "properties": {
        "source": {"enum": ["database", "export"]},
        "ok": {"type": "boolean"},
        "first_seq": {"type": "integer"},
        "last_seq": {"type": "integer"},
        "events": {"type": "integer"},
        "checkpoints": {"type": "integer"},
        "last_checkpoint": _INT_OR_NULL,
        "shown": {"type": "integer"},
        "hidden": {"type": "integer"},
        "unsigned_tail": {
            "type": ["object", "null"],
            "description": "Events after the last signed checkpoint (the chain alone protects "
            "them), the oldest one's age, and whether it is older than twice the checkpoint "
            "interval (a finding: nothing is signing). Null for an export.",
            "required": ["events", "age_seconds", "stale"],
            "properties": {
                "events": {"type": "integer"},
                "age_seconds": _INT_OR_NULL,
                "stale": {"type": "boolean"},
            },
        },
        "witnessed": {
            "type": ["object", "null"],
            "description": "The latest checkpoint the witness outside the database holds, and "
            "the receipt line a DPO keeps to check a later verification against "
            "(`portal audit verify --witness FILE`).",
            "required": ["seq", "receipt"],
            "properties": {"seq": {"type": "integer"}, "receipt": {"type": "string"}},
        },
        "broken": {
            "type": ["object", "null"],
            "required": ["sequence", "kind", "detail"],
            "properties": {
                "sequence": {"type": "integer", "description": "The first broken sequence number."},
                "kind": {"type": "string"},
                "detail": {"type": "string"},
            },
        },
    },
}

DOCUMENT: Json = {
    "type": "object",
    "description": "A document's metadata as a DPO sees it: never its file name.",
    "required": ["reference", "review", "state", "size", "sha256", "uploaded_at"],
    "properties": {
        "reference": {"type": "string"},
        "review": _TEXT_OR_NULL,
        "organisation": _TEXT_OR_NULL,
        "kind": {"type": "string"},
        "state": {"type": "string"},
        "case": _TEXT_OR_NULL,
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "content_type": {"type": "string"},
        "uploaded_at": _TIME,
        "uploaded_by": {"type": "object"},
        "scan": {"type": "object"},
        "withdrawn_at": _TIME_OR_NULL,
        "withdraw_reason": _TEXT_OR_NULL,
        "destroyed_at": _TIME_OR_NULL,
        "holds": {"type": "array", "items": {"type": "object"}},
    },
}

ANOMALY_RULES = ["bulk_downloads", "bulk_documents", "out_of_hours", "failed_sign_ins", "refusals"]
ANOMALY: Json = {
    "type": "object",
    "required": ["rule", "started_at", "ended_at", "count"],
    "properties": {
        "rule": {"enum": ANOMALY_RULES},
        "rule_words": {"type": "string"},
        "started_at": _TIME,
        "ended_at": _TIME,
        "count": {"type": "integer"},
        "user_id": _INT_OR_NULL,
        "email": _TEXT_OR_NULL,
        "client": _TEXT_OR_NULL,
        "review": _TEXT_OR_NULL,
        "document": _TEXT_OR_NULL,
        "action": _TEXT_OR_NULL,
        "action_words": _TEXT_OR_NULL,
        "first_seq": _INT_OR_NULL,
        "last_seq": _INT_OR_NULL,
    },
}

ALERT: Json = {
    "type": "object",
    "required": ["id", "rule", "count", "started_at", "ended_at", "raised_at", "acknowledged_at"],
    "properties": {
        "id": {"type": "integer"},
        "rule": {"enum": [*ANOMALY_RULES, "witness_mismatch", "unsigned_tail"]},
        "rule_words": {"type": "string"},
        "count": {"type": "integer"},
        "user_id": _INT_OR_NULL,
        "email": _TEXT_OR_NULL,
        "first_seq": _INT_OR_NULL,
        "last_seq": _INT_OR_NULL,
        "started_at": _TIME,
        "ended_at": _TIME,
        "raised_at": _TIME,
        "mailed_at": _TIME_OR_NULL,
        "acknowledged_at": _TIME_OR_NULL,
        "acknowledged_by": _INT_OR_NULL,
        "acknowledged_by_email": _TEXT_OR_NULL,
    },
}

_EXPORT_FILE = {"schema": {"type": "string", "format": "binary"}}

PATHS: Json = {
    "/api/v1/audit/events": {
        "get": {
            "summary": "Search the audit log, newest first, by keyset pages (DPOs; audited)",
            "parameters": [*FILTERS, *PAGING],
            "responses": {"200": _json(EVENTS, "One page of events."), **_errors(400, 404)},
        }
    },
    "/api/v1/audit/export": {
        "get": {
            "summary": "Export the audit log, sealed, verifiable offline (DPOs; audited)",
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "required": True,
                    "description": "jsonl or csv.",
                    "schema": {"enum": ["jsonl", "csv"]},
                },
                *FILTERS,
            ],
            "responses": {
                "200": {
                    "description": "The export, as an attachment (docs/audit-format.md).",
                    "content": {"application/x-ndjson": _EXPORT_FILE, "text/csv": _EXPORT_FILE},
                },
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/audit/verify": {
        "post": {
            "summary": "Verify the log in the database (no body), or an export file (DPOs; audited)",
            "requestBody": {
                "required": False,
                "content": {"application/octet-stream": _EXPORT_FILE},
            },
            "responses": {
                "200": _json(VERIFICATION, "The verification: ok, or the first break."),
                **_errors(400, 404, 413),
            },
        }
    },
    "/api/v1/audit/documents/{ref}": {
        "get": {
            "summary": "A document's metadata (no file name) and every event naming it (DPOs)",
            "parameters": [_path("ref", "The document's reference."), *PAGING],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["document", "items", "next"],
                        "properties": {
                            "document": DOCUMENT,
                            "items": {"type": "array", "items": EVENT},
                            "next": _TEXT_OR_NULL,
                        },
                    },
                    "The document and its history.",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/audit/users/{user_id}": {
        "get": {
            "summary": "What one user did, newest first (DPOs; audited)",
            "parameters": [_path("user_id", "The user's number."), *PAGING],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["user", "items", "next"],
                        "properties": {
                            "user": {"type": "object"},
                            "items": {"type": "array", "items": EVENT},
                            "next": _TEXT_OR_NULL,
                        },
                    },
                    "The user and their events.",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/cases/{reference}/subject-access": {
        "get": {
            "summary": "Everything held for one case: documents, accesses, holds, destruction "
            "(DPOs; audited)",
            "parameters": [
                _path("reference", "The case reference."),
                _query("format", "json (the default) or csv.", {"enum": ["json", "csv"]}),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["case", "documents"],
                        "properties": {
                            "case": {"type": "object"},
                            "documents": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                    "The case and every document held for it (CSV with format=csv).",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/audit/anomalies": {
        "get": {
            "summary": "Bulk downloads, out-of-hours access, repeated failed sign-ins (DPOs)",
            "parameters": [
                _query(
                    "days",
                    "The window, in days up to now (1 to 90; 7).",
                    {"type": "string", "pattern": "^[0-9]{1,3}$"},
                )
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["items", "next"],
                        "properties": {
                            "items": {"type": "array", "items": ANOMALY},
                            "next": {"type": "null"},
                        },
                    },
                    "Findings, newest first.",
                ),
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/audit/alerts": {
        "get": {
            "summary": "Alerts raised by the anomaly rules and the witness (DPOs)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["items", "next"],
                        "properties": {
                            "items": {"type": "array", "items": ALERT},
                            "next": {"type": "null"},
                        },
                    },
                    "The newest 200 alerts, those not acknowledged first.",
                ),
                **_errors(404),
            },
        }
    },
    "/api/v1/audit/alerts/{alert_id}/acknowledge": {
        "post": {
            "summary": "Acknowledge an alert (DPOs; audited)",
            "parameters": [_path("alert_id", "The alert's number.")],
            "responses": {
                "200": _json(ALERT, "The alert, acknowledged."),
                **_errors(400, 404, 409),
            },
        }
    },
}
