"""The key store: master key-encryption keys and the review keys they wrap, in a private folder.

::

    FOLDER/                        0700, outside the database: its backups never hold these keys
      lock                         serialises changes between processes (flock)
      master/<id>.key              0600, 32 random bytes: a master key-encryption key
      master/primary               the id of the master key that wraps new review keys
      reviews/<h>.json             0600, one review's key versions, each wrapped by a master key
      destroyed/<h>                tombstone of a destroyed review key (no key material)

``<h>`` is a hash of the review code, so a code never becomes a path. Each wrapped review key is
AES-256-GCM under a master key with associated data naming the master key, the key version and the
review code: a wrapped key copied to another review, or relabelled, does not open.

A cloud KMS can later stand in for the master keys behind the same methods.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import crypto
from .errors import InvalidInput, KeyDestroyed, KeyInUse, KeyNotFound, StorageUnavailable
from .files import TEMP_PREFIX, erase, is_private, make_private_folder, write_atomically

_FORMAT = 1


@dataclass(frozen=True)
class KeyStatus:
    """What ``portal keys status`` shows: ids and counts, never key material."""

    master_key_ids: tuple[str, ...]
    primary_master_key_id: str
    reviews: int  # reviews with a live key
    destroyed_reviews: int
    review_keys_by_master: dict[str, int]  # wrapped review key versions per master key id


def check_review_code(review: str) -> str:
    if not isinstance(review, str) or not 0 < len(review) <= 200 or "\x00" in review:
        raise InvalidInput(f"review code {review!r} must be 1..200 characters, without NUL")
    return review


class KeyStore:
    """Master keys and review keys in ``folder``; see the module docstring for the layout."""

    def __init__(
        self, folder: Path, *, random_bytes: crypto.RandomBytes = secrets.token_bytes
    ) -> None:
        self.folder = Path(folder).absolute()
        self._random = random_bytes
        self._master = self.folder / "master"
        self._reviews = self.folder / "reviews"
        self._destroyed = self.folder / "destroyed"

    def __repr__(self) -> str:
        return f"KeyStore({str(self.folder)!r})"

    # -- set-up and health ---------------------------------------------------------------------

    def create(self) -> str:
        """Create the folders (0700) and a first master key if there is none. Idempotent.

        Returns the primary master key id.
        """
        make_private_folder(self.folder)
        for folder in (self._master, self._reviews, self._destroyed):
            make_private_folder(folder)
        with self.locked():
            for folder in (self._master, self._reviews):
                for leftover in folder.glob(TEMP_PREFIX + "*"):  # from a process that died
                    erase(leftover)
            if not self._master_ids():
                self._add_master_key()
            return self.primary_master_key_id()

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the key store is present, private and usable."""
        if not self.folder.is_dir():
            raise StorageUnavailable(
                f"The key store {self.folder} does not exist. Run `portal init` to create it."
            )
        for folder in (self.folder, self._master, self._reviews, self._destroyed):
            if not folder.is_dir() or not is_private(folder):
                raise StorageUnavailable(
                    f"The key store folder {folder} is missing or open to other users. "
                    "It must be owned by the portal's user with mode 0700; run `portal init`."
                )
        self._master_key(self.primary_master_key_id())

    # -- master keys ---------------------------------------------------------------------------

    def master_key_ids(self) -> list[str]:
        return sorted(self._master_ids())

    def primary_master_key_id(self) -> str:
        try:
            key_id = (self._master / "primary").read_text().strip()
        except FileNotFoundError:
            raise KeyNotFound("no primary master key; run `portal init`") from None
        except OSError as exc:
            raise StorageUnavailable(f"The key store {self.folder} is unreadable: {exc}") from None
        if key_id not in self._master_ids():
            raise KeyNotFound(f"the primary master key {key_id!r} is missing")
        return key_id

    def add_master_key(self) -> str:
        """Generate a master key and make it primary; review keys are not re-wrapped yet."""
        with self.locked():
            return self._add_master_key()

    def rotate_master_key(self) -> str:
        """A new primary master key, and every review key re-wrapped under it. Returns its id.

        Old master keys stay until ``remove_master_key``; rerunning ``rewrap_review_keys`` finishes
        a rotation interrupted by a crash.
        """
        with self.locked():
            key_id = self._add_master_key()
            self._rewrap_all()
            return key_id

    def rewrap_review_keys(self) -> int:
        """Re-wrap every review key version not under the primary master key; returns how many."""
        with self.locked():
            return self._rewrap_all()

    def remove_master_key(self, key_id: str) -> None:
        """Erase a master key no review key depends on (raises ``KeyInUse`` otherwise)."""
        with self.locked():
            if key_id not in self._master_ids():
                return
            if key_id == self.primary_master_key_id():
                raise KeyInUse(f"master key {key_id} is the primary one; rotate first")
            users = self._wrapped_counts().get(key_id, 0)
            if users:
                raise KeyInUse(f"master key {key_id} still wraps {users} review key(s)")
            erase(self._master / f"{key_id}.key")

    # -- review keys ---------------------------------------------------------------------------

    def create_review_key(self, review: str) -> None:
        """Give ``review`` a random key wrapped by the primary master key. Idempotent.

        Raises ``KeyDestroyed`` if the review's key was destroyed: a code is never reused.
        """
        check_review_code(review)
        with self.locked():
            self._refuse_destroyed(review)
            if not self._review_path(review).exists():
                self._write_review(review, {"review": review, "primary": "", "versions": {}})
                self._add_version(review)

    def review_key(self, review: str, version: str | None = None) -> tuple[str, bytes]:
        """The review's key (the primary version unless ``version``): ``(version id, key)``."""
        record = self._read_review(review)
        version = version or record["primary"]
        entry = record["versions"].get(version)
        if entry is None:
            raise KeyNotFound(f"review {review!r} has no key version {version!r}")
        wrapped = base64.b64decode(entry["wrapped"])
        master = self._master_key(entry["master"])
        return version, crypto.open_sealed(
            master, wrapped, _review_ad(entry["master"], version, review)
        )

    def primary_version(self, review: str) -> str:
        """The id of the review key version that wraps new document keys."""
        return str(self._read_review(review)["primary"])

    def wrap(self, review: str, version: str, plaintext: bytes, associated_data: bytes) -> bytes:
        """Seal ``plaintext`` (a document's data key) under one of the review's key versions."""
        _, key = self.review_key(review, version)
        return crypto.seal(key, plaintext, associated_data, random_bytes=self._random)

    def unwrap(self, review: str, version: str, wrapped: bytes, associated_data: bytes) -> bytes:
        """Inverse of ``wrap``; ``IntegrityError`` for anything altered or misplaced."""
        _, key = self.review_key(review, version)
        return crypto.open_sealed(key, wrapped, associated_data)

    def add_review_key_version(self, review: str) -> str:
        """A new random key version for ``review``, made primary; older versions remain."""
        with self.locked():
            return self._add_version(review)

    def remove_review_key_versions(self, review: str, *, keep: Collection[str]) -> int:
        """Erase every key version of ``review`` except the primary one and those in ``keep``."""
        with self.locked():
            record = self._read_review(review)
            keep = {*keep, record["primary"]}
            old = [v for v in record["versions"] if v not in keep]
            for version in old:
                del record["versions"][version]
            if old:
                self._write_review(review, record)
            return len(old)

    def has_review_key(self, review: str) -> bool:
        """True if ``review`` has a live (not destroyed) key."""
        return not self.is_destroyed(review) and self._review_path(review).exists()

    def key_reference(self, review: str) -> str:
        return f"reviews/{_review_name(check_review_code(review))}.json"

    def review_key_versions(self, review: str) -> list[str]:
        return sorted(self._read_review(review)["versions"])

    def destroy_review_key(self, review: str) -> None:
        """Crypto-shred ``review``: its key is erased and a tombstone left. Idempotent."""
        check_review_code(review)
        with self.locked():
            # Tombstone first: a crash between the two steps still leaves the key refused.
            write_atomically(self._destroyed / _review_name(review), b"")
            erase(self._review_path(review))

    def is_destroyed(self, review: str) -> bool:
        return (self._destroyed / _review_name(check_review_code(review))).exists()

    def status(self) -> KeyStatus:
        counts = self._wrapped_counts()
        return KeyStatus(
            master_key_ids=tuple(self.master_key_ids()),
            primary_master_key_id=self.primary_master_key_id(),
            reviews=sum(1 for _ in self._review_files()),
            destroyed_reviews=sum(1 for p in self._destroyed.iterdir() if len(p.name) == 32),
            review_keys_by_master={k: counts.get(k, 0) for k in self.master_key_ids()},
        )

    # -- private -------------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the key folder's lock (between processes); not re-entrant."""
        try:
            fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StorageUnavailable(
                f"The key store {self.folder} cannot be used ({exc.strerror}); run `portal init`."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _master_ids(self) -> set[str]:
        try:
            return {p.stem for p in self._master.glob("*.key") if len(p.stem) == 16}
        except OSError:
            return set()

    def _add_master_key(self) -> str:
        key_id = self._random(8).hex()
        write_atomically(self._master / f"{key_id}.key", self._random(crypto.KEY_SIZE))
        write_atomically(self._master / "primary", key_id.encode())
        return key_id

    def _master_key(self, key_id: str) -> bytes:
        path = self._master / f"{key_id}.key"
        try:
            # Threat: a key file others can read is a leaked key; refuse to use it at all.
            if not is_private(path):
                raise StorageUnavailable(
                    f"The master key file {path} is open to other users; chmod 600 it and rotate."
                )
            key = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"master key {key_id} is missing") from None
        if len(key) != crypto.KEY_SIZE:
            raise StorageUnavailable(f"The master key file {path} is damaged.")
        return key

    def _add_version(self, review: str) -> str:
        record = self._read_review(review)
        version = self._random(8).hex()
        record["versions"][version] = self._wrap(review, version, self._random(crypto.KEY_SIZE))
        record["primary"] = version
        self._write_review(review, record)
        return version

    def _wrap(self, review: str, version: str, key: bytes) -> dict[str, str]:
        master_id = self.primary_master_key_id()
        wrapped = crypto.seal(
            self._master_key(master_id),
            key,
            _review_ad(master_id, version, review),
            random_bytes=self._random,
        )
        return {"master": master_id, "wrapped": base64.b64encode(wrapped).decode()}

    def _rewrap_all(self) -> int:
        primary = self.primary_master_key_id()
        count = 0
        for path in self._review_files():
            record = _load(path)
            review = record["review"]
            changed = False
            for version, entry in record["versions"].items():
                if entry["master"] != primary:
                    _, key = self.review_key(review, version)
                    record["versions"][version] = self._wrap(review, version, key)
                    changed = True
                    count += 1
            if changed:
                self._write_review(review, record)
        return count

    def _wrapped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in self._review_files():
            for entry in _load(path)["versions"].values():
                counts[entry["master"]] = counts.get(entry["master"], 0) + 1
        return counts

    def _review_files(self) -> Iterator[Path]:
        return (p for p in self._reviews.glob("*.json") if not p.name.startswith(TEMP_PREFIX))

    def _review_path(self, review: str) -> Path:
        return self._reviews / f"{_review_name(review)}.json"

    def _refuse_destroyed(self, review: str) -> None:
        if self.is_destroyed(review):
            raise KeyDestroyed(f"the key of review {review!r} was destroyed")

    def _read_review(self, review: str) -> dict[str, Any]:
        check_review_code(review)
        self._refuse_destroyed(review)
        try:
            record = _load(self._review_path(review))
        except FileNotFoundError:
            raise KeyNotFound(f"review {review!r} has no key") from None
        if record.get("review") != review:
            raise StorageUnavailable(f"The key store entry for review {review!r} is damaged.")
        return record

    def _write_review(self, review: str, record: dict[str, Any]) -> None:
        record = {"format": _FORMAT, **record}
        write_atomically(self._review_path(review), json.dumps(record, sort_keys=True).encode())


def _review_name(review: str) -> str:
    return hashlib.sha256(b"review:" + review.encode("utf-8")).hexdigest()[:32]


def _review_ad(master_id: str, version: str, review: str) -> bytes:
    return b"\x00".join(
        [b"dxp review key v1", master_id.encode(), version.encode(), review.encode()]
    )


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data
