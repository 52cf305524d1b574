"""Turn the storage settings into the ``storage`` library's objects: blob store, key service, vault."""

from __future__ import annotations

from typing import Any

from audit.witness import FileWitness, S3Witness, Witness
from portal.settings import Settings, StorageLocation
from storage import BlobStore, LocalFolderStore, S3Store, Vault
from storage.address import open_key_service
from storage.keyservice import KeyService


def s3_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    # Path-style addressing works with every S3-compatible server (SeaweedFS, MinIO, Ceph) and AWS.
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.storage.kind == "file":
        assert settings.storage.path is not None
        return LocalFolderStore(settings.storage.path)
    return S3Store(s3_client(settings), settings.storage.bucket, settings.storage.prefix)


def open_keys(settings: Settings) -> KeyService:
    """The key service every node shares: ``PORTAL_KMS``, or the key folder ``PORTAL_KEY_DIR``."""
    return open_key_service(settings.key_service)


def open_vault(settings: Settings, keys: KeyService | None = None) -> Vault:
    return Vault(open_blob_store(settings), keys or open_keys(settings))


def open_witness(settings: Settings) -> Witness:
    """Where the audit log's signed checkpoints are also kept (``PORTAL_AUDIT_WITNESS``)."""
    where = settings.audit_witness or StorageLocation(
        kind="file", path=settings.home / "witness" / "audit.jsonl"
    )
    if where.kind == "file":
        assert where.path is not None
        return FileWitness(where.path)
    return S3Witness(s3_client(settings), where.bucket, where.prefix)
