"""The name a document is saved under: the sender's base name, the detected type's extension.

Threat (issue 18): the sender chose the extension the inspector's computer saves, so text sent as
``run-me.bat`` (or ``.hta``, ``.js``, ``.vbs``, ``.lnk``, ``.html``, ``.svg``…) was saved under that
name and ran as a program, a script or a web page when opened. Here the extension comes only from the
type the content was detected as (:data:`EXTENSIONS`); a media type that is not an accepted one gets
``.bin``, which nothing opens. The sender's base name is kept, sanitised, because inspectors need it,
but an extension-like tail left inside it (``invoice.exe.txt``) is defused (``invoice_exe.txt``) so
that a viewer hiding known extensions does not show ``invoice.exe``.
"""

from __future__ import annotations

import re
import unicodedata

from portal.filetypes.kinds import (
    CSV,
    DOC,
    DOCX,
    EML,
    JPEG,
    MSG,
    ODP,
    ODS,
    ODT,
    PDF,
    PNG,
    PPT,
    PPTX,
    RTF,
    TEXT,
    TIFF,
    XLS,
    XLSX,
)

EXTENSIONS: dict[str, str] = {
    kind.media_type: kind.extension
    for kind in (
        PDF,
        DOCX,
        XLSX,
        PPTX,
        ODT,
        ODS,
        ODP,
        DOC,
        XLS,
        PPT,
        RTF,
        TEXT,
        CSV,
        JPEG,
        PNG,
        TIFF,
        EML,
        MSG,
    )
}
"""Media type of every accepted kind → the only extension a download of it is saved with."""

UNKNOWN_EXTENSION = ".bin"
MAX_NAME = 200  # characters, extension included

# A tail that looks like an extension: a dot and up to 10 letters or digits, at least one a letter
# (so that "Minutes 12.03.2026" keeps its date).
_EXTENSION_TAIL = re.compile(r"\.(?=[0-9]*[^\W\d_])\w{1,10}$")
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')  # not allowed in a Windows file name
_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}


def extension_for(media_type: str | None) -> str:
    """The extension for a stored document's media type (parameters such as charset ignored)."""
    bare = (media_type or "").split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(bare, UNKNOWN_EXTENSION)


def base_name(name: str | None) -> str:
    """The sender's name without its extension: last path component, no control or format
    characters, no characters Windows forbids, no leading or trailing dots or spaces, and any
    extension-like tail left over defused. Empty when nothing usable is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Category C: controls, and format characters such as U+202E (right-to-left override).
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _FORBIDDEN.sub("_", name).strip(" .")
    name = _EXTENSION_TAIL.sub("", name).rstrip(" .")
    while (tail := _EXTENSION_TAIL.search(name)) is not None:
        name = name[: tail.start()].rstrip(" .") + "_" + tail.group()[1:]
    if name.split(".", 1)[0].strip().upper() in _DEVICES:
        name += "_"
    return name


def download_name(name: str | None, media_type: str | None, fallback: str = "document") -> str:
    """The name to save a document as: the sender's base name (or ``fallback``) and the detected
    type's extension, at most :data:`MAX_NAME` characters."""
    extension = extension_for(media_type)
    stem = base_name(name) or base_name(fallback) or "document"
    return stem[: MAX_NAME - len(extension)].rstrip(" .") + extension
