"""Fixtures for the storage tests: key stores, vaults, and the two blob stores (local and S3)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import KeyStore, LocalFolderStore, S3Store, Vault
from storage.backend import BlobStore

SMALL_SEGMENT = 256  # tests that need many segments use small ones; production stays at 1 MiB


@pytest.fixture
def keystore(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.create()
    return store


@pytest.fixture
def local_store(tmp_path: Path) -> LocalFolderStore:
    store = LocalFolderStore(tmp_path / "blobs")
    store.create()
    return store


@pytest.fixture
def make_s3_store(s3_server: Any, s3_bucket: str) -> Callable[..., S3Store]:
    """S3 stores on the session's SeaweedFS, each under its own prefix (isolated listings)."""

    def make(bucket: str = s3_bucket, **options: Any) -> S3Store:
        return S3Store(s3_server.client(), bucket, "t-" + secrets.token_hex(4), **options)

    return make


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """The shared backend suite runs once against each store."""
    if request.param == "local":
        store = LocalFolderStore(tmp_path / "blobs")
        store.create()
        yield store
    else:
        yield request.getfixturevalue("make_s3_store")()


@pytest.fixture
def vault(local_store: LocalFolderStore, keystore: KeyStore) -> Vault:
    return Vault(local_store, keystore, segment_size=SMALL_SEGMENT)


@pytest.fixture
def s3_vault(make_s3_store: Callable[..., S3Store], keystore: KeyStore) -> Vault:
    return Vault(make_s3_store(), keystore)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
