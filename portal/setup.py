"""``portal init``: folders, database schema and keys, created or brought up to date idempotently."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from portal.blobs import open_keys, open_vault
from portal.db import describe_database, make_engine
from portal.health import Check
from portal.keys import join_or_create
from portal.migrate import current_revision, head_revision, migration_lock, upgrade_database
from portal.settings import Settings
from storage.keyservice import FolderKeyService, KeyService


def _private_folder(path: Path) -> bool:
    """Create ``path`` readable by its owner only; True when it was created now."""
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    # Keys and blobs are for the portal's own user: no other local account may list them.
    os.chmod(path, 0o700)
    return created


def initialise(settings: Settings) -> Iterator[str]:
    """Bring the data directory, schema and keys to what this version needs; yield what was done.

    On a new node of an existing installation it joins: the key service must already hold the
    installation's keys (``portal.keys.KeyServiceRefused`` otherwise); no key is ever created
    for a database that has an installation.
    """
    if _private_folder(settings.home):
        yield f"created data directory {settings.home}"
    blob_folder = settings.storage.path if settings.storage.kind == "file" else None
    if blob_folder is not None and _private_folder(blob_folder):
        yield f"created blob folder {blob_folder}"
    keys = open_keys(settings)
    engine = make_engine(settings.database_url)
    try:
        # One `portal init` at a time per database, keys included: two first nodes started at
        # once must not both create an installation's keys.
        with migration_lock(engine) as locked:
            yield from _initialise_locked(settings, keys, engine, locked)
    finally:
        engine.dispose()


def _initialise_locked(
    settings: Settings, keys: KeyService, engine: Engine, locked: Connection
) -> Iterator[str]:
    # The vault seals existing rows' free texts under their review's key (0016_sealed_text).
    before, after = upgrade_database(locked, vault=open_vault(settings, keys))
    where = describe_database(settings.database_url)
    if before == after:
        yield f"database {where} is up to date (schema {after})"
    else:
        yield f"database {where} migrated from {before or 'empty'} to {after}"
    if isinstance(keys, FolderKeyService) and _private_folder(keys.folder):
        yield f"created key folder {keys.folder}"
    yield from join_or_create(keys, engine, now=datetime.now(UTC))
    if isinstance(keys, FolderKeyService):
        had_master_key = bool(keys.review_keys.master_key_ids())
        keys.create()
        if not had_master_key:
            yield f"created the master key in {keys.review_keys.folder}"


def check_schema(engine: Engine) -> Check:
    try:
        current = current_revision(engine)
    except Exception as exc:
        return Check("schema", False, f"cannot read the schema version: {type(exc).__name__}")
    head = head_revision()
    if current != head:
        return Check(
            "schema", False, f"schema is {current or 'empty'}, needs {head}: run portal init"
        )
    return Check("schema", True, head)
