"""How the portal writes to the audit log: inside the caller's transaction, with who and from where.

The action and its event commit together: ``record`` appends to the same database transaction as the
change it describes, so a rolled-back action leaves no event and an event never claims an action that
did not happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from audit import (
    Action,
    Actor,
    AuditEvent,
    AuditLog,
    Outcome,
    Target,
    TargetKind,
    load_or_create_signing_key,
)

SIGNING_KEY_FILE = "audit-signing.pem"

__all__ = ["Action", "Actor", "Auditor", "Origin", "Outcome", "Target", "TargetKind"]


@dataclass(frozen=True)
class Origin:
    """Where a request came from: client address and the request id (also in the server log)."""

    client_address: str | None = None
    request_id: str | None = None


class Auditor:
    """The portal's handle on the audit log (one per process, built by create_app or the CLI)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    @classmethod
    def from_key_dir(cls, key_dir: Path) -> Auditor:
        return cls(AuditLog(load_or_create_signing_key(key_dir / SIGNING_KEY_FILE)))

    def record(
        self,
        db: Session,
        action: Action,
        *,
        actor: Actor,
        now: datetime,
        origin: Origin | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        target: Target | None = None,
        review: str | None = None,
        document: str | None = None,
        details: Mapping[str, int | bool | str] | None = None,
    ) -> None:
        origin = origin or Origin()
        event = AuditEvent(
            action=action,
            actor=actor,
            outcome=outcome,
            target=target,
            review=review,
            document=document,
            client=origin.client_address,
            request_id=origin.request_id,
            details=dict(details or {}),
        )
        self.log.append(db.connection(), event, now=now)
