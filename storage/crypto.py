"""The one module that imports ``cryptography.hazmat``: small recipes on top of AES-256-GCM.

Two recipes, both with nonces kept out of the caller's hands:

* the segment stream, byte-compatible with Tink's AES-GCM-HKDF streaming AEAD (see
  docs/blob-format.md): ``SegmentSealer`` writes one stream, ``SegmentOpener`` opens its segments;
* ``seal``/``open_sealed`` for short values (wrapped keys, file names): a random 96-bit nonce
  followed by AES-256-GCM ciphertext and tag.

Every failure to open raises ``IntegrityError`` and nothing else, whatever the cause.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import IntegrityError, InvalidInput

RandomBytes = Callable[[int], bytes]

KEY_SIZE = 32  # AES-256 everywhere, and the size of every key this package generates
SALT_SIZE = 32  # Tink: salt size = derived key size
NONCE_PREFIX_SIZE = 7
NONCE_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = 1 + SALT_SIZE + NONCE_PREFIX_SIZE  # Tink's stream header: length, salt, prefix
SEGMENT_LIMIT = 2**32  # the segment number is 4 bytes in the nonce


def derive_stream_key(ikm: bytes, salt: bytes, associated_data: bytes) -> bytes:
    """Tink's per-stream key: HKDF-SHA256(ikm, salt, info=associated data)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=associated_data).derive(
        ikm
    )


def derive_subkey(key: bytes, label: bytes) -> bytes:
    """A key for one purpose derived from ``key``, so that no key serves two recipes."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=label).derive(key)


def segment_nonce(prefix: bytes, index: int, *, last: bool) -> bytes:
    """Nonce of segment ``index``: prefix ‖ 4-byte big-endian index ‖ last-segment flag."""
    # Threat: a wrapped counter would reuse a nonce under the same key, which breaks GCM outright.
    if not 0 <= index < SEGMENT_LIMIT:
        raise InvalidInput(f"segment number {index} is outside 0..2**32-1: the stream is too long")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SegmentSealer:
    """Seals the consecutive segments of one new stream.

    It owns the segment counter and the fresh random salt and nonce prefix, so that a caller cannot
    reuse a nonce; ``header`` must be written before the first sealed segment.
    """

    def __init__(self, ikm: bytes, associated_data: bytes, *, random_bytes: RandomBytes) -> None:
        _check_key(ikm)
        salt = random_bytes(SALT_SIZE)
        self._prefix = random_bytes(NONCE_PREFIX_SIZE)
        if len(salt) != SALT_SIZE or len(self._prefix) != NONCE_PREFIX_SIZE:
            raise InvalidInput("the random source returned the wrong number of bytes")
        self.header = bytes([HEADER_SIZE]) + salt + self._prefix
        self._aead = AESGCM(derive_stream_key(ikm, salt, associated_data))
        self._index = 0
        self._finished = False

    def seal(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        if self._finished:
            raise InvalidInput("the stream was already finished")
        nonce = segment_nonce(self._prefix, self._index, last=last)
        self._index += 1
        self._finished = last
        return self._aead.encrypt(nonce, plaintext, None)


class SegmentOpener:
    """Opens segments of one stream, in any order, each only after its tag verifies."""

    def __init__(self, ikm: bytes, header: bytes, associated_data: bytes) -> None:
        _check_key(ikm)
        # Threat: an edited header must not select another layout; anything but ours is refused.
        if len(header) != HEADER_SIZE or header[0] != HEADER_SIZE:
            raise IntegrityError()
        salt, self._prefix = header[1 : 1 + SALT_SIZE], header[1 + SALT_SIZE :]
        self._aead = AESGCM(derive_stream_key(ikm, salt, associated_data))

    def open(self, ciphertext: bytes | memoryview, *, index: int, last: bool) -> bytes:
        if not 0 <= index < SEGMENT_LIMIT or len(ciphertext) < TAG_SIZE:
            raise IntegrityError()
        try:
            # AES-GCM verifies the tag before returning anything: no unverified plaintext escapes.
            return self._aead.decrypt(
                segment_nonce(self._prefix, index, last=last), ciphertext, None
            )
        except InvalidTag:
            raise IntegrityError() from None


def seal(
    key: bytes, plaintext: bytes, associated_data: bytes, *, random_bytes: RandomBytes
) -> bytes:
    """AES-256-GCM with a fresh random nonce: nonce ‖ ciphertext ‖ tag."""
    _check_key(key)
    nonce = random_bytes(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise InvalidInput("the random source returned the wrong number of bytes")
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Inverse of ``seal``; raises ``IntegrityError`` for every failure."""
    if len(key) != KEY_SIZE or len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise IntegrityError()
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated_data)
    except InvalidTag:
        raise IntegrityError() from None


def ed25519_generate() -> bytes:
    """A new Ed25519 private key, PKCS#8 PEM (for a key folder's signing key file)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ed25519_private(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInput("the signing key file is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"the signing key is not an Ed25519 key ({type(key).__name__})")
    return key


def ed25519_sign(pem: bytes, message: bytes) -> bytes:
    return _ed25519_private(pem).sign(message)


def ed25519_public_key(pem: bytes) -> bytes:
    """The raw 32-byte public key of a PEM private key."""
    return (
        _ed25519_private(pem)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise InvalidInput(f"keys are {KEY_SIZE} bytes, not {len(key)}")
