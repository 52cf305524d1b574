"""The key service: one suite run against the key folder and a real PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from storage import (
    DocumentKey,
    IntegrityError,
    InvalidInput,
    KeyDestroyed,
    KeyInUse,
    KeyNotFound,
    LocalFolderStore,
    StorageUnavailable,
    Vault,
    crypto,
)
from storage.address import open_key_service, parse_key_service_address
from storage.keyservice import FolderKeyService, KeyService
from tests.harness.softhsm import MODULE, SoftHsm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["folder", "pkcs11"])
def address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return f"file://{tmp_path / 'keys'}"
    hsm: SoftHsm = request.getfixturevalue("softhsm")
    return hsm.new_token()


@pytest.fixture
def keys(address: str) -> Iterator[KeyService]:
    service = open_key_service(parse_key_service_address(address))
    service.create_installation()
    yield service


def _other_process(address: str, code: str) -> str:
    """Run ``code`` with ``keys`` bound to the same key service in another process (a node)."""
    program = (
        "from storage.address import open_key_service, parse_key_service_address\n"
        f"keys = open_key_service(parse_key_service_address({address!r}))\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_installation_is_created_once_and_read_by_every_node(
    keys: KeyService, address: str
) -> None:
    found = keys.installation()
    assert found is not None
    assert found.signing_key_fingerprint == crypto_fingerprint(keys.signing_public_key())
    with pytest.raises(KeyInUse):
        keys.create_installation()
    assert _other_process(address, "print(keys.installation().id)") == found.id


def crypto_fingerprint(public: bytes) -> str:
    import hashlib

    return hashlib.sha256(public).hexdigest()


def test_signatures_verify_with_the_public_key(keys: KeyService) -> None:
    signature = keys.sign(b"checkpoint 42")
    assert len(signature) == 64
    assert crypto.ed25519_verify(keys.signing_public_key(), signature, b"checkpoint 42")
    assert not crypto.ed25519_verify(keys.signing_public_key(), signature, b"checkpoint 43")


def test_secrets_are_stable_per_name_and_the_same_on_every_node(
    keys: KeyService, address: str
) -> None:
    first = keys.secret("web-csrf")
    assert len(first) >= 32 and keys.secret("web-csrf") == first
    assert keys.secret("installation-check") != first
    other = _other_process(address, "print(keys.secret('web-csrf').hex())")
    assert bytes.fromhex(other) == first
    with pytest.raises(InvalidInput):
        keys.secret("../escape")


def test_an_empty_key_service_holds_no_installation_and_no_secrets(address: str) -> None:
    empty = open_key_service(parse_key_service_address(address))
    if isinstance(empty, FolderKeyService):
        empty.create()
    assert empty.installation() is None
    with pytest.raises(KeyNotFound):
        empty.secret("web-csrf")
    with pytest.raises(KeyNotFound):
        empty.sign(b"x")


def test_wrapped_keys_are_bound_to_their_associated_data(keys: KeyService) -> None:
    keys.create_review_key("SWG24")
    version = keys.primary_version("SWG24")
    wrapped = keys.wrap("SWG24", version, b"k" * 32, b"review SWG24 document A")
    assert keys.unwrap("SWG24", version, wrapped, b"review SWG24 document A") == b"k" * 32
    with pytest.raises(IntegrityError):
        keys.unwrap("SWG24", version, wrapped, b"review SWG24 document B")
    altered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(IntegrityError):
        keys.unwrap("SWG24", version, altered, b"review SWG24 document A")
    keys.create_review_key("OTHER")
    with pytest.raises((IntegrityError, KeyNotFound)):
        keys.unwrap("OTHER", keys.primary_version("OTHER"), wrapped, b"review SWG24 document A")


def test_review_key_versions_rotate_and_old_ones_are_removed(keys: KeyService) -> None:
    keys.create_review_key("R")
    keys.create_review_key("R")  # idempotent
    first = keys.primary_version("R")
    wrapped = keys.wrap("R", first, b"d" * 32, b"ad")
    second = keys.add_review_key_version("R")
    assert keys.primary_version("R") == second and keys.review_key_versions("R") == sorted(
        [first, second]
    )
    assert keys.unwrap("R", first, wrapped, b"ad") == b"d" * 32
    assert keys.remove_review_key_versions("R", keep=[]) == 1
    assert keys.review_key_versions("R") == [second]
    with pytest.raises(KeyNotFound):
        keys.unwrap("R", first, wrapped, b"ad")


def test_a_review_destroyed_on_one_node_is_refused_at_once_on_another(
    keys: KeyService, address: str
) -> None:
    keys.create_review_key("SWG24")
    version = keys.primary_version("SWG24")
    wrapped = keys.wrap("SWG24", version, b"k" * 32, b"ad")
    assert keys.unwrap("SWG24", version, wrapped, b"ad") == b"k" * 32  # this node has used it
    _other_process(address, "keys.destroy_review_key('SWG24')")
    assert keys.is_destroyed("SWG24") and not keys.has_review_key("SWG24")
    with pytest.raises(KeyDestroyed):
        keys.unwrap("SWG24", version, wrapped, b"ad")
    with pytest.raises(KeyDestroyed):
        keys.create_review_key("SWG24")  # a code is never reused
    keys.destroy_review_key("SWG24")  # idempotent


def test_a_review_created_on_one_node_is_usable_at_once_on_another(
    keys: KeyService, address: str
) -> None:
    out = _other_process(
        address,
        "keys.create_review_key('NEW1')\n"
        "v = keys.primary_version('NEW1')\n"
        "print(v, keys.wrap('NEW1', v, b'n' * 32, b'ad').hex())",
    )
    version, wrapped = out.split()
    assert keys.unwrap("NEW1", version, bytes.fromhex(wrapped), b"ad") == b"n" * 32


def test_the_vault_seals_and_opens_documents_through_the_service(
    keys: KeyService, tmp_path: Path
) -> None:
    store = LocalFolderStore(tmp_path / "blobs")
    store.create()
    vault = Vault(store, keys)
    vault.create_review_key("SWG24")
    key = vault.issue_document_key(review="SWG24", document_id="DOC-1")
    stored = vault.write(key, [b"case file " * 1000])
    assert b"".join(vault.read(key, stored.blob_id)) == b"case file " * 1000
    moved = DocumentKey(review="SWG24", document_id="DOC-2", wrapped=key.wrapped)
    with pytest.raises(IntegrityError):
        vault.read(moved, stored.blob_id)
    vault.destroy_review("SWG24", [])
    with pytest.raises(KeyDestroyed):
        vault.read(key, stored.blob_id)  # the blob is still there: the key is what is gone


# -- PKCS#11 only ------------------------------------------------------------------------------


def test_token_keys_are_non_extractable_objects(softhsm: SoftHsm) -> None:
    address = parse_key_service_address(softhsm.new_token())
    keys = open_key_service(address)
    keys.create_installation()
    keys.create_review_key("SWG24")
    token = pkcs11.lib(MODULE).get_token(token_label=address.token)
    with token.open() as session:  # logged in already: the login is the process's
        secret_keys = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        private = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert len(secret_keys) == 2 and len(private) == 1  # the review key, the secrets' root
        for key in [*secret_keys, *private]:
            assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True
            assert key[Attribute.TOKEN] is True


def test_a_wrong_pin_or_missing_token_is_a_clear_refusal(softhsm: SoftHsm, tmp_path: Path) -> None:
    uri = softhsm.new_token()
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("00000000\n")
    with pytest.raises(StorageUnavailable, match="PIN"):
        open_key_service(
            parse_key_service_address(uri.split("&pin-source=")[0] + f"&pin-source={wrong}")
        ).installation()
    with pytest.raises(StorageUnavailable, match="not present"):
        open_key_service(
            parse_key_service_address(f"pkcs11:token=absent?module-path={MODULE}&pin-value=1")
        ).installation()
    with pytest.raises(StorageUnavailable, match="no PKCS#11 module"):
        open_key_service(
            parse_key_service_address("pkcs11:token=a?module-path=/nonexistent.so&pin-value=1")
        ).installation()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "file://relative/path",
        "pkcs11:",
        "pkcs11:token=portal",  # no module
        "pkcs11:module-path=/x.so",  # no token
        "pkcs11:token=portal;junk?module-path=/x.so",
        "kms://anything",
    ],
)
def test_bad_addresses_are_refused_by_name(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_key_service_address(value)


def test_addresses_parse_as_rfc_7512_says() -> None:
    parsed = parse_key_service_address(
        "pkcs11:token=My%20Token;manufacturer=SoftHSM?module-path=/usr/lib/x.so&pin-source=file:/run/pin"
    )
    assert (parsed.token, parsed.module_path, parsed.pin_source) == (
        "My Token",
        "/usr/lib/x.so",
        "/run/pin",
    )
    assert "pin" not in parsed.describe().lower().replace("pkcs11", "")
