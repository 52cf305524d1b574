"""The resumable upload endpoint's part of the OpenAPI document (merged by portal.web.openapi)."""

from __future__ import annotations

from portal.web.openapi_parts import Json, parameter
from portal.web.openapi_parts import errors as _errors


def header_(name: str, description: str, schema: Json, *, required: bool = False) -> Json:
    return parameter(name, "header", description, schema, required=required)


TUS_RESUMABLE = parameter(
    "Tus-Resumable", "header", "The tus protocol version: 1.0.0.", {"const": "1.0.0"}, required=True
)
UPLOAD_ID = {
    "name": "upload_id",
    "in": "path",
    "required": True,
    "description": "The upload's id, from the Location of its creation.",
    "schema": {"type": "string", "maxLength": 64},
}
_OFFSET = {"type": "string", "pattern": "^[0-9]{1,19}$"}
_NO_CONTENT = "No content; see the headers."

UPLOAD_STATE: Json = {
    "type": "object",
    "required": ["offset", "length", "state", "document"],
    "properties": {
        "offset": {"type": "integer"},
        "length": {"type": "integer"},
        "state": {"enum": ["receiving", "complete"]},
        "document": {"oneOf": [{"$ref": "#/components/schemas/Document"}, {"type": "null"}]},
    },
}

PATHS: Json = {
    "/api/v1/uploads": {
        "options": {
            "operationId": "tusDiscover",
            "description": "What the server supports, in the Tus-* headers: no body.",
            "summary": "tus discovery: version, extensions, size limit, checksum algorithms",
            "responses": {"204": {"description": _NO_CONTENT}, **_errors(404)},
        },
        "post": {
            "operationId": "createUpload",
            "description": "The first step of a resumable upload: say how large the file is and what it is; send the bytes with PATCH to the Location.",
            "summary": "Create a resumable upload (tus creation). Upload-Metadata keys, each "
            "value base64: filename, review, and optionally filetype, request, case, sha256 "
            "(hex SHA-256 of the whole file, checked before the document is accepted).",
            "parameters": [
                TUS_RESUMABLE,
                header_("Upload-Length", "The file's size in bytes.", _OFFSET, required=True),
                header_(
                    "Upload-Metadata",
                    "key base64,key base64,...",
                    {"type": "string", "maxLength": 8192},
                    required=True,
                ),
            ],
            "responses": {
                "201": {"description": "Created: its address is in Location."},
                **_errors(400, 404, 409, 412, 413, 415, 429),
            },
        },
    },
    "/api/v1/uploads/{upload_id}": {
        "get": {
            "operationId": "getUpload",
            "description": "How many bytes arrived; once the last arrived, the document it became.",
            "summary": "An upload's progress, and its document once complete",
            "parameters": [UPLOAD_ID],
            "responses": {
                "200": {
                    "description": "Where the upload stands.",
                    "content": {"application/json": {"schema": UPLOAD_STATE}},
                },
                **_errors(404, 410),
            },
        },
        "patch": {
            "operationId": "sendUploadBytes",
            "description": "Resume from the offset the server has: a HEAD or GET says where it stands.",
            "summary": "Send the next bytes from Upload-Offset (tus core, with the checksum "
            "extension). The response to the last bytes carries Upload-Document-Reference.",
            "parameters": [
                UPLOAD_ID,
                TUS_RESUMABLE,
                header_("Upload-Offset", "Where these bytes start.", _OFFSET, required=True),
                header_(
                    "Upload-Checksum",
                    "sha1 or sha256, then the base64 digest of this request's body.",
                    {"type": "string", "maxLength": 200},
                ),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/offset+octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            },
            "responses": {
                "204": {"description": "Received: the new offset is in Upload-Offset."},
                **_errors(400, 404, 409, 410, 412, 413, 415, 460),
            },
        },
        "delete": {
            "operationId": "cancelUpload",
            "description": "Nothing of the file is kept.",
            "summary": "Cancel an upload (tus termination): every byte received is deleted",
            "parameters": [UPLOAD_ID, TUS_RESUMABLE],
            "responses": {"204": {"description": "Deleted."}, **_errors(404, 412)},
        },
    },
}
