"""The entry points: what a file is, from its first bytes and (for containers) a look inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from portal.filetypes.compound import _detect_compound
from portal.filetypes.kinds import (
    CSV,
    EML,
    EMPTY,
    HEAD_BYTES,
    JPEG,
    OLE2_MAGIC,
    PDF,
    PNG,
    RTF,
    TEXT,
    TIFF,
    UNREADABLE,
    WINDOWS_PROGRAM,
    ZIP,
    ZIP_MAGIC,
    FileType,
    _archive,
    _image,
    _program,
)
from portal.filetypes.text import _CONTROL_BYTES, _detect_text
from portal.filetypes.zips import _detect_zip

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


def needs_whole_file(head: bytes) -> bool:
    """Whether a verdict on ``head`` alone may wrongly refuse the file: a zip's head cannot be walked
    past a member whose sizes follow its data (a data descriptor), so only the whole file decides."""
    return head.startswith(ZIP_MAGIC)


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
    if head.startswith(ZIP_MAGIC):
        return _detect_zip(head, opener)
    if head.startswith(OLE2_MAGIC):
        return _detect_compound(head, opener)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _image("image/webp", "WebP image")
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return _image("image/heic", "HEIC image")
    return _detect_text(head, complete=complete)
