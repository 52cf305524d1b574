"""What an uploaded file is, judged by its content, and whether the portal accepts it (SPEC §4).

The name a file arrives with is chosen by whoever sends it, so it decides nothing: :func:`detect`
looks at the bytes. The allow-list is short and closed: PDF; Word, Excel and PowerPoint (Office Open
XML, and the 97-2003 compound-file formats); OpenDocument text, spreadsheets and presentations; RTF;
plain text and CSV; JPEG, PNG and TIFF images; email messages (EML and Outlook MSG). Everything else
is refused with a sentence that says what was found and what to do instead.

Threats this module answers, and those it leaves to others:

- *A program or script under a document's name* (``report.pdf`` that is an EXE, a shell script, an
  HTML page or SVG with script in it): refused by content. Downloads are also served as attachments
  with ``nosniff`` and a name whose extension comes from :attr:`FileType.extension`, never from the
  sender, so a text file is always saved as ``.txt``.
- *Macros*: Office Open XML with a VBA project or Excel 4.0 macro sheets, Word and Excel 97-2003 files
  with a VBA storage, and OpenDocument files with Basic or script libraries are refused. Macros kept
  inside a PowerPoint 97-2003 stream, and exploits inside allowed formats (PDF JavaScript, RTF or Office
  embedded objects, MSG attachments) are ClamAV's to find: every upload is scanned as well.
- *Hostile containers*: zip files are never extracted. We read the central directory (after checking
  from its end record that it is of a sane size), refuse archives whose members overlap (the
  non-recursive zip bomb), whose names are absurd or repeated (two parsers could pick different
  members), whose declared unpacked size is huge, or that are encrypted; and we decompress at most two
  small members (``mimetype``, ``[Content_Types].xml``) with a hard cap. Compound files (OLE2) are
  opened with ``olefile`` in strict mode, and every stream's sector chain is checked to lie within the
  file, so a truncated file is refused rather than half-read.
- *Parser failure as a way through*: :func:`detect` never raises; anything it cannot parse is refused.

Dependencies: ``olefile`` (PyPI) reads compound files. Magic numbers are few and are checked here, on
purpose without libmagic: its answer is free text that changes between versions, so it cannot carry an
allow-list decision, and it would parse hostile input with a C library inside the portal's process.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO
from xml.parsers import expat

import olefile

__all__ = ["HEAD_BYTES", "FileType", "detect", "detect_named"]

HEAD_BYTES = 65536
"""How much of the start of a file :func:`detect` looks at."""


@dataclass(frozen=True)
class FileType:
    """A verdict: what the content is and whether the portal accepts it.

    ``reason`` is set exactly when ``allowed`` is false: one or two sentences for the uploader saying
    what was found and what to do next. ``extension`` is empty for refused types.
    """

    allowed: bool
    media_type: str
    label: str
    extension: str
    reason: str | None = None


def _ok(media_type: str, label: str, extension: str) -> FileType:
    return FileType(True, media_type, label, extension)


def _no(media_type: str, label: str, reason: str) -> FileType:
    return FileType(False, media_type, label, "", reason)


_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."
PDF = _ok("application/pdf", "PDF document", ".pdf")
DOCX = _ok(_OOXML + "wordprocessingml.document", "Word document", ".docx")
XLSX = _ok(_OOXML + "spreadsheetml.sheet", "Excel spreadsheet", ".xlsx")
PPTX = _ok(_OOXML + "presentationml.presentation", "PowerPoint presentation", ".pptx")
ODT = _ok(_ODF + "text", "OpenDocument text document", ".odt")
ODS = _ok(_ODF + "spreadsheet", "OpenDocument spreadsheet", ".ods")
ODP = _ok(_ODF + "presentation", "OpenDocument presentation", ".odp")
DOC = _ok("application/msword", "Word 97-2003 document", ".doc")
XLS = _ok("application/vnd.ms-excel", "Excel 97-2003 spreadsheet", ".xls")
PPT = _ok("application/vnd.ms-powerpoint", "PowerPoint 97-2003 presentation", ".ppt")
RTF = _ok("application/rtf", "Rich Text document", ".rtf")
TEXT = _ok("text/plain", "text file", ".txt")
CSV = _ok("text/csv", "CSV file", ".csv")
JPEG = _ok("image/jpeg", "JPEG image", ".jpg")
PNG = _ok("image/png", "PNG image", ".png")
TIFF = _ok("image/tiff", "TIFF image", ".tif")
EML = _ok("message/rfc822", "email message", ".eml")
MSG = _ok("application/vnd.ms-outlook", "Outlook message", ".msg")

_ACCEPTED_LIST = (
    "PDF, Word, Excel, PowerPoint, OpenDocument, RTF, text, CSV, JPEG, PNG, TIFF, "
    "or email (EML or MSG) files"
)


def _program(media_type: str, what: str) -> FileType:
    return _no(
        media_type,
        what,
        f"This file is a {what}. Programs cannot be uploaded: send the documents themselves.",
    )


def _archive(media_type: str, what: str) -> FileType:
    return _no(
        media_type,
        what,
        f"This file is a {what}. Archives are not accepted: upload the documents themselves.",
    )


def _convert(media_type: str, what: str, why: str, instead: str) -> FileType:
    return _no(media_type, what, f"This file is {_a(what)}. {why}: {instead}.")


def _image(media_type: str, what: str) -> FileType:
    return _convert(
        media_type, what, f"{what}s are not accepted", "convert it to PNG or JPEG and upload that"
    )


def _a(what: str) -> str:
    return ("an " if what[0].lower() in "aeiou" else "a ") + what


EMPTY = _no(
    "application/x-empty",
    "empty file",
    "The file is empty. Check that you chose the right file and upload it again.",
)
UNKNOWN = _no(
    "application/octet-stream",
    "unrecognised file",
    f"This file's type was not recognised, so it cannot be accepted. Upload {_ACCEPTED_LIST}.",
)
WINDOWS_PROGRAM = _program("application/vnd.microsoft.portable-executable", "Windows program")
ZIP = _archive("application/zip", "zip archive")
HTML = _convert(
    "text/html",
    "web page (HTML)",
    "Web pages cannot be uploaded",
    "save or print it as a PDF and upload that",
)
SVG = _convert(
    "image/svg+xml",
    "SVG image",
    "SVG images can contain scripts and cannot be uploaded",
    "convert it to PNG or PDF and upload that",
)
XML = _convert(
    "application/xml",
    "XML file",
    "XML files are not accepted",
    "upload the document as a PDF, Word or Excel file instead",
)
SCRIPT = _no(
    "text/x-script",
    "script",
    "This file is a script (it starts with '#!'). Scripts cannot be uploaded: send the documents themselves.",
)
SERVER_PAGE = _no(
    "application/x-httpd-php",
    "web server script",
    "This file is a web server script (PHP or similar). Scripts cannot be uploaded: send the documents themselves.",
)
UTF32 = _no(
    "text/plain",
    "UTF-32 text file",
    "This text file is saved as UTF-32, which is not accepted. Save it as UTF-8 and upload it again.",
)
PASSWORD_PROTECTED = _no(
    "application/encrypted",
    "password-protected document",
    "This document is protected with a password, so it cannot be checked for viruses. Remove the password and upload it again.",
)
DAMAGED_ZIP = _no(
    "application/zip",
    "damaged document",
    "This file looks like an Office or OpenDocument file but is damaged or built unusually, so it could not be checked. Open it, save it again, and upload the new copy.",
)
DAMAGED_OLE = _no(
    "application/x-ole-storage",
    "damaged document",
    "This file looks like an Office 97-2003 or Outlook file but is damaged or incomplete, so it could not be checked. Open it, save it again, and upload the new copy.",
)
UNREADABLE = _no(
    "application/octet-stream",
    "unreadable file",
    "This file could not be checked, so it cannot be accepted. Save it again and upload the new copy.",
)
NOT_CHECKED = _no(
    "application/zip",
    "unchecked document",
    "This document could not be checked for macros, so it cannot be accepted. Save it again and upload the new copy.",
)

# Refused by their first bytes. Order matters only where one signature starts another.
_REFUSED_SIGNATURES: tuple[tuple[bytes, FileType], ...] = (
    (b"\x7fELF", _program("application/x-executable", "Linux program")),
    (b"\xfe\xed\xfa\xce", _program("application/x-mach-binary", "macOS program")),
    (b"\xfe\xed\xfa\xcf", _program("application/x-mach-binary", "macOS program")),
    (b"\xce\xfa\xed\xfe", _program("application/x-mach-binary", "macOS program")),
    (b"\xcf\xfa\xed\xfe", _program("application/x-mach-binary", "macOS program")),
    (b"\xca\xfe\xba\xbe", _program("application/x-mach-binary", "macOS or Java program")),
    (b"\x00asm", _program("application/wasm", "WebAssembly program")),
    (b"\x1f\x8b", _archive("application/gzip", "gzip archive")),
    (b"7z\xbc\xaf\x27\x1c", _archive("application/x-7z-compressed", "7-Zip archive")),
    (b"Rar!\x1a\x07", _archive("application/vnd.rar", "RAR archive")),
    (b"\xfd7zXZ\x00", _archive("application/x-xz", "xz archive")),
    (
        b"MSCF\x00\x00\x00\x00",
        _archive("application/vnd.ms-cab-compressed", "Windows cabinet archive"),
    ),
    (b"PK\x05\x06", ZIP),  # an empty zip
    (b"PK\x07\x08", ZIP),  # a split zip
    (b"GIF87a", _image("image/gif", "GIF image")),
    (b"GIF89a", _image("image/gif", "GIF image")),
)
_ALLOWED_SIGNATURES: tuple[tuple[bytes, FileType], ...] = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"II+\x00", TIFF),  # BigTIFF
    (b"MM\x00+", TIFF),
    (b"{\\rtf", RTF),
)
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"


def detect(head: bytes, *, open_container: Callable[[], BinaryIO] | None = None) -> FileType:
    """Judge a file by its content: ``head`` is its first :data:`HEAD_BYTES` bytes (all of it if it
    is shorter; anything past that is ignored).

    Zip-based formats (Office Open XML, OpenDocument) and compound files (Office 97-2003, Outlook MSG)
    need a look inside. ``open_container``, when given, is called at most once and must return a
    seekable binary stream of the *whole* file; it is closed after use. Without it the verdict for
    those formats rests on the head alone and is weaker: a zip's member list is read from the local
    headers found in the head (so a macro part or a hostile entry after the first 64 KiB goes unseen,
    overlapping members and the central directory are not checked, and a document whose
    ``[Content_Types].xml`` lies beyond the head is refused as unchecked); a compound file is judged
    by the stream names that appear in the head, without checking its structure or that it is whole.

    Never raises: a file that cannot be parsed, or whose container cannot be opened or read, is
    refused with a reason.
    """
    try:
        return _detect(
            bytes(head[:HEAD_BYTES]), complete=len(head) < HEAD_BYTES, opener=open_container
        )
    except Exception:
        # Hostile input must not find a code path that ends in a 500 or, worse, in acceptance.
        return UNREADABLE


_TEXT_CHOICES = {".txt": TEXT, ".text": TEXT, ".log": TEXT, ".csv": CSV, ".tsv": CSV, ".eml": EML}


def detect_named(
    head: bytes, filename: str, open_container: Callable[[], BinaryIO] | None = None
) -> FileType:
    """:func:`detect`, with the file's name as a tie-breaker between text types.

    Content decides; the name can only choose among the allowed text types that the content also
    fits: any text may be called plain text or CSV (one column has no delimiter to find), and an email
    message is also text. So ``notes.txt`` holding ``Subject:``/``From:`` lines stays a text file,
    and a one-column ``list.csv`` is a CSV file. The name never turns a refusal into acceptance.
    """
    found = detect(head, open_container=open_container)
    if found not in (TEXT, CSV, EML):
        return found
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    wanted = _TEXT_CHOICES.get(suffix)
    if wanted is None or (wanted is EML and found is not EML):
        return found
    return wanted


def _detect(head: bytes, *, complete: bool, opener: Callable[[], BinaryIO] | None) -> FileType:
    if not head:
        return EMPTY
    for signature, verdict in _ALLOWED_SIGNATURES + _REFUSED_SIGNATURES:
        if head.startswith(signature):
            return verdict
    # "MZ" alone is two printable letters; a DOS/PE header always has control bytes in its first 64.
    if head.startswith(b"MZ") and _CONTROL_BYTES.search(head[:64]):
        return WINDOWS_PROGRAM
    if head.startswith(_ZIP):
        return _detect_zip(head, opener)
    if head.startswith(_OLE2):
        return _detect_compound(head, opener)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _image("image/webp", "WebP image")
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return _image("image/heic", "HEIC image")
    return _detect_text(head, complete=complete)


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


# --- Zip: Office Open XML and OpenDocument ---------------------------------------------------------

_MAX_MEMBERS = 10_000
_MAX_DIRECTORY = 4 * 1024 * 1024  # bytes of central directory
_MAX_UNPACKED = 2 * 1024**3  # declared total, in bytes
_MAX_NAME = 512
_MAX_SMALL_MEMBER = 1024 * 1024  # [Content_Types].xml and mimetype are a few KiB at most
_CONTENT_TYPES = "[Content_Types].xml"
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]|^/|(?:^|/)\.\.(?:/|$)")

_ODF_TYPES = {ODT.media_type: ODT, ODS.media_type: ODS, ODP.media_type: ODP}
# OpenDocument macros live in these folders; the *-lc/*-lb files are library indexes, empty or not.
_ODF_MACRO_FOLDERS = ("basic/", "scripts/")
_ODF_LIBRARY_INDEXES = ("script-lc.xml", "script-lb.xml", "dialog-lc.xml", "dialog-lb.xml")

_OOXML_MAIN = {
    _OOXML + "wordprocessingml.document.main+xml": DOCX,
    _OOXML + "spreadsheetml.sheet.main+xml": XLSX,
    _OOXML + "presentationml.presentation.main+xml": PPTX,
}
_OOXML_OTHER_MAIN = {
    _OOXML + "wordprocessingml.template.main+xml": ("Word template", ".docx"),
    _OOXML + "spreadsheetml.template.main+xml": ("Excel template", ".xlsx"),
    _OOXML + "presentationml.template.main+xml": ("PowerPoint template", ".pptx"),
    _OOXML + "presentationml.slideshow.main+xml": ("PowerPoint slide show", ".pptx"),
}


class _Malformed(Exception):
    """The container is not what its first bytes claim, or is built to mislead."""


def _detect_zip(head: bytes, opener: Callable[[], BinaryIO] | None) -> FileType:
    try:
        if opener is None:
            names, small, listed = _walk_local_headers(head)
            return _classify_zip(names, small.get, listing_complete=listed)
        with opener() as stream:
            return _inspect_zip(stream)
    except Exception:
        # zipfile, zlib, struct and expat each have their own ways to fail; all mean "damaged".
        return DAMAGED_ZIP


def _inspect_zip(stream: BinaryIO) -> FileType:
    size = stream.seek(0, io.SEEK_END)
    count, directory_size, directory_offset = _read_end_record(stream, size)
    # zipfile reads the whole central directory into memory: check its size before it does.
    if count > _MAX_MEMBERS or directory_size > _MAX_DIRECTORY:
        raise _Malformed("too many members")
    stream.seek(0)
    with zipfile.ZipFile(stream) as archive:
        members = archive.infolist()
        if len(members) != count:
            raise _Malformed("end record and central directory disagree")
        _check_members(members, directory_offset)

        def read_small(name: str) -> bytes | None:
            info = archive.getinfo(name)
            if info.file_size > _MAX_SMALL_MEMBER:
                return None
            with archive.open(info) as member:  # checks the local header's name matches
                data = member.read(_MAX_SMALL_MEMBER + 1)
            return data if len(data) <= _MAX_SMALL_MEMBER else None

        return _classify_zip([m.filename for m in members], read_small, listing_complete=True)


def _read_end_record(stream: BinaryIO, size: int) -> tuple[int, int, int]:
    """Member count, central directory size and offset, from the end record (zip64 too)."""
    tail_start = max(0, size - (22 + 65535))
    stream.seek(tail_start)
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise _Malformed("no end record")
    _, _, _, _, count, directory_size, directory_offset, _ = struct.unpack_from(
        "<4s4H2LH", tail, at
    )
    if count == 0xFFFF or 0xFFFFFFFF in (directory_size, directory_offset):
        locator = tail_start + at - 20
        if locator < 0:
            raise _Malformed("no zip64 locator")
        stream.seek(locator)
        signature, _, record_offset, _ = struct.unpack("<4sLQL", stream.read(20))
        if signature != b"PK\x06\x07":
            raise _Malformed("no zip64 locator")
        stream.seek(record_offset)
        record = stream.read(56)
        if len(record) != 56 or record[:4] != b"PK\x06\x06":
            raise _Malformed("no zip64 end record")
        count, directory_size, directory_offset = struct.unpack_from("<3Q", record, 32)
    return count, directory_size, directory_offset


def _check_members(members: list[zipfile.ZipInfo], directory_offset: int) -> None:
    names = [m.filename for m in members]
    if len(set(names)) != len(names):
        # Two members of one name: we might read one and Office the other.
        raise _Malformed("duplicate member names")
    if any(len(name) > _MAX_NAME or _BAD_NAME.search(name) for name in names):
        raise _Malformed("absurd member name")
    if any(m.flag_bits & 0x1 for m in members):
        raise _Malformed("encrypted member")
    if sum(m.file_size for m in members) > _MAX_UNPACKED:
        raise _Malformed("declared unpacked size too large")
    # Members must not overlap: overlapping entries are how a small zip unpacks to petabytes.
    ordered = sorted(members, key=lambda m: m.header_offset)
    ends = [m.header_offset + 30 + len(_raw_name(m)) + m.compress_size for m in ordered]
    starts = [m.header_offset for m in ordered[1:]] + [directory_offset]
    if any(end > start for end, start in zip(ends, starts, strict=True)):
        raise _Malformed("overlapping members")


def _raw_name(member: zipfile.ZipInfo) -> bytes:
    return member.orig_filename.encode("utf-8" if member.flag_bits & 0x800 else "cp437")


def _walk_local_headers(head: bytes) -> tuple[list[str], dict[str, bytes], bool]:
    """Member names seen in the head, the small members we need if wholly inside it, and whether
    the walk reached the central directory (so the names are all of them)."""
    names: list[str] = []
    small: dict[str, bytes] = {}
    at = 0
    while len(names) < _MAX_MEMBERS and head[at : at + 4] == _ZIP and at + 30 <= len(head):
        flags, method, size, unpacked, name_length, extra_length = struct.unpack_from(
            "<2xHH8xLLHH", head, at + 4
        )
        data_at = at + 30 + name_length + extra_length
        if data_at > len(head):
            break
        name = head[at + 30 : at + 30 + name_length].decode("utf-8" if flags & 0x800 else "cp437")
        if flags & 0x1:
            raise _Malformed("encrypted member")
        if len(name) > _MAX_NAME or _BAD_NAME.search(name) or name in names:
            raise _Malformed("absurd member name")
        names.append(name)
        if flags & 0x8 or size == 0xFFFFFFFF:
            break  # sizes follow the data (or are in zip64 fields): cannot step over it
        data = head[data_at : data_at + size]
        if (
            name in ("mimetype", _CONTENT_TYPES)
            and len(data) == size
            and unpacked <= _MAX_SMALL_MEMBER
        ):
            unpacked_data = _inflate(data, method)
            if unpacked_data is not None:
                small[name] = unpacked_data
        at = data_at + size
    return names, small, head[at : at + 4] == b"PK\x01\x02"


def _inflate(data: bytes, method: int) -> bytes | None:
    if method == zipfile.ZIP_STORED:
        return data[:_MAX_SMALL_MEMBER]
    if method == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-15).decompress(data, _MAX_SMALL_MEMBER)
    return None


def _classify_zip(
    names: list[str], read_small: Callable[[str], bytes | None], *, listing_complete: bool
) -> FileType:
    lowered = [name.lower() for name in names]
    if "mimetype" in names and _CONTENT_TYPES in names:
        # OpenDocument to us, Office Open XML to Word: each would be checked by the other's rules.
        raise _Malformed("two container formats at once")
    if "mimetype" in names:
        return _classify_odf(read_small("mimetype"), lowered)
    if _CONTENT_TYPES in names:
        content_types = read_small(_CONTENT_TYPES)
        if content_types is None:
            raise _Malformed("content types unreadable or too large")
        return _classify_ooxml(content_types, names, listing_complete=listing_complete)
    if not listing_complete and any(
        name.startswith(("word/", "xl/", "ppt/", "_rels/", "docprops/", "meta-inf/", "customxml/"))
        for name in lowered
    ):
        return NOT_CHECKED
    return ZIP


def _classify_odf(mimetype: bytes | None, lowered: list[str]) -> FileType:
    verdict = _ODF_TYPES.get((mimetype or b"").decode("ascii", "replace").strip())
    if verdict is None:
        return _no(
            "application/zip",
            "zip-based file",
            f"This file is a zip-based format that is not accepted. Upload {_ACCEPTED_LIST}.",
        )
    if any(
        name.startswith(_ODF_MACRO_FOLDERS) and not name.endswith(("/", *_ODF_LIBRARY_INDEXES))
        for name in lowered
    ):
        return _with_macros(verdict.label, verdict.extension, verdict.media_type)
    return verdict


def _classify_ooxml(content_types: bytes, names: list[str], *, listing_complete: bool) -> FileType:
    types, overrides = _parse_content_types(content_types)
    lowered_types = {t.lower() for t in types}
    main = [t for t in overrides if t in _OOXML_MAIN or t in _OOXML_OTHER_MAIN]
    kind = _office_kind(lowered_types)
    macros = any(
        marker in t
        for t in lowered_types
        for marker in ("macroenabled", "vbaproject", "macrosheet")
    ) or any(
        name.lower().endswith("vbaproject.bin") or name.lower().startswith("xl/macrosheets/")
        for name in names
    )
    if macros:
        return _with_macros(*kind)
    if len(main) != 1:
        # None: not a document we know. Several: a file that is two documents at once.
        raise _Malformed("no single main part")
    part = overrides[main[0]]
    if listing_complete and part.lstrip("/") not in names:
        raise _Malformed("main part missing")
    if main[0] in _OOXML_OTHER_MAIN:
        label, extension = _OOXML_OTHER_MAIN[main[0]]
        return _convert(
            _OOXML + "template",
            label,
            f"{label}s are not accepted",
            f"save it as a normal {extension} file and upload that",
        )
    return _OOXML_MAIN[main[0]]


def _office_kind(lowered_types: Iterable[str]) -> tuple[str, str]:
    joined = " ".join(lowered_types)
    for marker, kind in (
        ("wordprocessingml", ("Word document", ".docx")),
        ("ms-word", ("Word document", ".docx")),
        ("spreadsheetml", ("Excel spreadsheet", ".xlsx")),
        ("ms-excel", ("Excel spreadsheet", ".xlsx")),
        ("presentationml", ("PowerPoint presentation", ".pptx")),
        ("ms-powerpoint", ("PowerPoint presentation", ".pptx")),
    ):
        if marker in joined:
            return kind
    return ("Office document", ".docx")


def _with_macros(
    label: str, extension: str, media_type: str = "application/vnd.ms-office.vbaproject"
) -> FileType:
    return _no(
        media_type,
        f"{label} with macros",
        f"This {label} contains macros. Documents with macros cannot be uploaded: "
        f"save it as a {extension} file without macros and upload that.",
    )


def _parse_content_types(data: bytes) -> tuple[list[str], dict[str, str]]:
    """All content types named, and the main-part candidates: content type -> part name."""
    types: list[str] = []
    overrides: dict[str, str] = {}

    def start(name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]
        if local in ("Default", "Override") and "ContentType" in attributes:
            types.append(attributes["ContentType"])
            if local == "Override":
                overrides.setdefault(attributes["ContentType"], attributes.get("PartName", ""))

    def refuse_dtd(*_: object) -> None:
        # No DTD, no entities: the billion-laughs and external-entity attacks need one.
        raise _Malformed("DTD in [Content_Types].xml")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.Parse(data, True)
    return types, overrides


# --- OLE2 compound files: Office 97-2003 and Outlook ----------------------------------------------

_MSI_CLSIDS = {"000C1084-0000-0000-C000-000000000046", "000C1086-0000-0000-C000-000000000046"}
_OLE_NAMES = (
    "WordDocument", "Workbook", "Book", "PowerPoint Document", "Macros", "_VBA_PROJECT_CUR",
    "__properties_version1.0", "__substg1.0_", "EncryptedPackage", "EncryptionInfo",
)  # fmt: skip


def _detect_compound(head: bytes, opener: Callable[[], BinaryIO] | None) -> FileType:
    if opener is None:
        # Weaker: names found anywhere in the head, no structure checked.
        seen = {n.lower() for n in _OLE_NAMES if n.encode("utf-16-le") in head}
        return _classify_compound(seen, clsid=_root_clsid(head))
    try:
        with opener() as stream:
            size = stream.seek(0, io.SEEK_END)
            stream.seek(0)
            ole: Any = olefile.OleFileIO(stream, raise_defects=olefile.DEFECT_INCORRECT)
            try:
                paths = ole.listdir(streams=True, storages=True)
                _check_chains(ole, size)
                clsid = str(ole.root.clsid)
            finally:
                ole.close()
    except Exception:
        # olefile signals defects with several exception types (OleFileError, OSError, IndexError,
        # struct.error...); for us every one of them means the same thing.
        return DAMAGED_OLE
    return _classify_compound({"/".join(p).lower() for p in paths}, clsid=clsid)


def _root_clsid(head: bytes) -> str:
    """The root entry's CLSID, in olefile's notation, if the first directory sector is in the head."""
    if len(head) < 52:
        return ""
    shift, first_directory = struct.unpack_from("<H16xL", head, 30)
    at = (first_directory + 1) * (1 << min(shift, 16)) + 80
    if len(head) < at + 16:
        return ""
    a, b, c = struct.unpack_from("<LHH", head, at)
    return f"{a:08X}-{b:04X}-{c:04X}-{head[at + 8 : at + 10].hex()}-{head[at + 10 : at + 16].hex()}".upper()


def _check_chains(ole: Any, file_size: int) -> None:
    """Every large stream's sectors lie inside the file: otherwise it is truncated. (olefile, even
    strict, only notices when a stream is read, and reading them all would load the whole file.)"""
    fat = ole.fat
    sector_size = int(ole.sectorsize)
    budget = len(fat)  # distinct streams never share sectors
    for entry in ole.direntries:
        if entry is None:
            continue
        regular = entry.entry_type == olefile.STGTY_STREAM and entry.size >= ole.minisectorcutoff
        if not (regular or entry.entry_type == olefile.STGTY_ROOT):
            continue
        sector, remaining = entry.isectStart, int(entry.size)
        while remaining > 0:
            budget -= 1
            needed = min(sector_size, remaining)
            if budget < 0 or not 0 <= sector < len(fat):
                raise _Malformed("sector chain out of range")
            if (sector + 1) * sector_size + needed > file_size:
                raise _Malformed("truncated compound file")
            sector, remaining = fat[sector], remaining - needed


def _classify_compound(names: set[str], *, clsid: str) -> FileType:
    if clsid.upper() in _MSI_CLSIDS:
        return _program("application/x-msi", "Windows installer")
    if "encryptedpackage" in names:
        return PASSWORD_PROTECTED
    if "__properties_version1.0" in names and any(n.startswith("__substg1.0_") for n in names):
        return MSG
    if "worddocument" in names:
        return _with_macros("Word document", ".doc") if "macros" in names else DOC
    if "workbook" in names or "book" in names:
        return _with_macros("Excel spreadsheet", ".xls") if "_vba_project_cur" in names else XLS
    if "powerpoint document" in names:
        return PPT
    return _no(
        "application/x-ole-storage",
        "Microsoft compound file",
        "This file is a Microsoft compound file, but not a Word, Excel, PowerPoint or Outlook file. "
        f"Upload {_ACCEPTED_LIST}.",
    )
