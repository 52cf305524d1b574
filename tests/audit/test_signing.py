"""The signing key: a private file outside the database, one error for every bad signature."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from audit import (
    PublicKey,
    SignatureInvalid,
    SigningKey,
    SigningKeyError,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
)


def test_key_file_is_created_private_and_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_or_create_signing_key(path)
    assert again.fingerprint == key.fingerprint == load_signing_key(path).fingerprint
    assert "PRIVATE" not in repr(key) and key.fingerprint in repr(key)
    assert list(path.parent.iterdir()) == [path]  # no staging file left behind


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit-signing.pem"
    load_or_create_signing_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signing_key(path)


def test_missing_or_garbage_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="portal init"):
        load_signing_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    os.chmod(garbage, 0o600)
    with pytest.raises(SigningKeyError):
        load_signing_key(garbage)
    with pytest.raises(SigningKeyError):
        load_public_key(garbage)


def test_signatures_verify_only_with_the_right_key_and_message(tmp_path: Path) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    signature = key.sign(b"checkpoint 10")
    key.public_key.verify(signature, b"checkpoint 10")
    pem = tmp_path / "public.pem"
    pem.write_bytes(key.public_key.to_pem())
    public = load_public_key(pem)
    assert public.fingerprint == key.fingerprint
    public.verify(signature, b"checkpoint 10")
    # One bit of the last byte flipped. (Replacing that byte with "00" was no change at all
    # whenever it already was 00, which Ed25519's S makes about one signature in sixteen.)
    flipped = signature[:-2] + f"{int(signature[-2:], 16) ^ 1:02x}"
    for bad_key, bad_signature, message in [
        (other.public_key, signature, b"checkpoint 10"),
        (public, signature, b"checkpoint 11"),
        (public, flipped, b"checkpoint 10"),
        (public, "zz", b"checkpoint 10"),
        (public, signature[:64], b"checkpoint 10"),
    ]:
        with pytest.raises(SignatureInvalid) as caught:
            bad_key.verify(bad_signature, message)
        assert str(caught.value) == str(SignatureInvalid())  # one message: no oracle


def test_public_key_from_pem_refuses_private_material() -> None:
    with pytest.raises(SigningKeyError):
        PublicKey.from_pem(SigningKey.generate().to_pem())
