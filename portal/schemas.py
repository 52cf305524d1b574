"""API shapes written once: a pydantic model parses a request body (``web.jsonbody.parse_body``),
writes a response (``web.jsonbody.json_reply``) and is its schema in the OpenAPI document
(``portal.web.openapi`` collects the models). Each domain package keeps its shapes in ``schemas.py``;
this module holds what they share, and knows nothing of HTTP.

    Body       a request body: strict types, and a field the model does not name is a 400
               ``unknown_field`` that names it (threat: a dropped field makes a narrow request
               wide — a hold on a case became a hold on the whole review, issue 16)
    Reply      a response: every field always present, serialised as the API always wrote it
    Time       a UTC instant, written ``2026-03-31T09:00:00+00:00`` (``datetime.isoformat``)
    Stamp      a UTC instant already written as text (the audit log's ``…T09:00:00.000000Z``)
    Day        a date, written ``2026-03-31``
    MISSING    the default of a field a response leaves out when it does not apply (pydantic's
               sentinel: not written, and not required in the schema)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import MISSING, BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from portal.models import as_utc


def _iso_time(moment: datetime) -> str:
    return as_utc(moment).isoformat()


Time = Annotated[
    datetime,
    PlainSerializer(_iso_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Stamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Day = Annotated[date, WithJsonSchema({"type": "string", "format": "date"})]


class Body(BaseModel):
    """A JSON request body. Strict: ``"3"`` is not a number and ``true`` is not 1."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoBody(Body):
    """No field: a route that takes no body (an empty one, or ``{}``, is accepted)."""


class Reply(BaseModel):
    """A JSON response. A field without a default is required in the schema (the API always
    writes it); one defaulting to ``MISSING`` is left out when it does not apply. No other field:
    a row built elsewhere (a page's) that grows a key fails here, not silently in the schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")


__all__ = ["MISSING", "Body", "Day", "NoBody", "Reply", "Stamp", "Time", "dump"]


def dump(value: Reply) -> dict[str, Any]:
    """``value`` as the JSON object the API writes (for the pages and the CLI, which show the
    same shapes)."""
    return value.model_dump(mode="json")
