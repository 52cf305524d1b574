"""The API reference as a page (/docs/api): every operation, its parameters and answers, and every
schema, read from the same OpenAPI document scripts fetch (portal.web.openapi).

Rendered on the server with the design system's classes, so it needs no JavaScript and no CDN
(the CSP allows neither inline script nor another origin).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.web import openapi
from portal.web.openapi_parts import Json
from portal.web.rendering import render

METHODS = ("get", "post", "put", "patch", "delete", "options")


@dataclass(frozen=True)
class TypeText:
    """How a schema reads: words, and the schema it names (a link), if any."""

    words: str
    link: str | None = None


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str
    required: bool
    type: TypeText
    description: str


@dataclass(frozen=True)
class Answer:
    status: str
    description: str
    media: str | None
    type: TypeText | None


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str
    summary: str
    description: str
    parameters: list[Parameter]
    body_media: str | None
    body: TypeText | None
    answers: list[Answer]


@dataclass(frozen=True)
class Property:
    name: str
    required: bool
    type: TypeText
    description: str


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    properties: list[Property]
    values: list[str]  # an enumeration's
    closed: bool  # no other field is accepted


def type_text(schema: Json) -> TypeText:
    """``schema`` in a few words: "string (date-time)", "list of Hold", "one of: a, b"."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return TypeText(name, name)
    for combined in ("anyOf", "oneOf"):
        if combined in schema:
            parts = [type_text(s) for s in schema[combined]]
            link = next((p.link for p in parts if p.link), None)
            return TypeText(" or ".join(p.words for p in parts), link)
    if "enum" in schema:
        return TypeText(
            "one of: " + ", ".join("null" if v is None else str(v) for v in schema["enum"])
        )
    if "const" in schema:
        return TypeText(f"exactly {schema['const']}")
    kind = schema.get("type")
    if isinstance(kind, list):
        return TypeText(" or ".join(kind))
    if kind == "array":
        item = type_text(schema.get("items", {}))
        return TypeText(f"list of {item.words}", item.link)
    if kind is None:
        return TypeText("any JSON")
    details = [schema[k] for k in ("format", "pattern") if k in schema]
    return TypeText(f"{kind} ({', '.join(map(str, details))})" if details else str(kind))


def _operations(document: Json) -> list[Operation]:
    found = []
    for path, methods in document["paths"].items():
        for method in METHODS:
            spec = methods.get(method)
            if spec is None:
                continue
            body = spec.get("requestBody", {}).get("content", {})
            body_media = next(iter(body), None)
            found.append(
                Operation(
                    id=spec["operationId"],
                    method=method.upper(),
                    path=path,
                    summary=spec["summary"],
                    description=spec["description"],
                    parameters=[
                        Parameter(
                            p["name"],
                            p["in"],
                            bool(p.get("required")),
                            type_text(p.get("schema", {})),
                            p.get("description", ""),
                        )
                        for p in spec.get("parameters", [])
                    ],
                    body_media=body_media,
                    body=type_text(body[body_media]["schema"]) if body_media else None,
                    answers=[
                        _answer(status, answer) for status, answer in spec["responses"].items()
                    ],
                )
            )
    return found


def _answer(status: str, answer: Json) -> Answer:
    content = answer.get("content", {})
    media = next(iter(content), None)
    schema = content[media].get("schema") if media else None
    return Answer(status, answer["description"], media, type_text(schema) if schema else None)


def _schemas(document: Json) -> list[Schema]:
    found = []
    for name, schema in sorted(document["components"]["schemas"].items()):
        required = set(schema.get("required", []))
        found.append(
            Schema(
                name=name,
                description=schema.get("description", ""),
                properties=[
                    Property(key, key in required, type_text(value), value.get("description", ""))
                    for key, value in schema.get("properties", {}).items()
                ],
                values=[str(v) for v in schema.get("enum", [])],
                closed=schema.get("additionalProperties") is False,
            )
        )
    return found


@functools.cache
def _reference() -> dict[str, Any]:
    """Read once per process, as openapi.served is (the document depends on the code only)."""
    return page_context(openapi.document())


def page_context(document: Json) -> dict[str, Any]:
    return {
        "info": document["info"],
        "operations": _operations(document),
        "schemas": _schemas(document),
    }


async def api_page(request: Request) -> Response:
    return render(request, "api.html", _reference())
