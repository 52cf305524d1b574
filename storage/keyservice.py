"""The key service: one small interface to wherever an installation's keys are kept.

Every node of an installation uses the same key service (SPEC §4). It holds:

* one key per review, which wraps that review's document data keys (``ReviewKeys``);
* the installation's Ed25519 signing key (audit checkpoints, export seals, certificates);
* a root for the installation's small secrets (form tokens, sealed sign-in secrets);
* the installation's identity, which the database records at ``portal init``: a node whose key
  service holds another installation's keys, or none, refuses to start instead of minting keys.

Two providers, chosen by a URI (``storage.address.open_key_service``):

* ``file:///FOLDER``: ``FolderKeyService``, a private folder on one machine (or shared by several);
* ``pkcs11:token=…?module-path=…&pin-source=…`` (RFC 7512): ``storage.pkcs11.Pkcs11KeyService``,
  any HSM that speaks PKCS#11; review and signing keys are token objects that never leave it.

Destroying a review's key inside the service is what puts every copy of its documents beyond use,
in the database, the blob store and all their backups: those hold the data keys only wrapped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import crypto
from .errors import InvalidInput, KeyInUse, KeyNotFound, StorageUnavailable
from .files import is_private, make_private_folder, write_atomically
from .keystore import KeyStatus, KeyStore

# The secrets the portal asks for by name; a provider derives or stores one per name.
SECRET_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class Installation:
    """Who a key service belongs to: shown and compared, never secret."""

    id: str  # random, made when the installation's keys were created
    signing_key_fingerprint: str  # SHA-256 of the raw Ed25519 public key, hex

    def describe(self) -> str:
        return f"installation {self.id} (signing key {self.signing_key_fingerprint[:16]}…)"


class ReviewKeys(Protocol):
    """What the vault needs: one key per review, with versions, that wraps data keys."""

    def create_review_key(self, review: str) -> None: ...
    def primary_version(self, review: str) -> str: ...
    def add_review_key_version(self, review: str) -> str: ...
    def review_key_versions(self, review: str) -> list[str]: ...
    def remove_review_key_versions(self, review: str, *, keep: Collection[str]) -> int: ...
    def wrap(
        self, review: str, version: str, plaintext: bytes, associated_data: bytes
    ) -> bytes: ...
    def unwrap(
        self, review: str, version: str, wrapped: bytes, associated_data: bytes
    ) -> bytes: ...
    def destroy_review_key(self, review: str) -> None: ...
    def is_destroyed(self, review: str) -> bool: ...
    def has_review_key(self, review: str) -> bool: ...
    def key_reference(self, review: str) -> str:
        """Where the review's key is (or was) kept: a file or token object name, no secret."""
        ...

    def check(self) -> None: ...
    def status(self) -> KeyStatus: ...
    def rotate_master_key(self) -> str: ...
    def remove_master_key(self, key_id: str) -> None: ...


class KeyService(ReviewKeys, Protocol):
    """Review keys plus the installation's identity, signing key and secrets."""

    description: str  # where the keys are, for messages (never a PIN)

    def installation(self) -> Installation | None:
        """The installation whose keys this service holds, or None if it holds none."""
        ...

    def create_installation(self) -> Installation:
        """Create the installation's keys; ``KeyInUse`` if the service already holds some."""
        ...

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message`` (64 bytes) with the installation's key."""
        ...

    def signing_public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...

    def secret(self, name: str) -> bytes:
        """32 secret bytes for ``name``: the same on every node, different for every name."""
        ...


def fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def check_secret_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= SECRET_NAME_CHARS:
        raise InvalidInput(f"secret name {name!r} must be 1..64 of a-z, 0-9 and '-'")
    return name


# -- the folder provider -------------------------------------------------------------------------


class FolderKeyService:
    """The embedded default: keys as private files in one folder (0700, files 0600).

    ::

        FOLDER/
          installation.json        the installation's id and signing key fingerprint
          audit-signing.pem        Ed25519 private key (PKCS#8)
          accounts-secrets.key     sealed sign-in secrets' key (Fernet key lines)
          web-csrf.key             form tokens' key
          <name>.key               any other named secret (32 random bytes)
          vault/                   master and review keys (``storage.keystore``)

    The file names are those of earlier versions, so an existing key folder keeps working. Only
    machines that share this folder share these keys; nodes on separate machines use PKCS#11.
    """

    # Secrets that earlier versions kept under their own file names.
    _LEGACY_NAMES = {"accounts-secrets": "accounts-secrets.key", "web-csrf": "web-csrf.key"}
    SIGNING_KEY_FILE = "audit-signing.pem"
    INSTALLATION_FILE = "installation.json"

    def __init__(
        self, folder: Path, *, random_bytes: crypto.RandomBytes = secrets.token_bytes
    ) -> None:
        self.folder = Path(folder).absolute()
        self.description = f"key folder {self.folder}"
        self._random = random_bytes
        self.review_keys = KeyStore(self.folder / "vault", random_bytes=random_bytes)

    def __repr__(self) -> str:
        return f"FolderKeyService({str(self.folder)!r})"

    # -- installation --------------------------------------------------------------------------

    def installation(self) -> Installation | None:
        found = self._read_installation()
        if found is None and (self.folder / self.SIGNING_KEY_FILE).exists():
            # A folder from before installations had an id: adopt its keys, never replace them.
            with self.review_keys.locked():
                found = self._read_installation() or self._write_installation(self._random(8).hex())
        return found

    def create_installation(self) -> Installation:
        self.create()
        with self.review_keys.locked():
            if self._holds_installation():
                raise KeyInUse(f"the {self.description} already holds an installation's keys")
            write_atomically(self.folder / self.SIGNING_KEY_FILE, crypto.ed25519_generate())
            return self._write_installation(self._random(8).hex())

    def create(self) -> None:
        """Create the folders and the vault's first master key (idempotent)."""
        make_private_folder(self.folder)
        self.review_keys.create()

    def sign(self, message: bytes) -> bytes:
        return crypto.ed25519_sign(self._signing_pem(), message)

    def signing_public_key(self) -> bytes:
        return crypto.ed25519_public_key(self._signing_pem())

    def secret(self, name: str) -> bytes:
        path = self.folder / self._LEGACY_NAMES.get(check_secret_name(name), f"{name}.key")
        if not path.exists():
            with self.review_keys.locked():
                if not self._holds_installation():
                    raise KeyNotFound(f"the {self.description} holds no installation keys")
                if not path.exists():
                    write_atomically(path, self._secret_file(name))
        return self._read_private(path)

    def check(self) -> None:
        if not self.folder.is_dir() or not is_private(self.folder):
            raise StorageUnavailable(
                f"The {self.description} is missing or open to other users. It must be owned "
                "by the portal's user with mode 0700; run `portal init`."
            )
        self.review_keys.check()

    # -- review keys: the vault's key store ----------------------------------------------------

    def create_review_key(self, review: str) -> None:
        self.review_keys.create_review_key(review)

    def primary_version(self, review: str) -> str:
        return self.review_keys.primary_version(review)

    def add_review_key_version(self, review: str) -> str:
        return self.review_keys.add_review_key_version(review)

    def review_key_versions(self, review: str) -> list[str]:
        return self.review_keys.review_key_versions(review)

    def remove_review_key_versions(self, review: str, *, keep: Collection[str]) -> int:
        return self.review_keys.remove_review_key_versions(review, keep=keep)

    def wrap(self, review: str, version: str, plaintext: bytes, associated_data: bytes) -> bytes:
        return self.review_keys.wrap(review, version, plaintext, associated_data)

    def unwrap(self, review: str, version: str, wrapped: bytes, associated_data: bytes) -> bytes:
        return self.review_keys.unwrap(review, version, wrapped, associated_data)

    def destroy_review_key(self, review: str) -> None:
        self.review_keys.destroy_review_key(review)

    def is_destroyed(self, review: str) -> bool:
        return self.review_keys.is_destroyed(review)

    def has_review_key(self, review: str) -> bool:
        return self.review_keys.has_review_key(review)

    def key_reference(self, review: str) -> str:
        return f"{self.description}: vault/{self.review_keys.key_reference(review)}"

    def status(self) -> KeyStatus:
        return self.review_keys.status()

    def rotate_master_key(self) -> str:
        return self.review_keys.rotate_master_key()

    def remove_master_key(self, key_id: str) -> None:
        self.review_keys.remove_master_key(key_id)

    # -- private -------------------------------------------------------------------------------

    def _signing_pem(self) -> bytes:
        path = self.folder / self.SIGNING_KEY_FILE
        try:
            return self._read_private(path)
        except FileNotFoundError:
            raise KeyNotFound(f"the {self.description} holds no signing key") from None

    def _read_private(self, path: Path) -> bytes:
        # Threat: a key file others can read is a leaked key; refuse to use it at all.
        if not is_private(path):
            raise StorageUnavailable(
                f"The key file {path} is open to other users; chmod 600 it and rotate."
            )
        return path.read_bytes()

    def _secret_file(self, name: str) -> bytes:
        if name == "accounts-secrets":  # earlier versions' format: Fernet key lines
            return base64.urlsafe_b64encode(self._random(32)) + b"\n"
        return self._random(crypto.KEY_SIZE)

    def _holds_installation(self) -> bool:
        names = (self.INSTALLATION_FILE, self.SIGNING_KEY_FILE)
        return any((self.folder / name).exists() for name in names)

    def _read_installation(self) -> Installation | None:
        try:
            data = json.loads((self.folder / self.INSTALLATION_FILE).read_bytes())
            return Installation(str(data["id"]), str(data["signing_key_fingerprint"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageUnavailable(f"The {self.description} is unreadable: {exc}") from None

    def _write_installation(self, installation_id: str) -> Installation:
        found = Installation(installation_id, fingerprint(self.signing_public_key()))
        record = {"id": found.id, "signing_key_fingerprint": found.signing_key_fingerprint}
        write_atomically(
            self.folder / self.INSTALLATION_FILE, json.dumps(record, sort_keys=True).encode()
        )
        return found


def secret_check(service: KeyService) -> str:
    """A value that tells whether two services derive the same secrets, revealing none of them."""
    return hmac.new(service.secret("installation-check"), b"check", hashlib.sha256).hexdigest()


# -- choosing a provider ---------------------------------------------------------------------------
