"""What the web app, the worker and the command line share: built once per process, never global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2
from sqlalchemy.engine import Engine

import audit
from portal.accounts.passwords import PasswordHasher
from portal.accounts.secrets import SecretBox
from portal.accounts.sessions import SessionPolicy
from portal.accounts.signin import SignIn
from portal.auditing import SIGNING_KEY_FILE, Auditor
from portal.blobs import open_vault
from portal.db import make_engine
from portal.scanning import Scanner
from portal.settings import Settings
from portal.web import csrf
from portal.web.rendering import make_environment
from storage import Vault

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
    templates: jinja2.Environment
    vault: Vault


def build_runtime(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    password_hasher: PasswordHasher | None = None,
) -> Runtime:
    """Everything the app needs, loaded once. Keys must exist: ``portal init`` creates them."""
    auditor = Auditor(
        audit.AuditLog(audit.load_signing_key(settings.key_dir / SIGNING_KEY_FILE), clock=clock)
    )
    return Runtime(
        settings=settings,
        engine=make_engine(settings.database_url),
        scanner=Scanner(settings.clamd),
        clock=clock,
        auditor=auditor,
        signin=SignIn(
            hasher=password_hasher or PasswordHasher(),
            secret_box=SecretBox.from_key_dir(settings.key_dir),
            auditor=auditor,
        ),
        session_policy=SessionPolicy(),
        csrf_key=csrf.load_key(settings.key_dir),
        templates=make_environment(),
        vault=open_vault(settings),
    )
