"""Zip-based documents scanned member by member, against the harness's real clamd (issue 18).

clamd scanning the whole file answers OK for EICAR in a small member written with ZIP64 size fields,
or compressed with LZMA, or inside a zip inside a member. :func:`portal.scanning.scan_members` streams
every decompressed member to clamd on its own; these tests feed it each construction directly (the
type check refuses some of them before they get this far: see test_exchange_hostile.py).
"""

from __future__ import annotations

import io
import zipfile

import pytest

from portal import scanning
from portal.scanning import UNSCANNABLE, Scanner, scan_members
from portal.settings import ClamdAddress
from tests.portal.fixtures import zips

BUILDERS = {**zips.SCANNED, **{name: build for name, (build, _) in zips.REFUSED.items()}}


@pytest.fixture
def scanner(clamd_address: ClamdAddress) -> Scanner:
    return Scanner(clamd_address, timeout=30)


def test_each_construction_with_eicar_inside_is_found(scanner: Scanner) -> None:
    for construction, build in sorted(BUILDERS.items()):
        verdict = scan_members(scanner, io.BytesIO(build()))
        assert not verdict.clean, construction
        if construction == "encrypted-flag":
            # zipfile will not read a member marked encrypted: what cannot be read is not released.
            assert verdict.signature == UNSCANNABLE and verdict.reason == "unscannable"
        else:
            assert (verdict.signature or "").startswith("Eicar"), construction
            assert verdict.reason == "malware"


def test_clean_documents_are_clean_member_by_member(scanner: Scanner) -> None:
    for data in (zips.ooxml("docx"), zips.ooxml("xlsx"), zips.odt()):
        assert scan_members(scanner, io.BytesIO(data)) == scanning.Verdict(clean=True)


def test_a_member_that_cannot_be_read_is_a_finding(scanner: Scanner) -> None:
    data = bytearray(zips.compressed(zipfile.ZIP_STORED).replace(b"EICAR", b"EICAX"))
    # A stored member whose CRC no longer matches: zipfile raises at its end.
    verdict = scan_members(scanner, io.BytesIO(bytes(data)))
    assert verdict.signature == UNSCANNABLE and not verdict.clean
    assert scan_members(scanner, io.BytesIO(b"PK\x03\x04 not a zip")).signature == UNSCANNABLE


def test_an_archive_that_unpacks_past_the_budget_is_a_finding(
    scanner: Scanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = scanning._Budget
    monkeypatch.setattr(scanning, "_Budget", lambda: budget(members=10_000, size=300))
    verdict = scan_members(scanner, io.BytesIO(zips.ooxml("docx")))
    assert verdict.signature == UNSCANNABLE
    monkeypatch.setattr(scanning, "_Budget", lambda: budget(members=2, size=10**9))
    assert scan_members(scanner, io.BytesIO(zips.ooxml("docx"))).signature == UNSCANNABLE


def test_zips_nested_deeper_than_three_are_a_finding(scanner: Scanner) -> None:
    data = zips.ooxml("xlsx")
    for level in range(3):

        def nest(archive: zipfile.ZipFile, inner: bytes = data) -> None:
            archive.writestr("word/e.xlsx", inner)

        data = zips.ooxml(extra=nest)
        if level == 1:
            assert scan_members(scanner, io.BytesIO(data)).clean  # three levels: all seen into
    assert scan_members(scanner, io.BytesIO(data)).signature == UNSCANNABLE
