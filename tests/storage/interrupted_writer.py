"""Child process for the "killed mid-stream" test: starts a vault write, then stalls until killed.

Usage: python -m tests.storage.interrupted_writer KEYS local ROOT
       python -m tests.storage.interrupted_writer KEYS s3 ENDPOINT BUCKET PREFIX
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

from storage import KeyStore, LocalFolderStore, S3Store, Vault
from storage.backend import BlobStore
from tests.harness.seaweedfs import s3_client

STREAMED_BEFORE_STALL = 24 * 1024 * 1024


def main(argv: list[str]) -> None:
    keys, kind, *target = argv
    store: BlobStore
    if kind == "local":
        store = LocalFolderStore(Path(target[0]))
    else:
        endpoint, bucket, prefix = target
        store = S3Store(s3_client(endpoint), bucket, prefix)
    keystore = KeyStore(Path(keys))
    keystore.create()
    vault = Vault(store, keystore)
    vault.create_review_key("KILL")
    key = vault.issue_document_key(review="KILL", document_id="DOC-KILL")

    def stalling() -> Iterator[bytes]:
        chunk = b"\x42" * (1024 * 1024)
        for _ in range(STREAMED_BEFORE_STALL // len(chunk)):
            yield chunk
        print("streaming", flush=True)
        while True:  # the parent kills us here, mid-stream
            time.sleep(1)
            yield b""

    vault.write(key, stalling())


if __name__ == "__main__":
    main(sys.argv[1:])
