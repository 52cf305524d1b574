"""Zip-based documents (Office Open XML, OpenDocument), checked without ever extracting them."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO
from xml.parsers import expat

from portal.filetypes.kinds import (
    _ACCEPTED_LIST,
    _OOXML,
    DAMAGED_ZIP,
    DOCX,
    NOT_CHECKED,
    ODP,
    ODS,
    ODT,
    PASSWORD_PROTECTED,
    PPTX,
    UNUSUAL_COMPRESSION,
    XLSX,
    ZIP,
    ZIP_MAGIC,
    FileType,
    _convert,
    _no,
)

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


# Stored and deflate are what Office, LibreOffice and every zip library write. Others (bzip2, LZMA,
# Deflate64, PPMd…) no Office program opens, and clamd does not decompress all of them (LZMA is
# passed as clean with EICAR inside): refused, not scanned blind (issue 18).
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class _Malformed(Exception):
    """The container is not what its first bytes claim, or is built to mislead."""


class _Refused(Exception):
    """A container built in a way we refuse with a reason of its own (not just "damaged")."""

    def __init__(self, verdict: FileType) -> None:
        super().__init__(verdict.label)
        self.verdict = verdict


def _detect_zip(head: bytes, opener: Callable[[], BinaryIO] | None) -> FileType:
    try:
        if opener is None:
            names, small, listed = _walk_local_headers(head)
            return _classify_zip(names, small.get, listing_complete=listed)
        with opener() as stream:
            return _inspect_zip(stream)
    except _Refused as refused:
        return refused.verdict
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
        _check_local_headers(stream, members)

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
        # Encrypted members cannot be scanned (Office's own passwords use a compound file).
        raise _Refused(PASSWORD_PROTECTED)
    if any(m.compress_type not in _METHODS for m in members):
        raise _Refused(UNUSUAL_COMPRESSION)
    if sum(m.file_size for m in members) > _MAX_UNPACKED:
        raise _Malformed("declared unpacked size too large")
    # Members must not overlap: overlapping entries are how a small zip unpacks to petabytes.
    ordered = sorted(members, key=lambda m: m.header_offset)
    ends = [m.header_offset + 30 + len(_raw_name(m)) + m.compress_size for m in ordered]
    starts = [m.header_offset for m in ordered[1:]] + [directory_offset]
    if any(end > start for end, start in zip(ends, starts, strict=True)):
        raise _Malformed("overlapping members")


def _check_local_headers(stream: BinaryIO, members: list[zipfile.ZipInfo]) -> None:
    """Each member's local header must agree with its central entry on encryption and method.

    zipfile decompresses by the central directory; a reader that trusts the local header (or a
    scanner walking local headers) must not be shown a different member: refused if they differ.
    """
    for member in members:
        stream.seek(member.header_offset)
        header = stream.read(30)
        if len(header) != 30 or header[:4] != ZIP_MAGIC:
            raise _Malformed("no local header")
        flags, method = struct.unpack_from("<HH", header, 6)
        if flags & 0x1 and not member.flag_bits & 0x1:
            raise _Refused(PASSWORD_PROTECTED)
        if method != member.compress_type:
            raise _Refused(UNUSUAL_COMPRESSION if method not in _METHODS else DAMAGED_ZIP)


def _raw_name(member: zipfile.ZipInfo) -> bytes:
    return member.orig_filename.encode("utf-8" if member.flag_bits & 0x800 else "cp437")


def _walk_local_headers(head: bytes) -> tuple[list[str], dict[str, bytes], bool]:
    """Member names seen in the head, the small members we need if wholly inside it, and whether
    the walk reached the central directory (so the names are all of them)."""
    names: list[str] = []
    small: dict[str, bytes] = {}
    at = 0
    while len(names) < _MAX_MEMBERS and head[at : at + 4] == ZIP_MAGIC and at + 30 <= len(head):
        flags, method, size, unpacked, name_length, extra_length = struct.unpack_from(
            "<2xHH8xLLHH", head, at + 4
        )
        data_at = at + 30 + name_length + extra_length
        if data_at > len(head):
            break
        name = head[at + 30 : at + 30 + name_length].decode("utf-8" if flags & 0x800 else "cp437")
        if flags & 0x1:
            raise _Refused(PASSWORD_PROTECTED)
        if method not in _METHODS:
            raise _Refused(UNUSUAL_COMPRESSION)
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
