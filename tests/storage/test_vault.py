"""The vault: the key hierarchy end to end, crypto-shredding, rotation, secrets, async writes."""

from __future__ import annotations

import ast
import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from storage import (
    DocumentKey,
    IntegrityError,
    InvalidInput,
    KeyDestroyed,
    KeyStore,
    LocalFolderStore,
    StorageError,
    Vault,
)
from tests.harness.loops import run_async

PACKAGE = Path(__file__).resolve().parents[2] / "storage"


def copy_blob(vault: Vault, blob_id: str) -> bytes:
    return b"".join(vault.store.get(blob_id))


def restore_blob(vault: Vault, data: bytes) -> str:
    """Put a copy taken earlier back under a new id, as an attacker with a backup could."""
    new_id = os.urandom(16).hex()
    vault.store.put(new_id, [data])
    return new_id


def test_wrapped_key_is_bound_and_opaque(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="DOC-1")
    again = vault.issue_document_key(review="R", document_id="DOC-1")
    assert key.wrapped != again.wrapped  # a fresh random data key each time
    assert "wrapped" not in repr(key) and key.wrapped.hex() not in repr(key)
    stored = vault.write(key, [b"content"])
    with pytest.raises(IntegrityError):
        vault.read(again, stored.blob_id)  # another data key of the very same document
    for position in range(len(key.wrapped)):
        altered = bytearray(key.wrapped)
        altered[position] ^= 0x01
        with pytest.raises(IntegrityError):
            vault.read(DocumentKey("R", "DOC-1", bytes(altered)), stored.blob_id)


def test_destroyed_review_cannot_be_opened_from_copies(vault: Vault) -> None:
    vault.create_review_key("SWG24")
    keys = [vault.issue_document_key(review="SWG24", document_id=f"DOC-{i}") for i in range(3)]
    blobs = [vault.write(k, [os.urandom(700)]).blob_id for k in keys]
    sealed_name = vault.seal_secret(keys[0], b"case-notes.pdf")
    # What a backup holds: the ciphertext and the database rows (wrapped keys, sealed name).
    backups = [(k, copy_blob(vault, b)) for k, b in zip(keys, blobs, strict=True)]
    vault.destroy_review("SWG24", blobs)
    vault.destroy_review("SWG24", blobs)  # idempotent
    assert not any(vault.store.exists(b) for b in blobs)
    for key, ciphertext in backups:
        restored = restore_blob(vault, ciphertext)
        with pytest.raises(KeyDestroyed):
            vault.read(key, restored)
    with pytest.raises(KeyDestroyed):
        vault.open_secret(keys[0], sealed_name)
    with pytest.raises(KeyDestroyed):
        vault.issue_document_key(review="SWG24", document_id="DOC-9")


def test_destroyed_document_after_review_key_rotation_cannot_be_opened(vault: Vault) -> None:
    vault.create_review_key("R")
    gone = vault.issue_document_key(review="R", document_id="DOC-GONE")
    kept = vault.issue_document_key(review="R", document_id="DOC-KEPT")
    gone_blob = vault.write(gone, [b"to be destroyed"]).blob_id
    kept_blob = vault.write(kept, [b"to be kept"]).blob_id
    backup = copy_blob(vault, gone_blob)  # a backup of the blob, and of the row (``gone``)
    vault.destroy_document(gone_blob)
    assert not vault.store.exists(gone_blob)
    # The row's wrapped key is erased by the caller; re-wrapping the others under a new review key
    # version and removing the old version makes the backup's copy of the row useless too.
    (kept,) = vault.rotate_review_key("R", [kept])
    assert vault.remove_old_review_keys("R", in_use=[kept]) == 1
    with pytest.raises(IntegrityError):
        vault.read(gone, restore_blob(vault, backup))
    assert b"".join(vault.read(kept, kept_blob)) == b"to be kept"


def test_old_review_key_version_is_kept_while_a_key_needs_it(vault: Vault) -> None:
    vault.create_review_key("R")
    a = vault.issue_document_key(review="R", document_id="A")
    b = vault.issue_document_key(review="R", document_id="B")
    (a2,) = vault.rotate_review_key("R", [a])  # b was missed
    assert vault.remove_old_review_keys("R", in_use=[a2, b]) == 0
    blob = vault.write(b, [b"still fine"]).blob_id
    assert b"".join(vault.read(b, blob)) == b"still fine"


@pytest.mark.slow
def test_rotation_over_a_thousand_documents(tmp_path: Path) -> None:
    keystore = KeyStore(tmp_path / "keys")
    old_master = keystore.create()
    store = LocalFolderStore(tmp_path / "blobs", durable=False)  # fsync off: speed only
    store.create()
    vault = Vault(store, keystore, segment_size=1024)
    reviews = [f"REV{i}" for i in range(4)]
    for review in reviews:
        vault.create_review_key(review)
    documents = []
    for i in range(1000):
        key = vault.issue_document_key(review=reviews[i % 4], document_id=f"DOC-{i:04}")
        content = f"document {i} ".encode() * (i % 7 + 1)
        documents.append((key, vault.write(key, [content]).blob_id, content))
    blob_bytes = {blob: copy_blob(vault, blob) for _, blob, _ in documents}

    new_master = vault.rotate_master_key()
    vault.remove_master_key(old_master)
    assert not (keystore.folder / "master" / f"{old_master}.key").exists()
    assert vault.key_status().master_key_ids == (new_master,)
    for key, blob, content in documents:
        assert b"".join(vault.read(key, blob)) == content

    # Rotate one review's key too: its 250 data keys re-wrapped, the old version removed.
    in_review = [d for d in documents if d[0].review == "REV1"]
    rotated = vault.rotate_review_key("REV1", [key for key, _, _ in in_review])
    assert vault.remove_old_review_keys("REV1", in_use=rotated) == 1
    for key, (old_key, blob, content) in zip(rotated, in_review, strict=True):
        assert key.wrapped != old_key.wrapped
        assert b"".join(vault.read(key, blob)) == content
        with pytest.raises(IntegrityError):
            vault.read(old_key, blob)
    # No blob was rewritten by either rotation.
    assert all(copy_blob(vault, blob) == data for blob, data in blob_bytes.items())


def test_secrets_are_bound_to_document_and_purpose(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="DOC-1")
    other = vault.issue_document_key(review="R", document_id="DOC-2")
    sealed = vault.seal_secret(key, "Jane Doe \u2013 assessment.pdf".encode())
    assert b"Jane" not in sealed
    assert vault.open_secret(key, sealed).decode() == "Jane Doe \u2013 assessment.pdf"
    assert vault.seal_secret(key, b"x") != vault.seal_secret(key, b"x")  # fresh nonce each time
    wrong_openings: list[Callable[[], bytes]] = [
        lambda: vault.open_secret(other, sealed),
        lambda: vault.open_secret(key, sealed, purpose="case note"),
        lambda: vault.open_secret(key, sealed[:-1]),
        lambda: vault.open_secret(key, b""),
        lambda: vault.open_secret(key, bytes([sealed[0] ^ 1]) + sealed[1:]),
    ]
    for wrong in wrong_openings:
        with pytest.raises(IntegrityError):
            wrong()
    with pytest.raises(InvalidInput):
        vault.seal_secret(key, b"x" * 70_000)


def test_async_write(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="DOC-A")
    data = os.urandom(100_000)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 4096):
            await asyncio.sleep(0)
            yield data[i : i + 4096]

    stored = run_async(lambda: vault.write_async(key, body()))
    assert b"".join(vault.read(key, stored.blob_id)) == data
    assert stored.size == len(data)


def test_async_write_failure_and_cancellation_leave_nothing(vault: Vault) -> None:
    vault.create_review_key("R")
    key = vault.issue_document_key(review="R", document_id="DOC-A")

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 10_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        run_async(lambda: vault.write_async(key, failing()))

    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            await asyncio.sleep(0.001)
            yield b"y" * 10_000

    async def cancel_midway() -> None:
        task = asyncio.create_task(vault.write_async(key, endless()))
        await started.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(cancel_midway)
    assert list(vault.store.list_blobs()) == []
    root = vault.store.root  # type: ignore[attr-defined]
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_vault_on_s3_round_trip(s3_vault: Vault) -> None:
    s3_vault.create_review_key("S3R")
    key = s3_vault.issue_document_key(review="S3R", document_id="DOC-S3")
    data = os.urandom(9 * 1024 * 1024 + 5)  # a multipart upload
    stored = s3_vault.write(key, [data[i : i + 65536] for i in range(0, len(data), 65536)])
    assert b"".join(s3_vault.read(key, stored.blob_id)) == data
    start = 5 * 1024 * 1024 - 3
    assert (
        b"".join(s3_vault.read(key, stored.blob_id, start=start, end=start + 9))
        == data[start : start + 9]
    )


def test_errors_share_one_base() -> None:
    import storage

    for name in storage.__all__:
        value = getattr(storage, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, StorageError), name


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layering() -> None:
    """storage/ is a library: no web framework, no ORM, no portal; hazmat in crypto.py alone."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        imported = _imports(module)
        for forbidden in ("starlette", "sqlmodel", "sqlalchemy", "portal", "audit"):
            assert not any(n == forbidden or n.startswith(forbidden + ".") for n in imported), (
                module.name,
                forbidden,
            )
        uses_hazmat = any(n.startswith("cryptography") for n in imported)
        assert uses_hazmat == (module.name == "crypto.py"), module.name
        assert len(module.read_text().splitlines()) < 400, f"{module.name} is getting long"
