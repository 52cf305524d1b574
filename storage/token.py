"""One logged-in session per PKCS#11 token and process, for ``storage.pkcs11``.

PKCS#11 allows one ``C_Initialize`` per process and one login state per token, so the library and
the logged-in session are kept per (module, token) for the life of the process, and each operation
holds the session's lock (a session must not be used by two threads at once).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pkcs11

from .errors import StorageUnavailable

if TYPE_CHECKING:
    from .address import KeyServiceAddress

_sessions: dict[tuple[str, str], tuple[Any, threading.RLock]] = {}
_sessions_lock = threading.Lock()
_libraries: dict[str, Any] = {}


@contextmanager
def token_session(address: KeyServiceAddress, description: str) -> Iterator[Any]:
    """The process's logged-in session to the token, held under its lock for one operation."""
    key = (address.module_path, address.token)
    with _sessions_lock:
        entry = _sessions.get(key)
        if entry is None:
            entry = (_open(address, description), threading.RLock())
            _sessions[key] = entry
    session, lock = entry
    with lock:
        try:
            yield session
        except (pkcs11.exceptions.SessionClosed, pkcs11.exceptions.SessionHandleInvalid):
            with _sessions_lock:
                _sessions.pop(key, None)
            raise StorageUnavailable(f"The {description} closed the session; try again.") from None


def _open(address: KeyServiceAddress, description: str) -> Any:
    pin = address.pin_value
    if address.pin_source:
        try:
            pin = Path(address.pin_source).read_text().strip()
        except OSError as exc:
            raise StorageUnavailable(
                f"The PIN file {address.pin_source} of the {description} cannot be "
                f"read: {exc.strerror}"
            ) from None
    if not os.path.exists(address.module_path):
        raise StorageUnavailable(f"There is no PKCS#11 module at {address.module_path}.")
    try:
        library = _libraries.get(address.module_path)
        if library is None:
            library = _libraries[address.module_path] = pkcs11.lib(address.module_path)
        try:
            token = library.get_token(token_label=address.token)
        except pkcs11.exceptions.NoSuchToken:
            # Tokens are listed when the library initialises: one added since (inserted,
            # or initialised by another program) appears only after initialising again,
            # which closes every session of this process (the caller holds the lock; in
            # production there is one token, so none is open yet).
            _sessions.clear()
            library.reinitialize()
            token = library.get_token(token_label=address.token)
    except pkcs11.exceptions.NoSuchToken:
        raise StorageUnavailable(f"The {description} is not present.") from None
    except pkcs11.PKCS11Error as exc:
        raise StorageUnavailable(
            f"The {description} cannot be used: {type(exc).__name__}"
        ) from None
    try:
        return token.open(rw=True, user_pin=pin or None)
    except pkcs11.exceptions.UserAlreadyLoggedIn:  # a session of ours was dropped, not logout
        return token.open(rw=True)
    except pkcs11.exceptions.PinIncorrect:
        raise StorageUnavailable(f"The PIN of the {description} is wrong.") from None
    except pkcs11.PKCS11Error as exc:
        raise StorageUnavailable(
            f"The {description} refused the session: {type(exc).__name__}"
        ) from None
