"""The installation's keys, from the key service that every node shares (``PORTAL_KMS``).

A database belongs to one installation: ``portal init`` records which (its id, the signing key's
fingerprint, and a check value of its secrets) in the ``installation`` table. Every process that
opens the database first checks that its key service holds that installation's keys, and refuses
to start, naming the mismatch, when it does not. Threat: a node pointed at an empty or copied key
folder used to mint a second set of keys against the shared database, then sign checkpoints no one
trusts, fail sign-ins, and open reviews that another node had destroyed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

import audit
from portal.accounts.secrets import SecretBox
from portal.blobs import open_keys
from portal.db import make_engine
from portal.errors import Failure
from portal.exchange.models import Review, ReviewState
from portal.models import InstallationRecord
from portal.settings import Settings
from storage import KeyInUse, StorageError
from storage.keyservice import Installation, KeyService, secret_check


class KeyServiceRefused(Failure):
    """This process's key service does not hold this database's installation keys."""


class NotInitialised(KeyServiceRefused):
    """The database has no installation yet: ``portal init`` has not run."""


def signing_key(keys: KeyService) -> audit.SigningKey:
    """The audit and certificate signing key; with an HSM it never leaves the token."""
    return audit.SigningKey.from_signer(keys.sign, keys.signing_public_key())


def secret_box(keys: KeyService) -> SecretBox:
    return SecretBox.from_secret(keys.secret("accounts-secrets"))


def csrf_key(keys: KeyService) -> bytes:
    return keys.secret("web-csrf")


def check_installation(keys: KeyService, engine: Engine) -> Installation:
    """The installation, if ``keys`` holds this database's; ``KeyServiceRefused`` otherwise."""
    try:
        with Session(engine) as db:
            record = db.get(InstallationRecord, 1)
            reviews = [(r.code, r.state) for r in db.exec(select(Review)).all()]
    except DBAPIError:  # no such table: a database from before `portal init`
        record = None
    if record is None:
        raise NotInitialised(
            "The database records no installation yet: run `portal init` (once, on the first "
            "node) before starting the portal."
        )
    found = _compare(keys, record)
    _compare_reviews(keys, reviews)
    return found


def _compare_reviews(keys: KeyService, reviews: list[tuple[str, ReviewState]]) -> None:
    """Threat: a copy of a key folder has the installation's identity but not its present: it
    lacks the keys of reviews created since it was taken, and still holds those destroyed since.
    Every review key is made before its review is committed, so a shared service has them all.

    A review the database holds as live whose key the service has destroyed is not refused: that
    is a database restored from a backup taken before the review's destruction, whose content
    must stay beyond use (and does: its key is gone).
    """
    try:
        missing = [
            code
            for code, state in reviews
            if state != ReviewState.destroyed
            and not keys.has_review_key(code)
            and not keys.is_destroyed(code)
        ]
        kept = [
            code
            for code, state in reviews
            if state == ReviewState.destroyed and keys.has_review_key(code)
        ]
    except StorageError as problem:
        raise KeyServiceRefused(f"The {keys.description} cannot be used: {problem}") from None
    if missing:
        raise KeyServiceRefused(
            f"The {keys.description} holds no key for {len(missing)} review(s) of this database "
            f"(first: {missing[0]}): it is a copy, or another key service, not the one every "
            "node shares. Point PORTAL_KMS at the installation's key service."
        )
    if kept:
        raise KeyServiceRefused(
            f"The {keys.description} still holds the key of {len(kept)} destroyed review(s) "
            f"(first: {kept[0]}): it is a copy taken before their destruction. Point PORTAL_KMS "
            "at the installation's key service, and destroy this copy."
        )


def join_or_create(keys: KeyService, engine: Engine, *, now: datetime) -> Iterator[str]:
    """``portal init``'s key step: make the installation's keys only where none exist anywhere.

    A new node whose key service is empty, or holds another installation, joining a database that
    already has one is refused (``KeyServiceRefused``): it never creates a second set of keys.
    """
    with Session(engine) as db:
        record = db.get(InstallationRecord, 1)
        if record is not None:
            found = _compare(keys, record)
            yield f"joined {found.describe()}, whose keys the {keys.description} holds"
            return
        found_or_none = keys.installation()
        if found_or_none is None:
            try:
                found = keys.create_installation()
                yield f"created the installation's keys in the {keys.description}"
            except KeyInUse:  # another `portal init` created them a moment ago
                found = _required(keys.installation(), keys)
        else:
            found = found_or_none
        db.add(
            InstallationRecord(
                installation_id=found.id,
                signing_key_fingerprint=found.signing_key_fingerprint,
                secret_check=secret_check(keys),
                key_service=_where(keys),
                created_at=now.astimezone(UTC),
            )
        )
        db.commit()
        yield f"recorded {found.describe()} in the database"


def _compare(keys: KeyService, record: InstallationRecord) -> Installation:
    expected = f"installation {record.installation_id} (keys first kept in {record.key_service})"
    try:
        found = keys.installation()
        if found is None:
            raise KeyServiceRefused(
                f"The {keys.description} holds no keys, but this database belongs to {expected}. "
                "Point PORTAL_KMS at the key service every node of this installation shares; "
                "a node never makes keys of its own."
            )
        if found.id != record.installation_id:
            raise KeyServiceRefused(
                f"The {keys.description} holds the keys of installation {found.id}, but this "
                f"database belongs to {expected}. Point PORTAL_KMS at that installation's key "
                "service, or PORTAL_DATABASE_URL at this one's database."
            )
        if found.signing_key_fingerprint != record.signing_key_fingerprint:
            raise KeyServiceRefused(
                f"The {keys.description} has another signing key "
                f"({found.signing_key_fingerprint[:16]}…) than {expected} "
                f"({record.signing_key_fingerprint[:16]}…)."
            )
        if secret_check(keys) != record.secret_check:
            raise KeyServiceRefused(
                f"The {keys.description} derives other secrets than {expected}: sign-in secrets "
                "and form tokens would not open. Restore that installation's key service."
            )
    except StorageError as problem:
        raise KeyServiceRefused(f"The {keys.description} cannot be used: {problem}") from None
    return found


def _required(found: Installation | None, keys: KeyService) -> Installation:
    if found is None:
        raise KeyServiceRefused(f"The {keys.description} lost its keys while `portal init` ran.")
    return found


def _where(keys: KeyService) -> str:
    return keys.description[:300]


def checked_keys(settings: Settings) -> KeyService:
    """The key service, once it is shown to hold this database's installation keys."""
    keys = open_keys(settings)
    engine = make_engine(settings.database_url)
    try:
        check_installation(keys, engine)
    finally:
        engine.dispose()
    return keys
