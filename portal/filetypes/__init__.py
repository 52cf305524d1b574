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
  sender, so a text file is always saved as ``.txt`` (:func:`download_name`, in ``names.py``).
- *Macros*: Office Open XML with a VBA project or Excel 4.0 macro sheets, Word and Excel 97-2003 files
  with a VBA storage, and OpenDocument files with Basic or script libraries are refused. Macros kept
  inside a PowerPoint 97-2003 stream, and exploits inside allowed formats (PDF JavaScript, RTF or Office
  embedded objects, MSG attachments) are ClamAV's to find: every upload is scanned as well.
- *Hostile containers*: zip files are never extracted. We read the central directory (after checking
  from its end record that it is of a sane size), refuse archives whose members overlap (the
  non-recursive zip bomb), whose names are absurd or repeated (two parsers could pick different
  members), whose declared unpacked size is huge, or that are encrypted; and we decompress at most two
  small members (``mimetype``, ``[Content_Types].xml``) with a hard cap. Members compressed with
  anything but stored or deflate are refused: clamd does not see into all of them. What clamd cannot
  see into otherwise (a small ZIP64 member, a zip in a member) is scanned member by member after
  upload (``portal.scanning.scan_members``). Compound files (OLE2) are
  opened with ``olefile`` in strict mode, and every stream's sector chain is checked to lie within the
  file, so a truncated file is refused rather than half-read.
- *Parser failure as a way through*: :func:`detect` never raises; anything it cannot parse is refused.

Dependencies: ``olefile`` (PyPI) reads compound files. Magic numbers are few and are checked here, on
purpose without libmagic: its answer is free text that changes between versions, so it cannot carry an
allow-list decision, and it would parse hostile input with a C library inside the portal's process.
"""

from __future__ import annotations

from portal.filetypes.detection import detect, detect_named, needs_whole_file
from portal.filetypes.kinds import (
    CSV,
    DAMAGED_OLE,
    DAMAGED_ZIP,
    DOC,
    DOCX,
    EML,
    EMPTY,
    HEAD_BYTES,
    HTML,
    JPEG,
    MSG,
    NOT_CHECKED,
    ODP,
    ODS,
    ODT,
    PASSWORD_PROTECTED,
    PDF,
    PNG,
    PPT,
    PPTX,
    RTF,
    SCRIPT,
    SERVER_PAGE,
    SVG,
    TEXT,
    TIFF,
    UNKNOWN,
    UNREADABLE,
    UNUSUAL_COMPRESSION,
    UTF32,
    WINDOWS_PROGRAM,
    XLS,
    XLSX,
    XML,
    ZIP,
    FileType,
)
from portal.filetypes.names import download_name, extension_for

__all__ = [
    "CSV",
    "DAMAGED_OLE",
    "DAMAGED_ZIP",
    "DOC",
    "DOCX",
    "EML",
    "EMPTY",
    "HEAD_BYTES",
    "HTML",
    "JPEG",
    "MSG",
    "NOT_CHECKED",
    "ODP",
    "ODS",
    "ODT",
    "PASSWORD_PROTECTED",
    "PDF",
    "PNG",
    "PPT",
    "PPTX",
    "RTF",
    "SCRIPT",
    "SERVER_PAGE",
    "SVG",
    "TEXT",
    "TIFF",
    "UNKNOWN",
    "UNREADABLE",
    "UNUSUAL_COMPRESSION",
    "UTF32",
    "WINDOWS_PROGRAM",
    "XLS",
    "XLSX",
    "XML",
    "ZIP",
    "FileType",
    "detect",
    "detect_named",
    "download_name",
    "extension_for",
    "needs_whole_file",
]
