"""Building blocks of the OpenAPI document, shared by every area that describes its routes.

Paths are written by hand; bodies and responses name a pydantic model (``web.schemas``) instead
of a schema. ``components`` collects every model named, once, with ``$defs`` of nested models
and enums, as ``#/components/schemas/<Model>``: the schema a client reads is the model that parses
its request and writes its response.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

Json = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]


@dataclass(frozen=True)
class ModelRef:
    """A place in the document where a model's schema goes, as a ``$ref``."""

    model: type[BaseModel]
    mode: Mode


def request_schema(model: type[BaseModel]) -> ModelRef:
    return ModelRef(model, "validation")


def response_schema(model: type[BaseModel]) -> ModelRef:
    return ModelRef(model, "serialization")


def errors(*statuses: int) -> Json:
    """The error responses of an operation: always 401 (no or bad token) and 500 (the server's
    own failure: the message names a request id, never the cause), plus ``statuses``."""
    error = {
        "description": "An error: what went wrong and what to do next.",
        "content": {"application/json": {"schema": response_schema(Error)}},
    }
    return {str(status): error for status in sorted({401, 500, *statuses})}


def json_response(schema: Json | type[BaseModel], description: str) -> Json:
    described = response_schema(schema) if isinstance(schema, type) else schema
    return {"description": description, "content": {"application/json": {"schema": described}}}


def json_body(model: type[BaseModel], *, required: bool = True) -> Json:
    return {
        "required": required,
        "content": {"application/json": {"schema": request_schema(model)}},
    }


def operation(
    operation_id: str, summary: str, description: str, responses: Json, **extra: Any
) -> Json:
    """One operation: every one has an ``operationId`` and a description (the API page shows
    both)."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "responses": responses,
        **extra,
    }


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


def _model_refs(value: Any) -> Iterator[ModelRef]:
    if isinstance(value, ModelRef):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _model_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _model_refs(item)


def _replaced(value: Any, refs: dict[ModelRef, Json]) -> Any:
    if isinstance(value, ModelRef):
        return refs[value]
    if isinstance(value, dict):
        return {key: _replaced(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, refs) for item in value]
    return value


def with_schemas(paths: Json) -> tuple[Json, Json]:
    """``paths`` with every model replaced by a ``$ref``, and the components' schemas."""
    wanted = sorted(set(_model_refs(paths)), key=lambda r: (r.model.__name__, r.mode))
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [(r.model, r.mode) for r in wanted]
    key_map, top = models_json_schema(keys, ref_template=REF_TEMPLATE)
    refs = {r: key_map[(r.model, r.mode)] for r in wanted}
    schemas: Json = top.get("$defs", {})
    return _replaced(paths, refs), schemas


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    """What went wrong (a stable ``code``) and what to do next (the ``message``)."""

    error: ErrorDetail
