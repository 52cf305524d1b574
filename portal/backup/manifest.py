"""What a backup holds, and the proof that nobody changed it.

``manifest.json`` names every file of the backup with its size and SHA-256, the schema revision,
the audit log's head and the fingerprint of the installation's audit signing key; ``manifest.sig``
is the signature of those exact bytes by that key (Ed25519, over a prefix of its own so that it
can never pass for a checkpoint's or a certificate's signature).

Threat: someone who can write to where backups are kept, but cannot use the key service, alters
a backup (a row that makes them an administrator, a blob swapped for another): the hashes alone
would not stop them, since they could rewrite the manifest too; the signature does. A restore
also refuses a backup signed by another key service's key: its reviews' keys would not be there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit import PublicKey, SignatureInvalid, SigningKey
from storage.backend import is_blob_id

from .database import FILE_NAMES, AuditHead
from .errors import BackupInvalid
from .files import write_private_file

FORMAT = "dxp-portal-backup/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BLOBS = "blobs"
_SIGNED_AS = b"dxp-portal-backup-manifest/1\x00"
NOT_INCLUDED = (
    "the key service (PORTAL_KEY_DIR): master keys, review keys, the audit signing key and the "
    "portal's secrets are never in a portal backup; the key service is backed up by its own policy"
)


@dataclass(frozen=True)
class FileEntry:
    """One file of the backup, by its path inside the backup folder."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: datetime
    portal_version: str
    schema_revision: str | None
    database_kind: str
    database_made_with: str
    database: FileEntry
    blob_source: str
    blobs: tuple[FileEntry, ...]  # path "blobs/<blob id>"
    audit_head: AuditHead
    signing_key_fingerprint: str

    @property
    def files(self) -> list[FileEntry]:
        return [self.database, *self.blobs]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at.isoformat(),
            "portal_version": self.portal_version,
            "schema_revision": self.schema_revision,
            "database": {
                "kind": self.database_kind,
                "made_with": self.database_made_with,
                **_entry_json(self.database),
            },
            "blobs": {
                "source": self.blob_source,
                "count": len(self.blobs),
                "size": sum(blob.size for blob in self.blobs),
                "files": [_entry_json(blob) for blob in self.blobs],
            },
            "audit": {
                "head_seq": self.audit_head.seq,
                "head_hash": self.audit_head.hash,
                "signing_key_fingerprint": self.signing_key_fingerprint,
            },
            "not_included": NOT_INCLUDED,
        }


def blob_path(blob_id: str) -> str:
    return f"{BLOBS}/{blob_id}"


def blob_id_of(entry: FileEntry) -> str:
    return entry.path.removeprefix(BLOBS + "/")


def write_manifest(folder: Path, manifest: Manifest, key: SigningKey) -> None:
    body = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    write_private_file(folder / MANIFEST, [body])
    write_private_file(folder / SIGNATURE, [key.sign(_SIGNED_AS + body).encode() + b"\n"])


def read_manifest(folder: Path, public_key: PublicKey) -> Manifest:
    """The manifest of the backup in ``folder``, once its signature verifies."""
    try:
        body = (folder / MANIFEST).read_bytes()
        signature = (folder / SIGNATURE).read_text(errors="replace").strip()
    except FileNotFoundError as missing:
        raise BackupInvalid(
            f"{folder} is not a complete backup: {Path(str(missing.filename)).name} is missing "
            "(a backup that stopped before it finished has no manifest)."
        ) from None
    except OSError as exc:
        raise BackupInvalid(f"The backup in {folder} cannot be read: {exc.strerror}.") from None
    try:
        public_key.verify(signature, _SIGNED_AS + body)
    except SignatureInvalid:
        claimed = _claimed_fingerprint(body)
        if claimed is not None and claimed != public_key.fingerprint:
            raise BackupInvalid(
                f"This backup was made by an installation whose audit signing key has the "
                f"fingerprint {claimed}; the key service in use holds {public_key.fingerprint}. "
                "Restore with PORTAL_KEY_DIR pointing at the key service the backup was made with."
            ) from None
        raise BackupInvalid(
            f"{folder / MANIFEST} does not match its signature: the backup was altered. "
            "Nothing was restored; use another backup."
        ) from None
    try:
        return _parse(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BackupInvalid(
            f"{folder / MANIFEST} is signed but not in a format this portal reads."
        ) from None


def _entry_json(entry: FileEntry) -> dict[str, Any]:
    return {"file": entry.path, "size": entry.size, "sha256": entry.sha256}


def _claimed_fingerprint(body: bytes) -> str | None:
    try:
        value = json.loads(body)["audit"]["signing_key_fingerprint"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _parse(data: dict[str, Any]) -> Manifest:
    if data["format"] != FORMAT:
        raise ValueError("unknown format")
    database = data["database"]
    kind = _text(database["kind"])
    entry = _entry(database)
    # Threat (even signed): a path from the manifest must never lead outside the backup folder.
    if kind not in FILE_NAMES or entry.path != FILE_NAMES[kind]:
        raise ValueError("unexpected database file")
    blobs = tuple(_entry(item) for item in data["blobs"]["files"])
    for blob in blobs:
        if not blob.path.startswith(BLOBS + "/") or not is_blob_id(blob_id_of(blob)):
            raise ValueError("unexpected blob file")
    audit = data["audit"]
    revision = data["schema_revision"]
    return Manifest(
        created_at=datetime.fromisoformat(_text(data["created_at"])),
        portal_version=_text(data["portal_version"]),
        schema_revision=None if revision is None else _text(revision),
        database_kind=kind,
        database_made_with=_text(database["made_with"]),
        database=entry,
        blob_source=_text(data["blobs"]["source"]),
        blobs=blobs,
        audit_head=AuditHead(_whole(audit["head_seq"]), _text(audit["head_hash"])),
        signing_key_fingerprint=_text(audit["signing_key_fingerprint"]),
    )


def _entry(item: dict[str, Any]) -> FileEntry:
    return FileEntry(
        path=_text(item["file"]), size=_whole(item["size"]), sha256=_text(item["sha256"])
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("not a whole number")
    return value
