"""A small file sent to the console (an audit export to verify): read into memory, capped.

Threat: a body spooled to disk, or one large enough to exhaust memory. Starlette's form parser
would spool the file to a temporary file, so the exchange's streaming multipart reader is used, and
reading stops at the cap. An export is not personal content, but the rule is the same everywhere:
nothing uploaded lands on the server's disk unasked.
"""

from __future__ import annotations

from starlette.requests import Request

from portal.exchange.errors import TooLarge
from portal.exchange.multipart import FormRefused, FormStream
from portal.web.access import check_form_token

FORM_SLACK = 64 * 1024


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"The file is larger than {limit // (1024 * 1024)} MB, the most the console checks. "
        "Verify it on your own computer with `portal audit verify --export FILE --public-key "
        "KEY`, or export a shorter period."
    )


async def read_small_file(request: Request, *, limit: int, field: str = "export") -> bytes:
    """The bytes of the form's file field, at most ``limit`` of them; raises FormRefused (no
    file, a malformed form) or TooLarge."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise _too_large(limit)
    form: FormStream | None = None
    try:
        form = FormStream(request.stream(), request.headers.get("content-type", ""))
        part = await form.read_fields()
    except FormRefused:
        await check_form_token(request, form.fields if form else {})  # a 403 comes first
        raise
    # The form's token is its first field (never the address): checked before the file is read.
    await check_form_token(request, form.fields)
    if part is None or part.field != field or not part.filename:
        raise FormRefused("Choose an export file (.jsonl or .csv) to check.")
    data = bytearray()
    async for chunk in form.file_chunks():
        data += chunk
        if len(data) > limit:
            raise _too_large(limit)
    await form.drain(FORM_SLACK)
    if not data:
        raise FormRefused("The file you chose is empty. Choose an audit export file.")
    return bytes(data)
