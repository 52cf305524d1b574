"""The destruction API's part of the OpenAPI document (merged by portal.openapi)."""

from __future__ import annotations

from portal.destruction.models import EarlyState, HoldReason, HoldScope, HoldState, LiftReason
from portal.openapi_parts import Json
from portal.openapi_parts import errors as _errors
from portal.openapi_parts import json_response as _json
from portal.openapi_parts import path_parameter as _path

_DATE = {"type": "string", "format": "date"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_ID_OR_NULL = {"type": ["integer", "null"]}


def _list(item: Json) -> Json:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": item}, "next": {"type": "null"}},
    }


def _flag(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"enum": ["true", "false"]},
    }


ENTRY: Json = {
    "type": "object",
    "required": ["review", "state", "destroy_on", "status", "documents", "held_documents"],
    "properties": {
        "review": {"type": "string"},
        "state": {"type": "string"},
        "closes_on": _DATE,
        "retention_days": {"type": "integer"},
        "destroy_on": _DATE,
        "status": {"enum": ["due", "scheduled", "held", "not_closed", "destroyed"]},
        "documents": {"type": "integer", "description": "Documents not yet destroyed."},
        "held_documents": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Documents kept by a hold on them or on their case (during an early "
            "destruction, by a lead's pending request too).",
        },
        "review_holds": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "Holds that keep the whole review now (during an early destruction, "
            "leads' pending requests too).",
        },
        "requested_holds": {"type": "array", "items": {"type": "integer"}},
        "early_destruction": {"enum": [*(s.value for s in EarlyState), None]},
    },
}

HOLD: Json = {
    "type": "object",
    "required": ["id", "review", "scope", "document", "case", "reason", "state", "lift_reason"],
    "properties": {
        "id": {"type": "integer"},
        "review": {"type": ["string", "null"]},
        "scope": {"enum": [s.value for s in HoldScope]},
        "document": {"type": ["string", "null"]},
        "case": {"type": ["string", "null"], "description": "The case held (scope case)."},
        "reason": {"enum": [r.value for r in HoldReason]},
        "order_reference": {"type": ["string", "null"]},
        "state": {"enum": [s.value for s in HoldState]},
        "lift_reason": {"enum": [*(r.value for r in LiftReason), None]},
        "requested_by": _ID_OR_NULL,
        "requested_at": _TIME_OR_NULL,
        "placed_by": _ID_OR_NULL,
        "placed_at": _TIME_OR_NULL,
        "lifted_by": _ID_OR_NULL,
        "lifted_at": _TIME_OR_NULL,
    },
}

NEW_HOLD: Json = {
    "type": "object",
    "required": ["review", "reason"],
    "properties": {
        "review": {"type": "string", "description": "The review's code."},
        "document": {
            "type": "string",
            "description": "A document's reference: hold that document only.",
        },
        "case": {
            "type": "string",
            "description": "A case's reference (of this review): hold every document of the "
            "case, those uploaded later too. Not with `document`.",
        },
        "reason": {"enum": [r.value for r in HoldReason]},
        "order_reference": {
            "type": "string",
            "maxLength": 40,
            "pattern": "^[A-Za-z0-9][A-Za-z0-9/._-]{0,39}$",
            "description": "The reference of the order behind the hold; no names, no notes.",
        },
    },
    "additionalProperties": False,
}

LIFT: Json = {
    "type": "object",
    "required": ["reason"],
    "properties": {"reason": {"enum": [r.value for r in LiftReason]}},
    "additionalProperties": False,
}

EARLY: Json = {
    "type": "object",
    "required": ["review", "state", "requested_by", "approved_by"],
    "properties": {
        "review": {"type": "string"},
        "state": {"enum": [s.value for s in EarlyState]},
        "requested_by": {"type": "integer"},
        "approved_by": _ID_OR_NULL,
    },
}

CERTIFICATE_SUMMARY: Json = {
    "type": "object",
    "required": ["reference", "review", "issued_at", "documents", "key_fingerprint"],
    "properties": {
        "reference": {"type": "string"},
        "review": {"type": ["string", "null"]},
        "issued_at": {"type": "string", "format": "date-time"},
        "documents": {"type": "integer"},
        "key_fingerprint": {"type": "string"},
    },
}

SIGNED_CERTIFICATE: Json = {
    "type": "object",
    "required": ["algorithm", "certificate", "public_key_fingerprint", "signature"],
    "description": "Canonical JSON (docs/destruction.md); the signature covers the canonical "
    "JSON of `certificate`.",
    "properties": {
        "algorithm": {"const": "Ed25519"},
        "certificate": {"type": "object"},
        "public_key_fingerprint": {"type": "string"},
        "signature": {"type": "string"},
    },
}

CODE = _path("code", "The review's code, e.g. SWG24.")

PATHS: Json = {
    "/api/v1/destruction/schedule": {
        "get": {
            "summary": "What is due for destruction and when, what is held (DPOs; leads: theirs)",
            "parameters": [_flag("include_destroyed", "Also list destroyed reviews.")],
            "responses": {"200": _json(_list(ENTRY), "The schedule."), **_errors(404)},
        }
    },
    "/api/v1/holds": {
        "get": {
            "summary": "Holds and leads' requests for holds",
            "parameters": [_flag("include_lifted", "Also list lifted holds.")],
            "responses": {"200": _json(_list(HOLD), "Holds."), **_errors(404)},
        },
        "post": {
            "summary": "Place a hold on a review, a document or a case (DPOs); leads request one",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": NEW_HOLD}},
            },
            "responses": {
                "201": _json(HOLD, "Placed (state active), or requested (state requested)."),
                **_errors(400, 404, 410),
            },
        },
    },
    "/api/v1/holds/{hold_id}/lift": {
        "post": {
            "summary": "Lift a hold, or decline a lead's request, saying why (DPOs)",
            "parameters": [_path("hold_id", "The hold's number.")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": LIFT}}},
            "responses": {"200": _json(HOLD, "Lifted."), **_errors(400, 404)},
        }
    },
    "/api/v1/reviews/{code}/destruction/request": {
        "post": {
            "summary": "Ask to destroy a closed review before its date (DPOs)",
            "parameters": [CODE],
            "responses": {
                "201": _json(EARLY, "Requested: a second person must approve."),
                **_errors(404, 409),
            },
        }
    },
    "/api/v1/reviews/{code}/destruction/approve": {
        "post": {
            "summary": "Approve early destruction (another DPO or an administrator)",
            "parameters": [CODE],
            "responses": {
                "200": _json(EARLY, "Approved: the next run destroys the review."),
                **_errors(404, 409),
            },
        }
    },
    "/api/v1/certificates": {
        "get": {
            "summary": "Destruction certificates (DPOs; leads: their reviews')",
            "responses": {
                "200": _json(_list(CERTIFICATE_SUMMARY), "Certificates."),
                **_errors(404),
            },
        }
    },
    "/api/v1/certificates/{ref}": {
        "get": {
            "summary": "One signed certificate, as `portal certificate export` writes it",
            "parameters": [_path("ref", "The certificate's reference.")],
            "responses": {
                "200": _json(SIGNED_CERTIFICATE, "The signed certificate."),
                **_errors(400, 404),
            },
        }
    },
}
