"""The real services the suite depends on are there and behave as the portal relies on."""

from __future__ import annotations

import io
import os
import zipfile

from sqlalchemy import text

from portal.clamd_local import EICAR, TEST_MARKER
from portal.scanning import Scanner
from portal.settings import ClamdAddress
from tests.harness.clamd import TEST_MAX_UPLOAD_BYTES
from tests.harness.seaweedfs import S3Server


def test_clamd_finds_eicar(clamd_address: ClamdAddress) -> None:
    verdict = Scanner(clamd_address).scan([b"some text\n", EICAR])
    assert not verdict.clean
    assert verdict.signature is not None and verdict.signature.startswith("Eicar-Test-Signature")


def test_clamd_finds_eicar_inside_a_zip(clamd_address: ClamdAddress) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("minutes.txt", EICAR)
    assert not Scanner(clamd_address).scan([buffer.getvalue()]).clean


def test_clamd_answers_over_tcp_with_the_same_limits(clamd_tcp_address: ClamdAddress) -> None:
    assert clamd_tcp_address.kind == "tcp" and clamd_tcp_address.host == "127.0.0.1"
    scanner = Scanner(clamd_tcp_address)
    verdict = scanner.scan([b"some text\n", EICAR])
    assert verdict.signature is not None and verdict.signature.startswith("Eicar-Test-Signature")
    over = scanner.scan([os.urandom(TEST_MAX_UPLOAD_BYTES + 1)])
    assert over.signature is not None and "Limits.Exceeded" in over.signature


def test_clamd_finds_the_projects_own_signature(clamd_address: ClamdAddress) -> None:
    verdict = Scanner(clamd_address).scan([b"x" * 5000, TEST_MARKER, b"y" * 10])
    assert verdict.signature is not None and verdict.signature.startswith("Portal.Test.Marker")


def test_clamd_passes_a_clean_file(clamd_address: ClamdAddress) -> None:
    assert Scanner(clamd_address).scan([os.urandom(3 * 1024 * 1024)]).clean


def test_clamd_does_not_pass_a_file_over_its_limit(clamd_address: ClamdAddress) -> None:
    verdict = Scanner(clamd_address).scan([os.urandom(TEST_MAX_UPLOAD_BYTES + 1)])
    assert not verdict.clean
    assert verdict.signature is not None and "Limits.Exceeded" in verdict.signature


def test_s3_round_trip_on_seaweedfs(s3_server: S3Server, s3_bucket: str) -> None:
    client = s3_server.client()
    body = os.urandom(100_000)
    client.put_object(Bucket=s3_bucket, Key="harness/object", Body=body)
    assert client.get_object(Bucket=s3_bucket, Key="harness/object")["Body"].read() == body
    client.delete_object(Bucket=s3_bucket, Key="harness/object")
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="harness/")
    assert listed.get("KeyCount", 0) == 0


def test_database_is_migrated(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM organisation")).scalar_one() == 0
