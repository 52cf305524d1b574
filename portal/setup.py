"""``portal init``: folders, database schema and keys, created or brought up to date idempotently."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import Engine

from audit import load_or_create_signing_key
from portal.accounts.secrets import ensure_secrets_key
from portal.auditing import SIGNING_KEY_FILE
from portal.blobs import open_key_store
from portal.db import describe_database, make_engine
from portal.health import Check
from portal.migrate import current_revision, head_revision, upgrade_database
from portal.settings import Settings
from portal.web import csrf


def _private_folder(path: Path) -> bool:
    """Create ``path`` readable by its owner only; True when it was created now."""
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    # Keys and blobs are for the portal's own user: no other local account may list them.
    os.chmod(path, 0o700)
    return created


def initialise(settings: Settings) -> Iterator[str]:
    """Bring the data directory, schema and keys to what this version needs; yield what was done."""
    if _private_folder(settings.home):
        yield f"created data directory {settings.home}"
    if _private_folder(settings.key_dir):
        yield f"created key store {settings.key_dir}"
    blob_folder = settings.storage.path if settings.storage.kind == "file" else None
    if blob_folder is not None and _private_folder(blob_folder):
        yield f"created blob folder {blob_folder}"
    yield from _ensure_keys(settings.key_dir)
    key_store = open_key_store(settings)
    had_master_key = key_store.folder.is_dir() and bool(key_store.master_key_ids())
    key_store.create()
    if not had_master_key:
        yield f"created the master key in {key_store.folder}"
    engine = make_engine(settings.database_url)
    try:
        before, after = upgrade_database(engine)
    finally:
        engine.dispose()
    where = describe_database(settings.database_url)
    if before == after:
        yield f"database {where} is up to date (schema {after})"
    else:
        yield f"database {where} migrated from {before or 'empty'} to {after}"


def _ensure_keys(key_dir: Path) -> Iterator[str]:
    signing_key = key_dir / SIGNING_KEY_FILE
    if not signing_key.exists():
        load_or_create_signing_key(signing_key)
        yield f"created audit signing key {signing_key}"
    if ensure_secrets_key(key_dir):
        yield "created the key that seals sign-in secrets"
    if csrf.ensure_key(key_dir):
        yield "created the key that signs form tokens"


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
