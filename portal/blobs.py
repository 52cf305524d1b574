"""Turn the storage settings into the ``storage`` library's objects: blob store, key store, vault."""

from __future__ import annotations

from typing import Any

from portal.settings import Settings
from storage import BlobStore, KeyStore, LocalFolderStore, S3Store, Vault

VAULT_KEYS = "vault"  # the key store's folder inside PORTAL_KEY_DIR


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


def open_key_store(settings: Settings) -> KeyStore:
    return KeyStore(settings.key_dir / VAULT_KEYS)


def open_vault(settings: Settings) -> Vault:
    return Vault(open_blob_store(settings), open_key_store(settings))
