"""Request bodies, bounded: no route reads more than its own limit, and a form is small.

Threat (issue 18, item 3): an unauthenticated ``POST /sign-in`` with a 900 MB urlencoded body made
a node hold about 1 GB, because the CSRF check parsed the form with Starlette's defaults before any
limit of the route applied. Now every route declares how much body it takes (``web.access.route``,
``body=``): pages take a form of at most ``FORM_MAX_BYTES``, API routes a JSON body of at most
``JSON_MAX_BYTES``, and only the upload routes (``STREAMED``) take more, counting the bytes
themselves against the upload limit, after authentication. A ``Content-Length`` above the limit is
refused before a byte is read; a body without one (chunked) is counted as it arrives and reading
stops at the first chunk past the limit: the stream is never buffered beyond it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.errors import Invalid, TooLarge

FORM_MAX_BYTES: Final = 64 * 1024
FORM_MAX_FIELDS: Final = 100
JSON_MAX_BYTES: Final = 1024 * 1024
JSON_MAX_DEPTH: Final = 32


class Streamed:
    """A route that reads a large body itself (an upload) and counts it against its own limit."""

    def __repr__(self) -> str:
        return "STREAMED"


STREAMED: Final = Streamed()
BodyLimit = int | Streamed


def too_large(limit: int) -> TooLarge:
    size = f"{limit // 1024:,} KiB" if limit < 1024 * 1024 else f"{limit // (1024 * 1024):,} MiB"
    return TooLarge(
        f"This request is larger than this address accepts ({size}). Nothing was changed. "
        "Go back and send less; files go through the upload page.",
        code="body_too_large",
    )


def declared_length(headers: Headers) -> int | None:
    """The Content-Length, or None when there is none (or it is not a whole number: the server
    refuses those itself)."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def limit_body(app: ASGIApp, limit: int) -> ASGIApp:
    """``app`` with its request body capped at ``limit`` bytes: a 413 instead of the rest."""

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = declared_length(Headers(scope=scope))
        if declared is not None and declared > limit:
            raise too_large(limit)  # before authentication, before a byte is read
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Nothing reads on: the server discards what is still arriving (and nginx
                    # refuses it before it gets here).
                    raise too_large(limit)
            return message

        await app(scope, counted, send)

    return limited


async def read_form(request: Request) -> FormData:
    """A urlencoded form of at most ``FORM_MAX_BYTES`` and ``FORM_MAX_FIELDS`` fields, whatever
    the route's own limit (an upload route's is large): parsed once, before the CSRF check."""
    declared = declared_length(request.headers)
    if declared is not None and declared > FORM_MAX_BYTES:
        raise too_large(FORM_MAX_BYTES)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise too_large(FORM_MAX_BYTES)
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"),
            keep_blank_values=True,
            max_num_fields=FORM_MAX_FIELDS,
            encoding="utf-8",
            errors="replace",
        )
    except ValueError:
        raise Invalid(
            f"The form has more than {FORM_MAX_FIELDS} fields. Go back, reload the page and try "
            "again.",
            code="invalid_form",
        ) from None
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)
