"""What the web app, the worker and the command line share: built once per process, never global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

import audit
from portal.accounts.devices import KEY_NAME as DEVICE_KEY
from portal.accounts.devices import DeviceCookies
from portal.accounts.passwords import PasswordHasher
from portal.accounts.sessions import SessionPolicy
from portal.accounts.signin import SignIn
from portal.audit_vocabulary import VOCABULARY
from portal.auditing import Auditor
from portal.blobs import open_keys, open_vault, open_witness
from portal.db import make_engine
from portal.keys import check_installation, csrf_key, secret_box, signing_key
from portal.scanning import Scanner
from portal.settings import Settings
from storage import Vault
from storage.keyservice import KeyService

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Runtime:
    """What a request handler (or the worker) may use."""

    settings: Settings
    engine: Engine
    scanner: Scanner
    clock: Clock
    auditor: Auditor
    signin: SignIn
    session_policy: SessionPolicy
    csrf_key: bytes
    vault: Vault
    keys: KeyService
    witness: audit.Witness  # the audit log's checkpoints, kept outside the database


def build_runtime(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    password_hasher: PasswordHasher | None = None,
) -> Runtime:
    """Everything the app needs, loaded once. Keys must exist: ``portal init`` creates them.

    Raises ``portal.keys.KeyServiceRefused`` unless the key service holds this database's
    installation keys: a node never runs on keys of its own.
    """
    keys = open_keys(settings)
    engine = make_engine(settings.database_url)
    try:
        check_installation(keys, engine)
    except BaseException:
        engine.dispose()
        raise
    auditor = Auditor(audit.AuditLog(VOCABULARY, signing_key(keys), clock=clock))
    return Runtime(
        settings=settings,
        engine=engine,
        scanner=Scanner(settings.clamd),
        clock=clock,
        auditor=auditor,
        signin=SignIn(
            hasher=password_hasher or PasswordHasher(),
            secret_box=secret_box(keys),
            auditor=auditor,
            devices=DeviceCookies(keys.secret(DEVICE_KEY)),
        ),
        session_policy=SessionPolicy(),
        csrf_key=csrf_key(keys),
        vault=open_vault(settings, keys),
        keys=keys,
        witness=open_witness(settings),
    )
