"""The verdicts: every type the portal knows, accepted or refused, with its plain-English reason."""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 65536

# Container signatures: a zip's first local header, and an OLE2 compound file's header.
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
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
UNUSUAL_COMPRESSION = _no(
    "application/zip",
    "unusually compressed document",
    "This file looks like an Office or OpenDocument file, but parts of it are compressed in a way "
    "Office and OpenDocument programs do not use, so it could not be checked for viruses. Open it, "
    "save it again, and upload the new copy.",
)
NOT_CHECKED = _no(
    "application/zip",
    "unchecked document",
    "This document could not be checked for macros, so it cannot be accepted. Save it again and upload the new copy.",
)

# Refused by their first bytes. Order matters only where one signature starts another.
