"""The API's JSON bodies: requests read within bounds and parsed strictly into a model, with
messages that name the field; replies written from their models (``portal.schemas``).

``parse_body`` reads the body with the bounds below (size, depth, an object) and only then
validates it against the model, so a hostile body costs no more than it did before the models.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.responses import JSONResponse

from portal.errors import Invalid
from portal.schemas import Body, Reply
from portal.web.bodies import JSON_MAX_BYTES, JSON_MAX_DEPTH, too_large
from portal.web.requests import URLENCODED

# The route wrapper stops reading at the route's limit (web.bodies); this is the JSON bound itself.
MAX_JSON_BODY = JSON_MAX_BYTES


NO_FIELDS: frozenset[str] = frozenset()


async def json_body(
    request: Request, *, fields: frozenset[str], optional: bool = False
) -> dict[str, Any]:
    """The request's JSON object; a field not in ``fields`` is refused by name (every route
    says what it takes: tests/portal/web/test_strict_bodies.py posts an extra field to each).

    Threat: a field the route does not know is silently dropped, so a request meant to be narrow
    (a hold on a case) does something wider (a hold on the whole review). ``optional``: a route
    that takes no body, or one with no required field, accepts an empty body as ``{}``.
    """
    _, data = await read_json_object(request, optional=optional)
    refuse_unknown(data, fields)
    return data


async def read_json_object(
    request: Request, *, optional: bool = False
) -> tuple[bytes, dict[str, Any]]:
    """The body's bytes and the JSON object they hold, within the size and depth bounds; an
    empty body (``optional`` only) is ``b""`` and ``{}``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A form (parsed already by web.access.route, so not to be read again) is never JSON.
    if optional and content_type != URLENCODED and not await request.body():
        return b"", {}
    if content_type != "application/json":
        raise Invalid(
            "Send the body as JSON (Content-Type: application/json).", code="invalid_body"
        )
    body = await request.body()
    if len(body) > MAX_JSON_BODY:
        raise too_large(MAX_JSON_BODY)
    too_deep = Invalid(
        f"The JSON body is nested more than {JSON_MAX_DEPTH} levels deep. Nothing was changed.",
        code="invalid_body",
    )
    try:
        data = json.loads(body)
    except ValueError:
        raise Invalid("The body is not valid JSON.", code="invalid_body") from None
    except RecursionError:  # {"a": {"a": … nested deeper than the parser goes: was a 500
        raise too_deep from None
    if depth(data) > JSON_MAX_DEPTH:
        raise too_deep
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.", code="invalid_body")
    return body, data


def refuse_unknown(data: dict[str, Any], fields: frozenset[str]) -> None:
    """A 400 ``unknown_field`` naming every field of ``data`` not in ``fields``."""
    unknown = sorted(set(data) - fields)
    if unknown:
        takes = (
            f"it takes {', '.join(map(repr, sorted(fields)))}" if fields else "it takes no field"
        )
        raise Invalid(
            f"This request does not take the field(s) {', '.join(map(repr, unknown))}; {takes}. "
            "Nothing was changed.",
            code="unknown_field",
        )


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def text_field(data: dict[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(f"The field {name!r} is required.", code="invalid_body")
        return default
    if not isinstance(value, str):
        raise Invalid(f"The field {name!r} must be a string.", code="invalid_body")
    return value


def int_field(data: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"The field {name!r} must be a whole number.", code="invalid_body")
    return value


def date_field(data: dict[str, Any], name: str) -> date:
    try:
        return date.fromisoformat(text_field(data, name))
    except ValueError:
        raise Invalid(
            f"The field {name!r} must be a date such as 2026-03-31.", code="invalid_body"
        ) from None


BodyT = TypeVar("BodyT", bound=Body)


async def parse_body(request: Request, model: type[BodyT], *, optional: bool = False) -> BodyT:
    """The request's JSON body as ``model``; 400 ``unknown_field`` for a field the model does not
    take, 400 ``invalid_body`` naming the first field of the wrong type or missing.

    ``optional``: a route that takes no body, or one with no required field, accepts an empty
    body as ``{}``.
    """
    raw, data = await read_json_object(request, optional=optional)
    refuse_unknown(data, frozenset(model.model_fields))
    try:
        # From the JSON text, strictly: a date is a string such as 2026-03-31, never a number.
        return model.model_validate_json(raw or b"{}", strict=True)
    except ValidationError as invalid:
        raise _problem(model, invalid.errors()[0]) from None


_KIND = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "date_type": "a date such as 2026-03-31",
    "date_parsing": "a date such as 2026-03-31",
    "date_from_datetime_parsing": "a date such as 2026-03-31",
    "list_type": "a list",
}


def _problem(model: type[Body], error: ErrorDetails) -> Invalid:
    location = error["loc"]
    name = str(location[0]) if location else ""
    field = model.model_fields.get(name)
    if error["type"] == "missing" or (
        error.get("input") is None and field is not None and field.is_required()
    ):
        return Invalid(f"The field {name!r} is required.", code="invalid_body")
    kind = _KIND.get(error["type"])
    if kind is not None and len(location) == 1:
        return Invalid(f"The field {name!r} must be {kind}.", code="invalid_body")
    return Invalid(f"The field {name!r} is not valid: {error['msg']}.", code="invalid_body")


def json_reply(value: Reply, status_code: int = 200) -> JSONResponse:
    """``value`` written as the API writes it: the model's JSON, nothing else."""
    return JSONResponse(value.model_dump(mode="json"), status_code=status_code)
