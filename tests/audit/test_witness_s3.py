"""The S3 witness, against SeaweedFS's S3 gateway (a real one): a versioned bucket with Object
Lock, as docs/audit-format.md advises. What SeaweedFS (4.x) does, tested here: a bucket created
with Object Lock is versioned; an object put with COMPLIANCE retention cannot be deleted (the
delete of its version is refused); a second write to the same key adds a version, which the
witness ignores: what was witnessed is what was written first."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from audit import AuditLog, BreakKind, S3Witness, checkpoint_line, witness_checkpoints
from tests.audit.test_witness import _verify, cut_back_to_a_checkpoint
from tests.harness.seaweedfs import S3Server

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _locked_bucket(server: S3Server) -> tuple[Any, str]:
    client = server.client()
    bucket = "witness-" + secrets.token_hex(4)
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return client, bucket


def _retained(checkpoint: Any) -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def test_the_s3_witness_finds_a_cut_back_log_and_keeps_what_it_was_given(
    filled: Engine, log: AuditLog, s3_server: S3Server
) -> None:
    client, bucket = _locked_bucket(s3_server)
    witness = S3Witness(client, bucket, "audit/witness", retain_until=_retained)
    with filled.connect() as connection:
        assert witness_checkpoints(connection, witness, [log.public_key]) == 4
        assert witness_checkpoints(connection, witness, [log.public_key]) == 0
    assert [c.seq for c in witness.entries()] == [1, 11, 21, 31]
    key = "audit/witness/00000000000000000031.json"
    retention = client.get_object_retention(Bucket=bucket, Key=key)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    # Deleting the witnessed version is refused; overwriting it adds a version, ignored.
    version = client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    older = witness.latest()
    assert older is not None
    client.put_object(
        Bucket=bucket, Key=key, Body=checkpoint_line(older._replace(hash="0" * 64)).encode()
    )
    latest = witness.latest()
    assert latest is not None and latest.hash == older.hash

    assert _verify(filled, log, witness).ok
    with filled.begin() as connection:
        cut_back_to_a_checkpoint(connection)
    found = _verify(filled, log, witness)
    assert found.broken is not None and found.broken.kind is BreakKind.ROLLED_BACK
    assert found.broken.sequence == 31 and f"s3://{bucket}/audit/witness/" in found.broken.detail
