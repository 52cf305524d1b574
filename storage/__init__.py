"""Encrypted, streaming, crypto-shreddable blob storage for the portal; a library on its own.

Start with ``Vault(store, keystore)``; the store is a ``LocalFolderStore`` or an ``S3Store``, the
key store a ``KeyStore`` folder. The blob format is written down in docs/blob-format.md.
"""

from .backend import BlobInfo, BlobStore
from .errors import (
    BlobNotFound,
    IntegrityError,
    InvalidInput,
    KeyDestroyed,
    KeyInUse,
    KeyNotFound,
    KeyStoreError,
    StorageError,
    StorageUnavailable,
)
from .keystore import KeyStatus, KeyStore
from .localfolder import LocalFolderStore
from .s3 import S3Store
from .stream import SEGMENT_SIZE
from .vault import DocumentKey, StoredBlob, Vault

__all__ = [
    "SEGMENT_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "DocumentKey",
    "IntegrityError",
    "InvalidInput",
    "KeyDestroyed",
    "KeyInUse",
    "KeyNotFound",
    "KeyStatus",
    "KeyStore",
    "KeyStoreError",
    "LocalFolderStore",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "StoredBlob",
    "Vault",
]
