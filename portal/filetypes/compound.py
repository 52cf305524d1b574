"""OLE2 compound files: Office 97-2003 documents and Outlook messages."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

import olefile

from portal.filetypes.kinds import (
    _ACCEPTED_LIST,
    DAMAGED_OLE,
    DOC,
    MSG,
    PASSWORD_PROTECTED,
    PPT,
    XLS,
    FileType,
    _no,
    _program,
)
from portal.filetypes.zips import _Malformed, _with_macros

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
