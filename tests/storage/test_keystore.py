"""The key store: private files, master keys, review keys, tombstones, rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import (
    IntegrityError,
    KeyDestroyed,
    KeyInUse,
    KeyNotFound,
    KeyStore,
    StorageUnavailable,
)


def test_create_is_idempotent_and_private(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    first = store.create()
    assert store.create() == first
    assert store.master_key_ids() == [first]
    store.check()
    for folder in (store.folder, store.folder / "master", store.folder / "reviews"):
        assert folder.stat().st_mode & 0o777 == 0o700
    assert (store.folder / "master" / f"{first}.key").stat().st_mode & 0o777 == 0o600
    assert len((store.folder / "master" / f"{first}.key").read_bytes()) == 32


def test_check_refuses_a_missing_or_open_store(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    with pytest.raises(StorageUnavailable, match="portal init"):
        store.check()
    store.create()
    os.chmod(store.folder, 0o755)  # noqa: S103 (the misconfiguration under test)
    with pytest.raises(StorageUnavailable, match="0700"):
        store.check()
    store.create()  # tightens it again
    store.check()


def test_a_master_key_file_open_to_others_is_refused(keystore: KeyStore) -> None:
    keystore.create_review_key("R")
    key_file = keystore.folder / "master" / f"{keystore.primary_master_key_id()}.key"
    os.chmod(key_file, 0o644)
    with pytest.raises(StorageUnavailable, match="chmod 600"):
        keystore.review_key("R")


def test_review_keys_are_random_wrapped_and_bound(keystore: KeyStore) -> None:
    keystore.create_review_key("R1")
    keystore.create_review_key("R1")  # idempotent: same key
    keystore.create_review_key("R2")
    v1, k1 = keystore.review_key("R1")
    assert keystore.review_key("R1") == (v1, k1)
    assert keystore.review_key("R2")[1] != k1
    files = list((keystore.folder / "reviews").iterdir())
    assert len(files) == 2
    assert all(k1 not in f.read_bytes() and f.name.encode() != b"R1.json" for f in files)
    # A wrapped review key copied into another review's file does not open there.
    r1 = next(f for f in files if b'"R1"' in f.read_bytes())
    r2 = next(f for f in files if f != r1)
    r2.write_bytes(r1.read_bytes().replace(b'"R1"', b'"R2"'))
    with pytest.raises(IntegrityError):
        keystore.review_key("R2")


def test_unknown_review(keystore: KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        keystore.review_key("NOPE")


def test_destroy_is_idempotent_and_final(keystore: KeyStore) -> None:
    keystore.create_review_key("R")
    keystore.destroy_review_key("R")
    keystore.destroy_review_key("R")
    with pytest.raises(KeyDestroyed):
        keystore.review_key("R")
    with pytest.raises(KeyDestroyed):
        keystore.create_review_key("R")  # a destroyed review's code is never given a new key
    assert list((keystore.folder / "reviews").iterdir()) == []
    status = keystore.status()
    assert (status.reviews, status.destroyed_reviews) == (0, 1)


def test_master_rotation_and_removal(keystore: KeyStore) -> None:
    old = keystore.primary_master_key_id()
    for code in ("A", "B", "C"):
        keystore.create_review_key(code)
    before = {code: keystore.review_key(code) for code in ("A", "B", "C")}
    with pytest.raises(KeyInUse):
        keystore.remove_master_key(old)  # primary, and in use
    new = keystore.rotate_master_key()
    assert keystore.primary_master_key_id() == new != old
    assert keystore.status().review_keys_by_master == {old: 0, new: 3} or (
        keystore.status().review_keys_by_master == {new: 3, old: 0}
    )
    keystore.remove_master_key(old)
    keystore.remove_master_key(old)  # idempotent
    assert not (keystore.folder / "master" / f"{old}.key").exists()
    assert {code: keystore.review_key(code) for code in ("A", "B", "C")} == before


def test_interrupted_rotation_is_finished_by_rewrap(keystore: KeyStore) -> None:
    keystore.create_review_key("A")
    keystore.create_review_key("B")
    old = keystore.primary_master_key_id()
    keystore.add_master_key()  # as if the process died right after making the new key primary
    with pytest.raises(KeyInUse):
        keystore.remove_master_key(old)
    assert keystore.rewrap_review_keys() == 2
    assert keystore.rewrap_review_keys() == 0
    keystore.remove_master_key(old)
    keystore.review_key("A")
    keystore.review_key("B")


def test_removing_a_needed_master_key_by_hand_makes_keys_unavailable(keystore: KeyStore) -> None:
    keystore.create_review_key("A")
    (keystore.folder / "master" / f"{keystore.primary_master_key_id()}.key").unlink()
    with pytest.raises(KeyNotFound):
        keystore.review_key("A")


def test_review_key_versions(keystore: KeyStore) -> None:
    keystore.create_review_key("R")
    first, key1 = keystore.review_key("R")
    second = keystore.add_review_key_version("R")
    assert keystore.review_key("R")[0] == second
    assert keystore.review_key("R", first) == (first, key1)
    assert keystore.remove_review_key_versions("R", keep={first}) == 0
    assert keystore.remove_review_key_versions("R", keep=set()) == 1
    assert keystore.review_key_versions("R") == [second]
    with pytest.raises(KeyNotFound):
        keystore.review_key("R", first)


def test_status_shows_no_key_material(keystore: KeyStore) -> None:
    keystore.create_review_key("R")
    status = keystore.status()
    assert status.master_key_ids == (status.primary_master_key_id,)
    assert status.reviews == 1
    assert keystore.review_key("R")[1].hex() not in repr(status)
