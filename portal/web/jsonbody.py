"""Small JSON request bodies for the API: parsed strictly, with messages that name the field."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from starlette.requests import Request

from portal.errors import Invalid
from portal.web.bodies import JSON_MAX_BYTES, JSON_MAX_DEPTH, too_large
from portal.web.requests import URLENCODED

# The route wrapper stops reading at the route's limit (web.bodies); this is the JSON bound itself.
MAX_JSON_BODY = JSON_MAX_BYTES


NO_FIELDS: frozenset[str] = frozenset()


async def json_body(
    request: Request, *, fields: frozenset[str], optional: bool = False
) -> dict[str, Any]:
    """The request's JSON object; a field not in ``fields`` is refused by name (every route
    says what it takes: tests/portal/test_strict_bodies.py posts an extra field to each).

    Threat: a field the route does not know is silently dropped, so a request meant to be narrow
    (a hold on a case) does something wider (a hold on the whole review). ``optional``: a route
    that takes no body, or one with no required field, accepts an empty body as ``{}``.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A form (parsed already by web.access.route, so not to be read again) is never JSON.
    if optional and content_type != URLENCODED and not await request.body():
        return {}
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
    return data


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
