"""Random secrets and how they are kept.

Session ids, API tokens, enrolment tokens and recovery codes are random (128 bits or more) and stored
only as SHA-256 digests: a stolen database gives nothing that can be presented to the portal, and with
that much entropy a fast hash is enough (no dictionary to attack). TOTP secrets must be readable by
the portal, so they are sealed with a key held in the key store, outside the database (Fernet from
``cryptography``: AES-CBC + HMAC, the library's safe recipe), so that a database backup alone cannot
mint sign-in codes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Crockford Base32 without the confusable letters, for codes that people type.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(prefix: str, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def new_recovery_code() -> str:
    """16 Crockford characters (80 bits) in groups of four, e.g. ``7KQ2-M9XD-3TPA-W1ZC``."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise_recovery_code(typed: str) -> str:
    cleaned = "".join(ch for ch in typed.upper() if ch.isalnum())
    cleaned = cleaned.replace("O", "0").replace("I", "1").replace("L", "1")
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))


class SecretBox:
    """Seal and open small secrets (TOTP seeds) with the key store's accounts key(s)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_secret(cls, material: bytes) -> SecretBox:
        """From the key service's ``accounts-secrets``: 32 raw bytes (derived in an HSM), or a
        key folder's file of Fernet key lines (newest first), as earlier versions wrote it."""
        if len(material) == 32:
            return cls([base64.urlsafe_b64encode(material)])
        return cls([line for line in material.split() if line])

    @classmethod
    def from_key_dir(cls, key_dir: Path) -> SecretBox:
        """For tests and tools on a key folder that ``portal init`` made."""
        from storage.keyservice import FolderKeyService

        return cls.from_secret(FolderKeyService(key_dir).secret("accounts-secrets"))

    def seal(self, value: bytes) -> bytes:
        return self._fernet.encrypt(value)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise ValueError("a sealed account secret could not be opened") from None
