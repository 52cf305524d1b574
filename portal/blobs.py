"""Turn the storage settings into a blob store from the ``storage`` library."""

from __future__ import annotations

from typing import Any

from portal.settings import Settings


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


def open_blob_store(settings: Settings) -> Any:
    from storage import LocalFolderStore, S3Store

    if settings.storage.kind == "file":
        assert settings.storage.path is not None
        return LocalFolderStore(settings.storage.path)
    return S3Store(s3_client(settings), settings.storage.bucket, settings.storage.prefix)
