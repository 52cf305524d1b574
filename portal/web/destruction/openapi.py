"""The destruction API's part of the OpenAPI document (merged by portal.web.openapi); its bodies and
responses are the models of destruction.schemas."""

from __future__ import annotations

from portal.destruction import schemas
from portal.web.openapi_parts import Json, operation
from portal.web.openapi_parts import errors as _errors
from portal.web.openapi_parts import json_body as _body
from portal.web.openapi_parts import json_response as _json
from portal.web.openapi_parts import path_parameter as _path


def _flag(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"enum": ["true", "false"]},
    }


CODE = _path("code", "The review's code, e.g. SWG24.")

PATHS: Json = {
    "/api/v1/destruction/schedule": {
        "get": operation(
            "getDestructionSchedule",
            "What is due for destruction and when, what is held (DPOs; leads: theirs)",
            "Every review with its destruction date (closes_on + retention_days), its status and "
            "what holds keep. Leads see the reviews they lead; destroyed reviews only on request.",
            {"200": _json(schemas.Schedule, "The schedule."), **_errors(404)},
            parameters=[_flag("include_destroyed", "Also list destroyed reviews.")],
        )
    },
    "/api/v1/holds": {
        "get": operation(
            "listHolds",
            "Holds and leads' requests for holds",
            "Active holds and leads' pending requests, newest first; lifted ones on request.",
            {"200": _json(schemas.Holds, "Holds."), **_errors(404)},
            parameters=[_flag("include_lifted", "Also list lifted holds.")],
        ),
        "post": operation(
            "placeHold",
            "Place a hold on a review, a document or a case (DPOs); leads request one",
            "A DPO's hold is binding at once: destruction skips what it covers. A lead's is a "
            "request, recorded and shown to DPOs, which binds only an early destruction.",
            {
                "201": _json(
                    schemas.Hold, "Placed (state active), or requested (state requested)."
                ),
                **_errors(400, 404, 410),
            },
            requestBody=_body(schemas.NewHold),
        ),
    },
    "/api/v1/holds/{hold_id}/lift": {
        "post": operation(
            "liftHold",
            "Lift a hold, or decline a lead's request, saying why (DPOs)",
            "The reason is a category, never free text; the hold's record is kept.",
            {"200": _json(schemas.Hold, "Lifted."), **_errors(400, 404)},
            parameters=[_path("hold_id", "The hold's number.")],
            requestBody=_body(schemas.LiftHold),
        )
    },
    "/api/v1/reviews/{code}/destruction/request": {
        "post": operation(
            "requestEarlyDestruction",
            "Ask to destroy a closed review before its date (DPOs)",
            "The first of two people: another DPO or an administrator must approve. Takes no body.",
            {
                "201": _json(schemas.EarlyDestruction, "Requested: a second person must approve."),
                **_errors(400, 404, 409),
            },
            parameters=[CODE],
        )
    },
    "/api/v1/reviews/{code}/destruction/approve": {
        "post": operation(
            "approveEarlyDestruction",
            "Approve early destruction (another DPO or an administrator)",
            "The second person: not the one who asked. The next destruction run destroys the "
            "review. Takes no body.",
            {
                "200": _json(
                    schemas.EarlyDestruction, "Approved: the next run destroys the review."
                ),
                **_errors(400, 404, 409),
            },
            parameters=[CODE],
        )
    },
    "/api/v1/certificates": {
        "get": operation(
            "listCertificates",
            "Destruction certificates (DPOs; leads: their reviews')",
            "One summary per certificate issued by a destruction run.",
            {"200": _json(schemas.Certificates, "Certificates."), **_errors(404)},
        )
    },
    "/api/v1/certificates/{ref}": {
        "get": operation(
            "getCertificate",
            "One signed certificate, as `portal certificate export` writes it",
            "Verifiable offline with the portal's public key (docs/destruction.md).",
            {
                "200": _json(schemas.SignedCertificate, "The signed certificate."),
                **_errors(400, 404),
            },
            parameters=[_path("ref", "The certificate's reference.")],
        )
    },
}
