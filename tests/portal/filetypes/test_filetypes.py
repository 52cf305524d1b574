"""File types by content: a table of real allowed and refused files, hostile containers, fuzzing.

Every sample is built here from the bytes up (no Office, no Pillow): minimal but well-formed files,
checked once against libmagic's ``file`` when they were written. Compound files come from
``fixtures/compound.py``, a small writer of the OLE2 format.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import filetypes
from portal.filetypes import HEAD_BYTES, FileType, detect, detect_named
from tests.portal.fixtures import compound
from tests.portal.fixtures import zips as zip_fixtures

# --- Builders --------------------------------------------------------------------------------------


def pdf() -> bytes:
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>",
    ]
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))
        )

    header = struct.pack(">LLBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """A 1x1 greyscale baseline JPEG: one Huffman code per table, one block of DC 0 and EOB."""

    def segment(marker: int, data: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data

    one_code = bytes([1] + [0] * 15) + b"\x00"  # a single code of length 1, for symbol 0
    return (
        b"\xff\xd8"
        + segment(0xDB, b"\x00" + bytes([1] * 64))
        + segment(0xC0, struct.pack(">BHHB", 8, 1, 1, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code)
        + segment(0xC4, b"\x10" + one_code)
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x3f"  # bits 0 (DC difference 0), 0 (end of block), then padding ones
        + b"\xff\xd9"
    )


def tiff(byte_order: str = "<") -> bytes:
    tags = [
        (256, 3, 1),
        (257, 3, 1),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),
        (277, 3, 1),
        (278, 3, 1),
        (279, 4, 1),
    ]
    ifd_size = 2 + 12 * len(tags) + 4
    pixels_at = 8 + ifd_size
    magic = b"II*\x00" if byte_order == "<" else b"MM\x00*"
    out = magic + struct.pack(byte_order + "L", 8) + struct.pack(byte_order + "H", len(tags))
    for tag, kind, value in tags:
        value = pixels_at if tag == 273 else value
        short = kind == 3  # a SHORT sits left-justified in the 4-byte value field
        packed = (
            struct.pack(byte_order + "H", value) + b"\0\0"
            if short
            else struct.pack(byte_order + "L", value)
        )
        out += struct.pack(byte_order + "HHL", tag, kind, 1) + packed
    return out + struct.pack(byte_order + "L", 0) + b"\x80"


def zip_of(members: dict[str, bytes], *, stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(members.items()):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


MAIN = {
    "docx": ("word/document.xml", "wordprocessingml.document.main+xml"),
    "xlsx": ("xl/workbook.xml", "spreadsheetml.sheet.main+xml"),
    "pptx": ("ppt/presentation.xml", "presentationml.presentation.main+xml"),
    "dotx": ("word/document.xml", "wordprocessingml.template.main+xml"),
}
OOXML = "application/vnd.openxmlformats-officedocument."


def content_types(overrides: dict[str, str], defaults: dict[str, str] | None = None) -> bytes:
    defaults = {
        "rels": "application/vnd.openxmlformats-package.relationships+xml",
        "xml": "application/xml",
        **(defaults or {}),
    }
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + b"".join(
            b'<Default Extension="%s" ContentType="%s"/>' % (e.encode(), t.encode())
            for e, t in defaults.items()
        )
        + b"".join(
            b'<Override PartName="/%s" ContentType="%s"/>' % (p.encode(), t.encode())
            for p, t in overrides.items()
        )
        + b"</Types>"
    )


def ooxml(
    kind: str,
    *,
    main_type: str | None = None,
    extra: dict[str, bytes] | None = None,
    defaults: dict[str, str] | None = None,
    types: bytes | None = None,
) -> bytes:
    part, suffix = MAIN[kind]
    main_type = main_type or OOXML + suffix
    rels = (
        b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
        b'.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats'
        b'.org/officeDocument/2006/relationships/officeDocument" Target="%s"/></Relationships>'
        % part.encode()
    )
    return zip_of(
        {
            "[Content_Types].xml": types or content_types({part: main_type}, defaults),
            "_rels/.rels": rels,
            part: b'<?xml version="1.0"?><root xmlns="urn:example"/>',
            **(extra or {}),
        }
    )


def odf(kind: str, *, extra: dict[str, bytes] | None = None) -> bytes:
    media_type = f"application/vnd.oasis.opendocument.{kind}"
    manifest = (
        b'<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:'
        b'tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" '
        b'manifest:media-type="%s"/></manifest:manifest>' % media_type.encode()
    )
    return zip_of(
        {
            "mimetype": media_type.encode(),
            "content.xml": b'<?xml version="1.0"?><office:document-content/>',
            "META-INF/manifest.xml": manifest,
            **(extra or {}),
        },
        stored_first=True,
    )


def windows_program() -> bytes:
    dos = bytearray(128)
    dos[0:2] = b"MZ"
    dos[2:4] = b"\x90\x00"
    struct.pack_into("<L", dos, 0x3C, 0x80)
    return bytes(dos) + b"PE\x00\x00" + struct.pack("<HH", 0x8664, 1) + bytes(200)


def eml() -> bytes:
    return (
        b"Return-Path: <duty.manager@example.gov.uk>\r\n"
        b"From: Duty Manager <duty.manager@example.gov.uk>\r\n"
        b"To: inspector@example.org\r\n"
        b"Subject: Case conference minutes\r\n"
        b" (revised)\r\n"
        b"Date: Mon, 2 Nov 2026 09:00:07 +0000\r\n"
        b"Message-ID: <1@example.gov.uk>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"Minutes attached.\r\n"
    )


def whole(data: bytes) -> FileType:
    """What the upload pipeline calls: the head, and the whole file on demand."""
    return detect(data[:HEAD_BYTES], open_container=lambda: io.BytesIO(data))


# --- The table ------------------------------------------------------------------------------------

CSV_TEXT = 'Case,Opened,Worker\r\nC-104,2026-01-03,A. Khan\r\nC-105,2026-02-11,"Ross, J."\r\n'
ALLOWED: list[tuple[str, Callable[[], bytes], FileType]] = [
    ("pdf", pdf, filetypes.PDF),
    ("png", png, filetypes.PNG),
    ("jpeg", jpeg, filetypes.JPEG),
    ("tiff little-endian", tiff, filetypes.TIFF),
    ("tiff big-endian", lambda: tiff(">"), filetypes.TIFF),
    ("docx", lambda: ooxml("docx"), filetypes.DOCX),
    ("xlsx", lambda: ooxml("xlsx"), filetypes.XLSX),
    ("pptx", lambda: ooxml("pptx"), filetypes.PPTX),
    ("odt", lambda: odf("text"), filetypes.ODT),
    ("ods", lambda: odf("spreadsheet"), filetypes.ODS),
    ("odp", lambda: odf("presentation"), filetypes.ODP),
    (
        "odt with empty Basic library index",
        lambda: odf("text", extra={"Basic/script-lc.xml": b"<x/>"}),
        filetypes.ODT,
    ),
    ("doc", compound.word_document, filetypes.DOC),
    ("xls", compound.excel_workbook, filetypes.XLS),
    ("ppt", compound.powerpoint_presentation, filetypes.PPT),
    ("msg", compound.outlook_message, filetypes.MSG),
    ("rtf", lambda: b"{\\rtf1\\ansi{\\fonttbl\\f0 Arial;}\\f0 Minutes\\par}", filetypes.RTF),
    (
        "utf-8 text",
        lambda: "Visit on 3 March: spoke with Chloë and her carer.\n".encode(),
        filetypes.TEXT,
    ),
    ("utf-8 text with BOM", lambda: "\ufeffRecord of visit\r\n".encode(), filetypes.TEXT),
    (
        "utf-16-le text with BOM",
        lambda: "\ufeffRecord of visit \u2013 Chloë\r\n".encode("utf-16-le"),
        filetypes.TEXT,
    ),
    (
        "utf-16-be text with BOM",
        lambda: "\ufeffRecord of visit\n".encode("utf-16-be"),
        filetypes.TEXT,
    ),
    (
        "windows-1252 text",
        lambda: "Fee \u20ac40 \u2013 “agreed” by Zoë\f\tpage 2\n".encode("cp1252"),
        filetypes.TEXT,
    ),
    (
        "batch-file-looking text is text",
        lambda: b"@echo off\r\ndel C:\\temp\\*.*\r\n",
        filetypes.TEXT,
    ),
    (
        "prose mentioning <script> later",
        lambda: b"Notes\nThe child typed <script> into the form.\n",
        filetypes.TEXT,
    ),
    ("MZ as a word", lambda: b"MZ Ltd, the contractor, attended.\n", filetypes.TEXT),
    ("whitespace only", lambda: b" \r\n\t\n", filetypes.TEXT),
    ("csv", lambda: CSV_TEXT.encode(), filetypes.CSV),
    ("csv with BOM and semicolons", lambda: "\ufeffa;b;c\n1;2;3\n4;5;6\n".encode(), filetypes.CSV),
    ("tab-separated", lambda: b"a\tb\n1\t2\n", filetypes.CSV),
    ("eml", eml, filetypes.EML),
]

REFUSED: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "The file is empty"),
    ("windows exe", windows_program, "Windows program"),
    ("linux elf", lambda: b"\x7fELF\x02\x01\x01" + bytes(57), "Linux program"),
    ("mach-o", lambda: b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + bytes(24), "macOS program"),
    ("shebang script", lambda: b"#!/bin/sh\nrm -rf /\n", "script"),
    (
        "shebang after BOM and blank line",
        lambda: b"\xef\xbb\xbf\n#!/usr/bin/env python3\n",
        "script",
    ),
    ("php", lambda: b"<?php system($_GET['c']); ?>", "web server script"),
    ("html doctype", lambda: b"<!DOCTYPE html><html><body>Hi</body></html>", "web page"),
    (
        "html in upper case after whitespace",
        lambda: b"\r\n   \t<HTML>\n<BODY onload=x()>",
        "web page",
    ),
    ("html with utf-8 BOM", lambda: b"\xef\xbb\xbf  <html lang=en>", "web page"),
    (
        "html as utf-16 with BOM",
        lambda: "\ufeff\n<script>alert(1)</script>".encode("utf-16-le"),
        "web page",
    ),
    ("script tag", lambda: b"<script src=//evil.example/x.js></script>", "web page"),
    ("iframe", lambda: b"\n<iframe src=x>", "web page"),
    (
        "xhtml",
        lambda: b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml">',
        "web page",
    ),
    (
        "svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "SVG",
    ),
    ("svg with prolog", lambda: b'<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="1">', "SVG"),
    ("other xml", lambda: b'<?xml version="1.0"?><case><child>x</child></case>', "XML"),
    (
        "plain zip",
        lambda: zip_of({"minutes.pdf": pdf(), "notes.txt": b"hello"}),
        "Archives are not accepted: upload the documents themselves",
    ),
    ("empty zip", lambda: zip_of({}), "zip archive"),
    (
        "docm with vbaProject.bin",
        lambda: ooxml(
            "docx",
            main_type="application/vnd.ms-word.document.macroEnabled.main+xml",
            extra={"word/vbaProject.bin": b"\xd0\xcf"},
        ),
        "Word document contains macros",
    ),
    (
        "docx hiding vbaProject.bin",
        lambda: ooxml("docx", extra={"word/vbaProject.bin": b"\xd0\xcf"}),
        "contains macros",
    ),
    (
        "xlsx with vba part renamed",
        lambda: ooxml(
            "xlsx",
            defaults={"bin": "application/vnd.ms-office.vbaProject"},
            extra={"xl/x.bin": b"vba"},
        ),
        "Excel spreadsheet contains macros",
    ),
    (
        "xlsm by content type",
        lambda: ooxml("xlsx", main_type="application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
        "contains macros",
    ),
    (
        "xlsx with Excel 4.0 macro sheet",
        lambda: ooxml("xlsx", extra={"xl/macrosheets/sheet1.xml": b"<x/>"}),
        "contains macros",
    ),
    (
        "pptm",
        lambda: ooxml(
            "pptx", main_type="application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml"
        ),
        "PowerPoint presentation contains macros",
    ),
    ("word template", lambda: ooxml("dotx"), "Word template"),
    (
        "odt with Basic macro",
        lambda: odf("text", extra={"Basic/Standard/Module1.xml": b"<m/>"}),
        "contains macros",
    ),
    (
        "epub",
        lambda: zip_of({"mimetype": b"application/epub+zip", "x.html": b"<p>"}),
        "zip-based format",
    ),
    (
        "docx without main part",
        lambda: zip_of({"[Content_Types].xml": content_types({})}),
        "damaged",
    ),
    (
        "two documents in one",
        lambda: ooxml(
            "docx",
            types=content_types(
                {
                    "word/document.xml": OOXML + MAIN["docx"][1],
                    "xl/workbook.xml": OOXML + MAIN["xlsx"][1],
                }
            ),
        ),
        "damaged",
    ),
    (
        "content types with a DTD",
        lambda: ooxml(
            "docx",
            types=b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">]><Types>&a;</Types>',
        ),
        "damaged",
    ),
    (
        "word 97 with macros",
        lambda: compound.word_document(macros=True),
        "Word document contains macros",
    ),
    (
        "excel 97 with macros",
        lambda: compound.excel_workbook(macros=True),
        "Excel spreadsheet contains macros",
    ),
    ("windows installer", compound.windows_installer, "Windows installer"),
    ("password-protected office file", compound.encrypted_office_document, "password"),
    ("other compound file", lambda: compound.build({"Contents": b"x"}), "compound file"),
    ("text with NUL bytes", lambda: b"Record of visit\x00\x00\x01 notes\n", "not recognised"),
    ("text with escape codes", lambda: b"Record \x1b[31mred\x1b[0m\n", "not recognised"),
    ("utf-16 without BOM", lambda: "Record of visit".encode("utf-16-le"), "not recognised"),
    ("utf-32", lambda: "\ufeffRecord".encode("utf-32-le"), "UTF-32"),
    ("random binary", lambda: bytes(range(256)) * 4, "not recognised"),
    ("gzip", lambda: b"\x1f\x8b\x08\x00" + bytes(20), "gzip archive"),
    ("gif", lambda: b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF image"),
]


@pytest.mark.parametrize(
    ("make", "expected"), [(m, e) for _, m, e in ALLOWED], ids=[i for i, _, _ in ALLOWED]
)
def test_allowed_files_are_recognised(make: Callable[[], bytes], expected: FileType) -> None:
    data = make()
    assert whole(data) == expected
    assert detect(data) == expected  # from the head alone too, for these small files
    assert expected.allowed and expected.reason is None and expected.extension.startswith(".")


@pytest.mark.parametrize(
    ("make", "found"), [(m, f) for _, m, f in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_refused_files_say_what_was_found(make: Callable[[], bytes], found: str) -> None:
    data = make()
    for verdict in (whole(data), detect(data)):
        assert not verdict.allowed
        assert verdict.extension == ""
        assert verdict.reason is not None and verdict.reason.endswith(".")
        assert found in verdict.reason


def test_the_name_does_not_decide() -> None:
    assert detect_named(png(), "minutes.pdf") == filetypes.PNG  # saved back as .png
    assert detect_named(windows_program(), "minutes.pdf") == filetypes.WINDOWS_PROGRAM
    assert detect_named(b"<html><body>", "notes.txt") == filetypes.HTML
    assert detect_named(b"\x00\x01binary", "data.csv") == filetypes.UNKNOWN


def test_the_name_breaks_ties_between_allowed_text_types() -> None:
    assert detect_named(CSV_TEXT.encode(), "cases.txt") == filetypes.TEXT
    assert detect_named(b"one column\nsecond row\n", "list.CSV") == filetypes.CSV
    assert detect_named(eml(), "minutes.txt") == filetypes.TEXT
    assert detect_named(eml(), "message") == filetypes.EML
    assert detect_named(b"Just some notes.\n", "notes.eml") == filetypes.TEXT  # not headers
    assert detect_named(pdf(), "x.txt") == filetypes.PDF


def test_text_types_are_decided_by_content() -> None:
    assert detect(b"Hello, world\n") == filetypes.TEXT  # one row is not a table
    assert detect(b"a,b,c\n1,2\n3,4,5\n") == filetypes.TEXT  # inconsistent columns
    assert detect(b"Subject: minutes\nnot a header line\n\nbody") == filetypes.TEXT
    assert detect(b"From: a@example.org\nSubject: hi\n\nbody") == filetypes.EML


def test_a_head_cut_inside_a_character_is_still_text() -> None:
    # A head of exactly HEAD_BYTES may end inside a character; a shorter one is the whole file.
    utf8 = b"x" * (HEAD_BYTES - 1) + "ë and more".encode()
    assert detect(utf8[:HEAD_BYTES]) == filetypes.TEXT
    utf16 = ("\ufeff" + "a" * ((HEAD_BYTES - 4) // 2) + "\U0001f600 more").encode("utf-16-le")
    assert detect(utf16[:HEAD_BYTES]) == filetypes.TEXT  # ends with half a surrogate pair
    assert detect(utf16) == filetypes.TEXT  # longer heads are cut to HEAD_BYTES


# --- Hostile containers ---------------------------------------------------------------------------


def test_truncated_zip_is_refused() -> None:
    data = ooxml("docx")
    for cut in (len(data) // 2, len(data) - 10, 40):
        verdict = whole(data[:cut])
        assert not verdict.allowed and verdict.reason is not None
        assert "damaged" in verdict.reason


def test_truncated_compound_file_is_refused() -> None:
    data = compound.word_document()
    for cut in (600, 2048, len(data) - 512, len(data) - 1):
        assert whole(data[:cut]) == filetypes.DAMAGED_OLE


def test_a_zip_declaring_a_huge_unpacked_size_is_refused() -> None:
    data = bytearray(ooxml("docx", extra={f"word/media/{i}.bin": b"" for i in range(4)}))
    at = 0
    while (at := data.find(b"PK\x01\x02", at + 1)) > 0:
        struct.pack_into("<L", data, at + 24, 0xFFFFFFF0)  # uncompressed size: 4 GiB each
    assert whole(bytes(data)) == filetypes.DAMAGED_ZIP


def test_a_zip_with_too_many_members_is_refused() -> None:
    many = {f"word/media/{i}.png": b"" for i in range(10_001)}
    assert whole(ooxml("docx", extra=many)) == filetypes.DAMAGED_ZIP


def test_overlapping_members_are_refused() -> None:
    # The non-recursive zip bomb: central entries that share one local file's data.
    data = bytearray(ooxml("docx", extra={"word/media/a.bin": b"a" * 1000}))
    at = data.rfind(b"PK\x01\x02")
    struct.pack_into("<L", data, at + 42, 0)  # the last member now starts at the first's header
    assert whole(bytes(data)) == filetypes.DAMAGED_ZIP


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/abs/path.xml", "a\\b.xml", "x" * 600, "a\x01b"]
)
def test_absurd_member_names_are_refused(name: str) -> None:
    data = ooxml("docx", extra={name: b"x"})
    assert whole(data) == filetypes.DAMAGED_ZIP
    assert detect(data) == filetypes.DAMAGED_ZIP


def test_duplicate_member_names_are_refused() -> None:
    buffer = io.BytesIO(ooxml("docx"))
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(
            "[Content_Types].xml",
            content_types(
                {"word/document.xml": "application/vnd.ms-word.document.macroEnabled.main+xml"}
            ),
        )
    assert whole(buffer.getvalue()) == filetypes.DAMAGED_ZIP
    assert detect(buffer.getvalue()) == filetypes.DAMAGED_ZIP


def test_a_file_that_is_both_odf_and_ooxml_is_refused() -> None:
    both = odf("text", extra={"[Content_Types].xml": content_types({}), "word/vbaProject.bin": b""})
    assert whole(both) == filetypes.DAMAGED_ZIP
    assert detect(both) == filetypes.DAMAGED_ZIP


def test_encrypted_zip_members_are_refused() -> None:
    data = bytearray(ooxml("docx"))
    struct.pack_into("<H", data, 6, 1)  # the first local header's "encrypted" flag
    assert detect(bytes(data)) == filetypes.PASSWORD_PROTECTED
    assert whole(bytes(data)) == filetypes.PASSWORD_PROTECTED  # the local header disagrees
    data = bytearray(ooxml("docx"))
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 8, 1)  # and the central directory's
    assert whole(bytes(data)) == filetypes.PASSWORD_PROTECTED


def test_zips_the_scanner_cannot_see_into_are_refused_and_the_rest_left_to_it() -> None:
    # Issue 18, item 2. Refused: encrypted members, methods other than stored and deflate.
    for construction, (build, reason) in zip_fixtures.REFUSED.items():
        verdict = whole(build())
        assert not verdict.allowed and reason in (verdict.reason or ""), construction
    assert whole(zip_fixtures.compressed(zipfile.ZIP_LZMA)) == filetypes.UNUSUAL_COMPRESSION
    # Accepted, and scanned member by member (portal.scanning.scan_members): ZIP64 fields on a
    # small member, data descriptors, a zip inside a member.
    for construction, build in zip_fixtures.SCANNED.items():
        assert whole(build()) == filetypes.DOCX, construction
    # A local header that names another method than the central directory: two readers, two files.
    data = bytearray(zip_fixtures.compressed(zipfile.ZIP_DEFLATED))
    struct.pack_into("<H", data, zip_fixtures.local_header(bytes(data)) + 8, zipfile.ZIP_LZMA)
    assert whole(bytes(data)) == filetypes.UNUSUAL_COMPRESSION


def test_head_only_zip_verdicts_are_cautious() -> None:
    noise = random.Random(6).randbytes(
        100_000
    )  # incompressible: pushes later members past the head
    big = ooxml("docx", extra={"word/media/big.bin": noise})
    assert detect(big[:HEAD_BYTES]) == filetypes.DOCX  # [Content_Types].xml comes first
    hidden = ooxml("docx", extra={"word/media/big.bin": noise, "word/vbaProject.bin": b"vba"})
    assert detect(hidden[:HEAD_BYTES]) == filetypes.DOCX  # the documented weakness of head-only
    assert "macros" in (whole(hidden).reason or "")
    late = zip_of({"word/media/big.bin": noise, "[Content_Types].xml": b"<x/>"})
    assert detect(late[:HEAD_BYTES]) == filetypes.NOT_CHECKED
    assert whole(late) == filetypes.DAMAGED_ZIP


def test_a_failing_or_lying_container_is_a_refusal() -> None:
    def broken() -> io.BytesIO:
        raise OSError("storage unavailable")

    assert detect(ooxml("docx"), open_container=broken) == filetypes.DAMAGED_ZIP
    assert detect(compound.word_document(), open_container=broken) == filetypes.DAMAGED_OLE
    assert detect(ooxml("docx"), open_container=lambda: io.BytesIO(b"")) == filetypes.DAMAGED_ZIP


def test_the_container_is_closed() -> None:
    streams: list[io.BytesIO] = []

    def opener(data: bytes) -> Callable[[], io.BytesIO]:
        def open_() -> io.BytesIO:
            streams.append(io.BytesIO(data))
            return streams[-1]

        return open_

    for data in (ooxml("docx"), compound.word_document()):
        assert detect(data, open_container=opener(data)).allowed
    assert len(streams) == 2 and all(s.closed for s in streams)


# --- Fuzzing: detect never raises -----------------------------------------------------------------

PREFIXES = [
    b"",
    b"PK\x03\x04",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"MZ",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"<",
    b"From: a\n",
    b"%PDF-",
]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(verdict: FileType) -> None:
    assert isinstance(verdict, FileType)
    assert (verdict.reason is None) == verdict.allowed


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=2048))
def test_detect_never_raises_on_arbitrary_bytes(prefix: bytes, rest: bytes) -> None:
    check(detect(prefix + rest))
    check(whole(prefix + rest))


SEEDS = [ooxml("docx"), odf("text"), compound.word_document(), compound.outlook_message()]


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.none() | st.integers(min_value=1),
)
def test_detect_never_raises_on_damaged_containers(
    seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    damaged = bytes(data[: cut % len(data) if cut else None])
    check(detect(damaged))
    check(whole(damaged))


# --- The name a download is saved as (issue 18) ------------------------------------------------


@pytest.mark.parametrize(
    ("sent_as", "media_type", "saved_as"),
    [
        ("run-me.bat", "text/plain", "run-me.txt"),
        ("run-me.hta", "text/plain; charset=utf-8", "run-me.txt"),
        ("x.js", "text/plain", "x.txt"),
        ("x.vbs", "text/plain", "x.txt"),
        ("x.exe", "text/plain", "x.txt"),
        ("x.lnk", "text/plain", "x.txt"),
        ("page.html", "text/plain", "page.txt"),
        ("logo.svg", "text/plain", "logo.txt"),
        ("figures.txt", "text/csv", "figures.csv"),
        ("invoice.exe.txt", "text/plain", "invoice_exe.txt"),
        ("Minutes 12.03.2026.pdf", "application/pdf", "Minutes 12.03.2026.pdf"),
        ("Minutes 12.03.2026", "application/pdf", "Minutes 12.03.2026.pdf"),
        ("report", filetypes.DOCX.media_type, "report.docx"),
        ("..\\..\\Windows\\evil.exe", "text/plain", "evil.txt"),
        ("\u202etxt.exe", "text/plain", "txt.txt"),
        ('a<b>:"c"|?*.txt', "text/plain", "a_b___c____.txt"),
        ("CON.txt", "text/plain", "CON_.txt"),
        ("...", "text/plain", "document.txt"),
        ("", "image/png", "document.png"),
        ("payload.exe", "application/vnd.microsoft.portable-executable", "payload.bin"),
        ("page.html", "text/html", "page.bin"),
    ],
)
def test_a_download_name_takes_its_extension_from_the_type(
    sent_as: str, media_type: str, saved_as: str
) -> None:
    assert filetypes.download_name(sent_as, media_type) == saved_as


def test_every_accepted_type_has_its_own_extension_and_none_is_executable_or_markup() -> None:
    from portal.filetypes.names import EXTENSIONS

    assert len(set(EXTENSIONS.values())) == len(EXTENSIONS)
    risky = {".bat", ".cmd", ".exe", ".hta", ".html", ".htm", ".js", ".lnk", ".svg", ".vbs"}
    assert not risky & set(EXTENSIONS.values())
    assert len(filetypes.download_name("a" * 500 + ".txt", "text/plain")) == 200
