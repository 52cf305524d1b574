"""A ``multipart/form-data`` body read as a stream: a few small fields, then one file, never on disk.

Threat: Starlette's form parser spools an uploaded file to a temporary file, in plaintext, and a
confidential record left readable on the server's disk is exactly what the portal exists to prevent.
This reader drives python-multipart's low-level parser chunk by chunk and hands the file's bytes on
as they arrive, so that they go straight into the vault's sealing writer; only the small text
fields are kept in memory, each capped.

The page's form puts its other fields (request, case) before the file input, so they have all been
read by the time the file begins; fields after the file are ignored, and so is any second file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from portal.exchange.errors import Refused

MAX_FIELDS = 20
MAX_FIELD_BYTES = 1000


class FormRefused(Refused):
    code = "invalid_form"


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    content_type: str


class FormStream:
    """One pass over a multipart body: ``read_fields()``, then ``file_chunks()``, then ``drain()``."""

    def __init__(self, chunks: AsyncIterator[bytes], content_type: str) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
            raise FormRefused("Send the form as multipart/form-data, with the file in it.")
        self.fields: dict[str, str] = {}
        self._chunks = chunks
        self._ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._current: str | None = None  # "field", "file" or "skip"
        self._field_name = ""
        self._field_value = bytearray()
        self._file: FilePart | None = None
        self._file_data: list[bytes] = []
        self._file_done = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_part,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    # --- Parser callbacks (called from inside MultipartParser.write) ----------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._current = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise FormRefused("The form is malformed: a part has no name. Reload the page.")
        name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                raise FormRefused("The form has too many fields. Reload the page and try again.")
            self._current, self._field_name = "field", name
            self._field_value.clear()
        elif self._file is None:
            self._current = "file"
            self._file = FilePart(
                field=name,
                filename=options[b"filename"].decode("utf-8", "replace"),
                content_type=self._headers.get(b"content-type", b"").decode("latin-1"),
            )
        else:
            self._current = "skip"  # one file per submission: the rest are not read into anything

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current == "file":
            self._file_data.append(bytes(data[start:end]))
        elif self._current == "field":
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise FormRefused("A field of the form is too long. Reload the page and try again.")

    def _part_end(self) -> None:
        if self._current == "field" and self._file is None:
            self.fields[self._field_name] = self._field_value.decode("utf-8", "replace")
        elif self._current == "file":
            self._file_done = True
        self._current = None

    # --- Reading ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._ended = True
            return
        if chunk:
            try:
                self._parser.write(chunk)
            except FormParserError:
                raise FormRefused(
                    "The form could not be read. Reload the page and try again."
                ) from None

    async def read_fields(self) -> FilePart | None:
        """Read up to the start of the first file; its description, or None if there is none."""
        while self._file is None and not self._ended:
            await self._pump()
        return self._file

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The first file's bytes as they arrive. A body cut off mid-file raises FormRefused."""
        while True:
            if self._file_data:
                pending, self._file_data = self._file_data, []
                for piece in pending:
                    yield piece
            if self._file_done:
                return
            if self._ended:
                raise FormRefused(
                    "The upload stopped before the whole file arrived. Nothing was kept. Try again."
                )
            await self._pump()

    async def drain(self, limit: int) -> None:
        """Read what is left of the body (discarding it), so that the browser sees the answer."""
        left = limit
        while not self._ended and left > 0:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                return
            left -= len(chunk)
