"""The key service in a PKCS#11 token (an HSM, a cloud HSM, or SoftHSM2 in the tests).

Every key the portal needs is a token object that never leaves the token:

::

    portal:review:<h>:<version>   AES-256, non-extractable: wraps the review's document data keys
                                  (AES-GCM inside the token, with the vault's associated data)
    portal:review:<h>             data object: the review's code and primary key version
    portal:destroyed:<h>          data object: tombstone of a destroyed review key (no key material)
    portal:signing                Ed25519 key pair, private half non-extractable (CKM_EDDSA)
    portal:secrets                generic secret, non-extractable: the named secrets are
                                  HMAC-SHA256(this key, name), computed inside the token
    portal:installation           data object: the installation's id and signing key fingerprint

``<h>`` is the same hash of the review code as in the key folder. AES-GCM rather than AES key wrap
(CKM_AES_KEY_WRAP_PAD): key wrap takes no associated data, and the vault binds every wrapped data
key to its review, document and key version; GCM also keeps one wrapped-key format (nonce,
ciphertext, tag) for every provider. Destroying a review deletes its key objects: from then on no
copy of a wrapped data key, in any database or blob backup, can be opened. The token's own backups
are the one place such a key could survive (docs/destruction.md says how to rotate them).

Nothing is cached between calls but the session: every lookup finds the objects afresh, so a key
destroyed by another node is refused here at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from . import crypto
from .errors import (
    IntegrityError,
    InvalidInput,
    KeyDestroyed,
    KeyInUse,
    KeyNotFound,
    StorageUnavailable,
)
from .keyservice import Installation, check_secret_name, fingerprint
from .keystore import KeyStatus, check_review_code
from .token import token_session

if TYPE_CHECKING:
    from .address import KeyServiceAddress

_PREFIX = "portal:"
_ED25519_OID = "1.3.101.112"


class Pkcs11KeyService:
    """Review keys, the signing key and the secrets' root as objects of one PKCS#11 token."""

    def __init__(self, address: KeyServiceAddress) -> None:
        if address.kind != "pkcs11":
            raise InvalidInput("Pkcs11KeyService needs a pkcs11: address")
        self._address = address
        self.description = f"PKCS#11 token {address.token!r}"

    def __repr__(self) -> str:
        return f"Pkcs11KeyService(token={self._address.token!r})"

    # -- installation --------------------------------------------------------------------------

    def installation(self) -> Installation | None:
        with self._session() as session:
            record = self._data(session, "installation")
            if record is None:
                return None
            return Installation(str(record["id"]), str(record["signing_key_fingerprint"]))

    def create_installation(self) -> Installation:
        with self._session() as session:
            if self._objects(session, "installation") or self._objects(session, "signing"):
                raise KeyInUse(f"the {self.description} already holds an installation's keys")
            session.generate_keypair(
                KeyType.EC_EDWARDS,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                store=True,
                label=_PREFIX + "signing",
                public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(_ED25519_OID)},
                private_template={
                    Attribute.EXTRACTABLE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.SIGN: True,
                },
            )
            session.generate_key(
                KeyType.GENERIC_SECRET,
                256,
                store=True,
                label=_PREFIX + "secrets",
                template={
                    Attribute.EXTRACTABLE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.SIGN: True,
                },
            )
            found = Installation(secrets.token_hex(8), fingerprint(self._public_key(session)))
            self._put_data(
                session,
                "installation",
                {"id": found.id, "signing_key_fingerprint": found.signing_key_fingerprint},
            )
            return found

    def sign(self, message: bytes) -> bytes:
        with self._session() as session:
            key = self._one(session, "signing", ObjectClass.PRIVATE_KEY)
            return bytes(key.sign(message, mechanism=Mechanism.EDDSA))

    def signing_public_key(self) -> bytes:
        with self._session() as session:
            return self._public_key(session)

    def secret(self, name: str) -> bytes:
        with self._session() as session:
            key = self._one(session, "secrets", ObjectClass.SECRET_KEY)
            mac = key.sign(check_secret_name(name).encode(), mechanism=Mechanism.SHA256_HMAC)
            return bytes(mac)

    def check(self) -> None:
        with self._session():
            pass

    # -- review keys ---------------------------------------------------------------------------

    def create_review_key(self, review: str) -> None:
        check_review_code(review)
        with self._session() as session:
            self._refuse_destroyed(session, review)
            if self._data(session, _review_label(review)) is None:
                self._new_version(session, review)

    def primary_version(self, review: str) -> str:
        with self._session() as session:
            return str(self._review(session, review)["primary"])

    def add_review_key_version(self, review: str) -> str:
        with self._session() as session:
            self._review(session, review)
            return self._new_version(session, review)

    def review_key_versions(self, review: str) -> list[str]:
        with self._session() as session:
            self._review(session, review)
            return sorted(self._versions(session, review))

    def remove_review_key_versions(self, review: str, *, keep: Collection[str]) -> int:
        with self._session() as session:
            keep = {*keep, self._review(session, review)["primary"]}
            removed = 0
            for version, key in self._versions(session, review).items():
                if version not in keep:
                    key.destroy()
                    removed += 1
            return removed

    def wrap(self, review: str, version: str, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(crypto.NONCE_SIZE)
        with self._session() as session:
            key = self._version_key(session, review, version)
            sealed = key.encrypt(
                plaintext,
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, associated_data),
            )
            return nonce + bytes(sealed)

    def unwrap(self, review: str, version: str, wrapped: bytes, associated_data: bytes) -> bytes:
        if len(wrapped) < crypto.NONCE_SIZE + crypto.TAG_SIZE:
            raise IntegrityError()
        with self._session() as session:
            key = self._version_key(session, review, version)
            try:
                return bytes(
                    key.decrypt(
                        wrapped[crypto.NONCE_SIZE :],
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=GCMParams(wrapped[: crypto.NONCE_SIZE], associated_data),
                    )
                )
            except pkcs11.PKCS11Error:
                raise IntegrityError() from None  # one answer for every failure to open

    def destroy_review_key(self, review: str) -> None:
        check_review_code(review)
        with self._session() as session:
            # Tombstone first: a crash between the two steps still leaves the key refused.
            if not self._objects(session, _destroyed_label(review)):
                self._put_data(session, _destroyed_label(review), {})
            for key in self._versions(session, review).values():
                key.destroy()
            for record in self._objects(session, _review_label(review)):
                record.destroy()

    def is_destroyed(self, review: str) -> bool:
        check_review_code(review)
        with self._session() as session:
            return bool(self._objects(session, _destroyed_label(review)))

    def has_review_key(self, review: str) -> bool:
        check_review_code(review)
        with self._session() as session:
            if self._objects(session, _destroyed_label(review)):
                return False
            return self._data(session, _review_label(review)) is not None

    def key_reference(self, review: str) -> str:
        label = _review_label(check_review_code(review))
        return f"{self.description}: objects {_PREFIX}{label}:* (every version)"

    def status(self) -> KeyStatus:
        with self._session() as session:
            labels = [
                str(o[Attribute.LABEL])
                for o in session.get_objects({Attribute.CLASS: ObjectClass.DATA})
            ]
        reviews = sum(1 for label in labels if label.count(":") == 2 and ":review:" in label)
        destroyed = sum(1 for label in labels if label.startswith(_PREFIX + "destroyed:"))
        return KeyStatus(
            master_key_ids=(),
            primary_master_key_id="",
            reviews=reviews,
            destroyed_reviews=destroyed,
            review_keys_by_master={},
        )

    def rotate_master_key(self) -> str:
        raise InvalidInput(
            f"the {self.description} keeps review keys as its own objects: there is no master "
            "key to rotate (rotate a review's key with --review CODE)"
        )

    def remove_master_key(self, key_id: str) -> None:
        self.rotate_master_key()

    # -- private -------------------------------------------------------------------------------

    def _session(self) -> AbstractContextManager[Any]:
        return token_session(self._address, self.description)

    @staticmethod
    def _objects(session: Any, name: str, cls: ObjectClass | None = None) -> list[Any]:
        template: dict[Attribute, Any] = {Attribute.LABEL: _PREFIX + name, Attribute.TOKEN: True}
        if cls is not None:
            template[Attribute.CLASS] = cls
        return list(session.get_objects(template))

    def _one(self, session: Any, name: str, cls: ObjectClass) -> Any:
        found = self._objects(session, name, cls)
        if not found:
            raise KeyNotFound(f"the {self.description} holds no {name} key")
        if len(found) > 1:
            raise StorageUnavailable(f"The {self.description} holds {len(found)} {name} keys.")
        return found[0]

    def _public_key(self, session: Any) -> bytes:
        point = bytes(self._one(session, "signing", ObjectClass.PUBLIC_KEY)[Attribute.EC_POINT])
        # CKA_EC_POINT is a DER OCTET STRING (04 20 ‖ key) in SoftHSM2; some tokens give it raw.
        return point[2:] if len(point) == 34 and point[:2] == b"\x04\x20" else point

    def _data(self, session: Any, name: str) -> dict[str, Any] | None:
        found = self._objects(session, name, ObjectClass.DATA)
        if not found:
            return None
        value: dict[str, Any] = json.loads(bytes(found[0][Attribute.VALUE]))
        return value

    def _put_data(self, session: Any, name: str, value: dict[str, Any]) -> None:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.LABEL: _PREFIX + name,
                Attribute.APPLICATION: "portal",
                Attribute.VALUE: json.dumps(value, sort_keys=True).encode(),
            }
        )

    def _refuse_destroyed(self, session: Any, review: str) -> None:
        if self._objects(session, _destroyed_label(review)):
            raise KeyDestroyed(f"the key of review {review!r} was destroyed")

    def _review(self, session: Any, review: str) -> dict[str, Any]:
        check_review_code(review)
        self._refuse_destroyed(session, review)
        record = self._data(session, _review_label(review))
        if record is None:
            raise KeyNotFound(f"review {review!r} has no key")
        if record.get("review") != review:
            raise StorageUnavailable(f"The key service entry for review {review!r} is damaged.")
        return record

    def _versions(self, session: Any, review: str) -> dict[str, Any]:
        prefix = _PREFIX + _review_label(review) + ":"
        found = {}
        for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            label = str(key[Attribute.LABEL])
            if label.startswith(prefix):
                found[label.removeprefix(prefix)] = key
        return found

    def _version_key(self, session: Any, review: str, version: str) -> Any:
        self._review(session, review)
        found = self._objects(session, f"{_review_label(review)}:{version}", ObjectClass.SECRET_KEY)
        if not found:
            raise KeyNotFound(f"review {review!r} has no key version {version!r}")
        return found[0]

    def _new_version(self, session: Any, review: str) -> str:
        version = secrets.token_hex(8)
        session.generate_key(
            KeyType.AES,
            256,
            store=True,
            label=f"{_PREFIX}{_review_label(review)}:{version}",
            template={
                Attribute.EXTRACTABLE: False,
                Attribute.SENSITIVE: True,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
            },
        )
        for record in self._objects(session, _review_label(review), ObjectClass.DATA):
            record.destroy()
        self._put_data(session, _review_label(review), {"review": review, "primary": version})
        return version


def _review_label(review: str) -> str:
    return "review:" + hashlib.sha256(b"review:" + review.encode("utf-8")).hexdigest()[:32]


def _destroyed_label(review: str) -> str:
    return "destroyed:" + _review_label(review).removeprefix("review:")
