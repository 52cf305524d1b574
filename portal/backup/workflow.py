"""``make_backup`` and ``restore_backup``: plain Python, called by ``portal backup | restore``.

A backup is written into a new (or empty) folder: the database first, then every blob, then the
signed manifest last, so that a folder without a manifest is a backup that did not finish (and
one that fails is removed). The database comes first so that every blob it refers to is still
there when the blobs are copied; a blob deleted in between (a withdrawal, a destruction) was
deleted on purpose, and a blob written in between is one the database does not know (the worker's
sweep removes it after a restore).

A restore goes into a fresh installation that uses the same key service: it refuses a database
or a blob store that holds anything, checks the manifest's signature and every file's SHA-256
before it loads a byte, loads the database, brings the schema up to date as ``portal init`` does,
then loads the blobs.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, select

from audit import SigningKey, SigningKeyError
from portal import __version__
from portal.blobs import open_blob_store, open_keys
from portal.db import describe_database, make_engine
from portal.exchange.models import Document, Review, ReviewState
from portal.migrate import MIGRATIONS
from portal.settings import Settings
from portal.setup import initialise
from storage import BlobNotFound, BlobStore, KeyNotFound, StorageError

from .database import (
    AuditHead,
    database_contents,
    database_kind,
    dump_database,
    load_database,
    read_audit_head,
)
from .errors import BackupFailed, BackupInvalid, BackupRefused
from .files import (
    hash_file,
    make_private_folder,
    read_chunks,
    sync_folder,
    write_private_file,
)
from .manifest import (
    BLOBS,
    FileEntry,
    Manifest,
    blob_id_of,
    blob_path,
    read_manifest,
    write_manifest,
)

Report = Callable[[str], None]
_PROGRESS_EVERY = 1000


def _quiet(_line: str) -> None:
    pass


# -- backup ------------------------------------------------------------------------------------


def make_backup(
    settings: Settings, folder: Path, *, now: datetime, report: Report = _quiet
) -> Manifest:
    """Back up the database and every blob into ``folder``, which must be new or empty."""
    key = _signing_key(settings, purpose="sign the backup's manifest")
    store = open_blob_store(settings)
    try:
        store.check()
    except StorageError as exc:
        raise BackupFailed(f"The blob store cannot be used: {exc}") from None
    created = _prepare_folder(folder)
    try:
        copy = dump_database(settings.database_url, folder)
        if copy.revision is None:
            raise BackupRefused(
                f"The database {describe_database(settings.database_url)} has no schema: "
                "there is nothing to back up. Check PORTAL_DATABASE_URL."
            )
        report(
            f"database: {copy.kind}, {copy.written.size} bytes, schema {copy.revision}, "
            f"audit log head {copy.audit_head.seq}"
        )
        blobs = _copy_blobs(store, folder / BLOBS, report)
        manifest = Manifest(
            created_at=now,
            portal_version=__version__,
            schema_revision=copy.revision,
            database_kind=copy.kind,
            database_made_with=copy.made_with,
            database=FileEntry(copy.file_name, copy.written.size, copy.written.sha256),
            blob_source=str(settings.storage),
            blobs=blobs,
            audit_head=copy.audit_head,
            signing_key_fingerprint=key.fingerprint,
        )
        write_manifest(folder, manifest, key)
        sync_folder(folder / BLOBS)
        sync_folder(folder)
    except OSError as exc:
        _discard(folder, created)
        raise BackupFailed(
            f"The backup could not be written to {folder}: {exc.strerror}."
        ) from None
    except BaseException:
        _discard(folder, created)
        raise
    report(f"backup written to {folder}: the database and {len(blobs)} blob(s), no key material")
    return manifest


def _prepare_folder(folder: Path) -> bool:
    """Make ``folder`` (0700) or check that it is empty; True when it was made now."""
    if folder.is_symlink():
        raise BackupRefused(f"{folder} is a symbolic link: give the folder itself.")
    if folder.exists():
        if not folder.is_dir():
            raise BackupRefused(f"{folder} is not a folder: give a new or an empty folder.")
        if any(folder.iterdir()):
            raise BackupRefused(
                f"{folder} is not empty: a backup goes into a new or an empty folder, so that "
                "no file of another backup is mixed with it."
            )
        make_private_folder(folder)
        return False
    make_private_folder(folder)
    return True


def _discard(folder: Path, created: bool) -> None:
    """Remove what a failed backup wrote (the folder was empty, or new, when it began)."""
    with contextlib.suppress(OSError):
        if created:
            shutil.rmtree(folder)
            return
        for path in folder.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _copy_blobs(store: BlobStore, target: Path, report: Report) -> tuple[FileEntry, ...]:
    make_private_folder(target)
    entries: list[FileEntry] = []
    gone = 0
    try:
        for info in store.list_blobs():
            try:
                chunks = store.get(info.blob_id)
            except BlobNotFound:
                gone += 1  # deleted since it was listed (destroyed, withdrawn): not to be kept
                continue
            written = write_private_file(target / info.blob_id, chunks)
            entries.append(FileEntry(blob_path(info.blob_id), written.size, written.sha256))
            if len(entries) % _PROGRESS_EVERY == 0:
                report(f"blobs: {len(entries)} copied")
    except StorageError as exc:
        raise BackupFailed(f"The blob store failed while its blobs were copied: {exc}") from None
    total = sum(entry.size for entry in entries)
    report(f"blobs: {len(entries)} copied ({total} bytes)")
    if gone:
        report(f"blobs: {gone} deleted while the backup ran, so not kept")
    return tuple(sorted(entries, key=lambda entry: entry.path))


# -- restore -----------------------------------------------------------------------------------


def restore_backup(settings: Settings, folder: Path, *, report: Report = _quiet) -> Manifest:
    """Restore the backup in ``folder`` into this (fresh) installation; see the module's doc."""
    if not folder.is_dir():
        raise BackupRefused(f"There is no backup folder {folder}.")
    key = _signing_key(settings, purpose="check the backup's signature")
    manifest = read_manifest(folder, key.public_key)
    _check_revision(manifest.schema_revision)
    _refuse_anything_there(settings, manifest)
    _check_key_service(settings)
    _verify_files(folder, manifest)
    report(f"backup of {manifest.created_at.isoformat()}: signature and every file's SHA-256 match")

    load_database(settings.database_url, manifest.database_kind, folder / manifest.database.path)
    head = _restored_head(settings)
    if head != manifest.audit_head:
        raise BackupFailed(
            f"The restored database's audit log ends at {head.seq}, the manifest says "
            f"{manifest.audit_head.seq}: empty the database and run the restore again."
        )
    report(f"database restored: schema {manifest.schema_revision}, audit log head {head.seq}")
    for line in initialise(settings):
        report(line)
    _load_blobs(settings, folder, manifest, report)
    for line in _reviews_without_keys(settings):
        report(line)
    report(
        f"restored the database and {len(manifest.blobs)} blob(s); events after "
        f"{manifest.created_at.isoformat()} are not in this installation's audit log. "
        "Now run `portal audit verify`, then `portal check`."
    )
    return manifest


def _refuse_anything_there(settings: Settings, manifest: Manifest) -> None:
    """A restore never merges into, or overwrites, an installation that holds anything."""
    where = describe_database(settings.database_url)
    if manifest.database_kind != database_kind(settings.database_url):
        raise BackupRefused(
            f"This backup holds a {manifest.database_kind} database, but PORTAL_DATABASE_URL "
            f"({where}) is {database_kind(settings.database_url)}: restore it into a new, empty "
            f"{manifest.database_kind} database."
        )
    tables = database_contents(settings.database_url)
    if tables:
        raise BackupRefused(
            f"The database {where} is not empty ({len(tables)} table(s), such as {tables[0]}): a "
            "restore goes into a new, empty database. Create one and point PORTAL_DATABASE_URL "
            "at it. Nothing was changed."
        )
    if settings.storage.kind == "file":
        assert settings.storage.path is not None
        if not settings.storage.path.exists():
            return  # `portal init` creates it, after the database is in
    store = open_blob_store(settings)
    try:
        store.check()
        holds_blobs = next(iter(store.list_blobs()), None) is not None
    except StorageError as exc:
        raise BackupFailed(f"The blob store {settings.storage} cannot be used: {exc}") from None
    if holds_blobs:
        raise BackupRefused(
            f"The blob store {settings.storage} is not empty: a restore goes into a new, empty "
            "bucket, prefix or folder (PORTAL_STORAGE). Nothing was changed."
        )


def _check_revision(revision: str | None) -> None:
    try:
        known = revision is not None and ScriptDirectory(str(MIGRATIONS)).get_revision(revision)
    except CommandError:
        known = False
    if not known:
        raise BackupRefused(
            f"This backup's schema revision {revision!r} is not one this version of the portal "
            "knows: restore it with the version of the portal that made it (the manifest names "
            "it), then upgrade."
        )


def _check_key_service(settings: Settings) -> None:
    keys = open_keys(settings)
    try:
        keys.check()
    except StorageError as exc:
        raise BackupRefused(
            f"The {keys.description} cannot be used ({exc}). A restore needs the key service "
            "the backup was made with: point PORTAL_KMS (or PORTAL_KEY_DIR) at it."
        ) from None


def _verify_files(folder: Path, manifest: Manifest) -> None:
    for entry in manifest.files:
        path = folder / entry.path
        if path.is_symlink() or not path.is_file():
            raise BackupInvalid(
                f"{entry.path} is missing from the backup in {folder}. Nothing was restored; "
                "use another backup."
            )
        found = hash_file(path)
        if (found.size, found.sha256) != (entry.size, entry.sha256):
            raise BackupInvalid(
                f"{entry.path} does not match the manifest (its SHA-256 differs): the backup was "
                "altered or damaged. Nothing was restored; use another backup."
            )


def _restored_head(settings: Settings) -> AuditHead:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return read_audit_head(connection)
    except SQLAlchemyError:
        raise BackupFailed("The restored database cannot be read: check it and retry.") from None
    finally:
        engine.dispose()


def _load_blobs(settings: Settings, folder: Path, manifest: Manifest, report: Report) -> None:
    store = open_blob_store(settings)
    for done, entry in enumerate(manifest.blobs, start=1):
        try:
            store.put(blob_id_of(entry), read_chunks(folder / entry.path))
        except StorageError as exc:
            raise BackupFailed(
                f"The blob store failed while {entry.path} was restored: {exc} The database is "
                "restored, the blobs only in part: empty both and run the restore again."
            ) from None
        if done % _PROGRESS_EVERY == 0:
            report(f"blobs: {done} of {len(manifest.blobs)} restored")
    report(f"blobs: {len(manifest.blobs)} restored")


def _reviews_without_keys(settings: Settings) -> list[str]:
    """Live reviews of the restored database whose key the key service no longer holds."""
    keys = open_keys(settings)
    engine = make_engine(settings.database_url)
    lines = []
    try:
        with Session(engine) as db:
            reviews = db.exec(
                select(Review)
                .where(col(Review.state) != ReviewState.destroyed)
                .order_by(col(Review.code))
            ).all()
            for review in reviews:
                documents = db.exec(
                    select(func.count())
                    .select_from(Document)
                    .where(Document.review_id == review.id, col(Document.wrapped_key).is_not(None))
                ).one()
                if keys.is_destroyed(review.code):
                    lines.append(
                        f"review {review.code}: its key was destroyed in the key service, so its "
                        f"{documents} document(s) here are beyond use (they answer 410 destroyed)"
                    )
                elif not keys.has_review_key(review.code):
                    lines.append(
                        f"WARNING: review {review.code}: the key service holds no key for it; "
                        "check that PORTAL_KEY_DIR is the key service the backup was made with"
                    )
    finally:
        engine.dispose()
    return lines


def _signing_key(settings: Settings, *, purpose: str) -> SigningKey:
    # The key service signs (an HSM keeps the key inside); nothing of a key is ever written out.
    from portal.keys import signing_key

    keys = open_keys(settings)
    try:
        if keys.installation() is None:
            raise KeyNotFound(f"the {keys.description} holds no installation keys")
        return signing_key(keys)
    except (SigningKeyError, StorageError) as exc:
        # Never "run portal init" here: before a restore that would make new keys, with which
        # neither the backup nor the restored audit log verifies.
        raise BackupRefused(
            f"The installation's signing key, needed to {purpose}, cannot be used ({exc}). "
            "Point PORTAL_KMS (or PORTAL_KEY_DIR) at the key service of the installation the "
            "backup belongs to."
        ) from None
