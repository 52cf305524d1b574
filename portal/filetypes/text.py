"""Plain text, CSV and e-mail messages, told apart from markup and scripts by their content."""

from __future__ import annotations

import codecs
import csv
import io
import re
from itertools import islice

from portal.filetypes.kinds import (
    CSV,
    EML,
    HTML,
    SCRIPT,
    SERVER_PAGE,
    SVG,
    TEXT,
    UNKNOWN,
    UTF32,
    XML,
    FileType,
)

# --- Text -----------------------------------------------------------------------------------------

# Control characters other than tab, LF, FF and CR; as bytes (8-bit text) and as characters.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# What browsers sniff as HTML (WHATWG MIME Sniffing, "identifying a resource with an unknown MIME
# type"): one of these tags after leading whitespace, followed by a space or '>'.
_HTML_START = re.compile(
    r"<(?:!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)"
    r"[\s>]"
)
_MARKUP_START = re.compile(r"<[a-z!?%]")


def _decode_text(head: bytes, *, complete: bool) -> str | None:
    """The head as text, or None when it is not text in an accepted encoding."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return _decode(head[len(bom) :], codec, complete=complete)
    if _CONTROL_BYTES.search(head):
        return None
    text = _decode(head, "utf-8", complete=complete)
    if text is None:
        text = _decode(head, "cp1252", complete=True)  # strict: its five undefined bytes fail
    return text


def _decode(data: bytes, codec: str, *, complete: bool) -> str | None:
    # A head cut at 64 KiB may end inside a character: the incremental decoder leaves it out.
    try:
        text = codecs.getincrementaldecoder(codec)("strict").decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    return None if _CONTROL_CHARS.search(text) else text


def _detect_text(head: bytes, *, complete: bool) -> FileType:
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return UTF32
    text = _decode_text(head, complete=complete)
    if text is None:
        return UNKNOWN
    start = text.lstrip(" \t\r\n\f\ufeff")
    if not start:
        return TEXT
    lowered = start.lower()
    if start.startswith("#!"):
        return SCRIPT
    if lowered.startswith(("<?php", "<%")):
        return SERVER_PAGE
    if _MARKUP_START.match(lowered):
        # Markup of any kind: none is on the allow-list. Name it as precisely as we can.
        if re.search(r"<svg[\s>/]", lowered):
            return SVG
        if _HTML_START.match(lowered) or re.search(r"<html[\s>]", lowered):
            return HTML
        return XML
    if _looks_like_email(text):
        return EML
    if _looks_like_csv(text, complete=complete):
        return CSV
    return TEXT


_HEADER_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:")  # RFC 5322 field name: printable ASCII but ':'
_EMAIL_FIELDS = {
    "from", "to", "cc", "subject", "date", "message-id", "received", "return-path",
    "mime-version", "reply-to", "sender", "delivered-to", "content-type",
}  # fmt: skip


def _looks_like_email(text: str) -> bool:
    """RFC 5322 header lines from the very start, up to the blank line that ends them."""
    names: set[str] = set()
    for line in islice(text.splitlines(), 500):
        if not line:
            break
        if line[0] in " \t" and names:
            continue  # a folded header continues
        field = _HEADER_FIELD.match(line)
        if field is None:
            return False
        names.add(field.group(1).lower())
    known = names & _EMAIL_FIELDS
    return len(known) >= 2 and bool(known & {"from", "date", "received", "message-id"})


def _looks_like_csv(text: str, *, complete: bool) -> bool:
    """At least two rows that all split into the same number (two or more) of fields."""
    if not complete:
        text = text[: text.rfind("\n") + 1]
    for delimiter in ",;\t|":
        if delimiter not in text:
            continue
        try:
            rows = [
                row for row in islice(csv.reader(io.StringIO(text), delimiter=delimiter), 50) if row
            ]
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(rows) >= 2 and len(widths) == 1 and widths.pop() >= 2:
            return True
    return False
