"""Encrypted, streaming, crypto-shreddable blob storage for the portal; a library on its own.

Start with ``Vault(store, keys)``; the store is a ``LocalFolderStore`` or an ``S3Store``, the keys
a key service (``open_key_service``: a ``FolderKeyService`` or a PKCS#11 token). The blob format is written down in docs/blob-format.md.
"""

from .address import KeyServiceAddress, open_key_service, parse_key_service_address
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
from .keyservice import (
    FolderKeyService,
    Installation,
    KeyService,
    ReviewKeys,
)
from .keystore import KeyStatus, KeyStore
from .localfolder import LocalFolderStore
from .s3 import S3Store
from .stream import SEGMENT_SIZE
from .vault import DocumentKey, StoredBlob, TextPlace, Vault

__all__ = [
    "SEGMENT_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "DocumentKey",
    "FolderKeyService",
    "Installation",
    "IntegrityError",
    "InvalidInput",
    "KeyDestroyed",
    "KeyInUse",
    "KeyNotFound",
    "KeyService",
    "KeyServiceAddress",
    "KeyStatus",
    "KeyStore",
    "KeyStoreError",
    "LocalFolderStore",
    "ReviewKeys",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "StoredBlob",
    "TextPlace",
    "Vault",
    "open_key_service",
    "parse_key_service_address",
]
