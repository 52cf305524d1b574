"""Ed25519 signing keys for checkpoints and export seals: the one module of ``audit`` that imports
``cryptography.hazmat``.

The private key lives in a PEM file in the key store, outside the database: an attacker who can
write to the database but cannot read that file cannot produce a log that verifies. The public key
(PEM) and its fingerprint (SHA-256 of the raw 32-byte key, hex) are what a DPO needs offline.
Every failure to verify raises ``SignatureInvalid`` and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import SignatureInvalid, SigningKeyError

SIGNATURE_SIZE = 64


class PublicKey:
    """An Ed25519 public key: verifies checkpoints and export seals."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.fingerprint = hashlib.sha256(raw).hexdigest()

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError("not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"not an Ed25519 public key ({type(key).__name__})")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature_hex: str, message: bytes) -> None:
        """Raise ``SignatureInvalid`` unless ``signature_hex`` signs ``message`` with this key."""
        try:
            signature = bytes.fromhex(signature_hex)
        except (ValueError, TypeError):
            raise SignatureInvalid() from None
        if len(signature) != SIGNATURE_SIZE:
            raise SignatureInvalid()
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise SignatureInvalid() from None

    def __repr__(self) -> str:
        return f"PublicKey(fingerprint={self.fingerprint!r})"


class SigningKey:
    """An Ed25519 private key, or a signer that keeps it (an HSM). Never printed or stored here."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key: Ed25519PrivateKey | None = key
        self._sign: Callable[[bytes], bytes] = key.sign
        self.public_key = PublicKey(key.public_key())

    @classmethod
    def from_signer(cls, sign: Callable[[bytes], bytes], public_key: bytes) -> SigningKey:
        """A key held elsewhere (a key service): ``sign`` returns the 64-byte signature.

        The first signature is checked against ``public_key``, so a signer that holds another
        key than it claims fails here, not in a DPO's verification months later.
        """
        try:
            public = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            raise SigningKeyError("the key service's public key is not an Ed25519 key") from None
        key = cls.__new__(cls)
        key._key = None
        key._sign = sign
        key.public_key = PublicKey(public)
        probe = b"dxp signing key check"
        try:
            key.public_key.verify(sign(probe).hex(), probe)
        except SignatureInvalid:
            raise SigningKeyError(
                "the key service signs with another key than its public key"
            ) from None
        return key

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> str:
        """The signature of ``message``, hex."""
        return self._sign(message).hex()

    def to_pem(self) -> bytes:
        if self._key is None:
            raise SigningKeyError("this signing key is held by a key service: it has no PEM")
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:  # never the key itself, whatever ends up in a traceback
        return f"SigningKey(fingerprint={self.fingerprint!r})"


def load_signing_key(path: Path) -> SigningKey:
    """Load the key file; refuse one that other local accounts could read or replace."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"no audit signing key at {path}: run `portal init`") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read the audit signing key {path}: {exc.strerror}") from None
    # A key readable by others can be copied and used to forge checkpoints.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"the audit signing key {path} has mode {stat.S_IMODE(mode):04o}; "
            f"it must be readable by its owner only: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key ({type(key).__name__})")
    return SigningKey(key)


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Load the key file, creating it (mode 0600, in a 0700 folder) when it does not exist."""
    if path.exists():
        return load_signing_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.generate()
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.to_pem())
            handle.flush()
            os.fsync(handle.fileno())
        # link() is atomic and refuses to replace: two processes starting at once never
        # overwrite each other's key, and nobody ever reads a half-written file.
        os.link(staging, path)
    except FileExistsError:
        return load_signing_key(path)
    finally:
        staging.unlink(missing_ok=True)
    return key


def load_public_key(path: Path) -> PublicKey:
    try:
        return PublicKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"cannot read the public key {path}: {exc.strerror}") from None
