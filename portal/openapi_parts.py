"""Building blocks of the OpenAPI document, shared by every area that describes its routes."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

ERROR: Json = {
    "description": "An error: what went wrong and what to do next.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def errors(*statuses: int) -> Json:
    """The error responses of an operation: always 401 (no or bad token), plus ``statuses``."""
    return {str(status): ERROR for status in sorted({401, *statuses})}


def json_response(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def parameter(
    name: str, where: str, description: str, schema: Json, *, required: bool = False
) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


def path_parameter(name: str, description: str, pattern: str | None = None) -> Json:
    schema: Json = {"type": "string", "maxLength": 64}
    if pattern:
        schema["pattern"] = pattern
    return parameter(name, "path", description, schema)


def query_parameter(name: str, description: str, schema: Json) -> Json:
    return parameter(name, "query", description, schema)
