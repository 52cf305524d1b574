"""How the portal writes to the audit log: inside the caller's transaction, with who and from where.

The action and its event commit together: ``record`` stores the event in the same database
transaction as the change it describes, so a rolled-back action leaves no event and an event never
claims an action that did not happen.

``AuditLog.record`` chains the event at once when no other request is appending; otherwise (on
PostgreSQL, under concurrency) it stores the event unchained, so that concurrent requests do not
queue behind each other's commits, and the event is chained right after the session commits, in a
short transaction of its own that serves every writer waiting at that moment. If that fails (the
database went away between the two), the event stays stored and the worker chains it on its next
round.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from audit import Actor, AuditEvent, AuditLog, Outcome, Target, load_or_create_signing_key
from portal.audit_vocabulary import VOCABULARY, Action, TargetKind
from storage.keyservice import KeyService

SIGNING_KEY_FILE = "audit-signing.pem"
# Session.info key: the Auditor whose events this session's transaction holds, unchained.
_TO_CHAIN = "portal.audit.to_chain"
# Session.info key: set once the session has the listeners that chain after its commits.
_HOOKED = "portal.audit.hooked"

logger = logging.getLogger("portal.audit")

__all__ = ["Action", "Actor", "Auditor", "Origin", "Outcome", "Target", "TargetKind"]


@dataclass(frozen=True)
class Origin:
    """Where a request came from: client address and the request id (also in the server log)."""

    client_address: str | None = None
    request_id: str | None = None


class Acts(Protocol):
    """Who acts, when and from where: what every event of a service call records
    (``portal.exchange.acting.Acting`` is one)."""

    @property
    def actor(self) -> Actor: ...

    @property
    def now(self) -> datetime: ...

    @property
    def origin(self) -> Origin: ...


class Auditor:
    """The portal's handle on the audit log (one per process, built by create_app or the CLI)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    @classmethod
    def from_key_dir(cls, key_dir: Path) -> Auditor:
        """For tests and tools on a key folder: its keys, created if it holds none."""
        return cls(AuditLog(VOCABULARY, load_or_create_signing_key(key_dir / SIGNING_KEY_FILE)))

    @classmethod
    def from_keys(cls, keys: KeyService) -> Auditor:
        """The portal's own: signed by the key service every node shares."""
        from portal.keys import signing_key

        return cls(AuditLog(VOCABULARY, signing_key(keys)))

    def record_as(
        self,
        db: Session,
        acting: Acts,
        action: Action,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        target: Target | None = None,
        review: str | None = None,
        document: str | None = None,
        details: Mapping[str, int | bool | str] | None = None,
    ) -> None:
        """``record`` with the actor, time and origin of ``acting``, a service call's caller."""
        self.record(
            db,
            action,
            actor=acting.actor,
            now=acting.now,
            origin=acting.origin,
            outcome=outcome,
            target=target,
            review=review,
            document=document,
            details=details,
        )

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
        if db.info.get(_TO_CHAIN) is not None:
            # An earlier event of this transaction is pending: keep the transaction's events in
            # order in the chain.
            self.log.enqueue(db.connection(), event, now=now)
        elif self.log.record(db.connection(), event, now=now):
            db.info[_TO_CHAIN] = self
            _chain_when_committed(db)

    def chain_committed(self, db: OrmSession) -> int:
        """Chain what has been committed; never raise (the worker is the backstop)."""
        try:
            return self.log.chain_committed(db.get_bind())
        except Exception as exc:  # the action has committed: never fail it now
            # No personal data: the exception's type only (a driver message may quote values).
            logger.warning("audit events left for the worker to chain (%s)", type(exc).__name__)
            return 0


def _chain_when_committed(session: OrmSession) -> None:
    """Have ``session`` chain its pending events after its commit (and forget them after a
    rollback): listeners on this session alone, the first time it holds a pending event.

    Not on every ``Session`` of the process: a hook on the class would run for every commit of
    every session (the CLI's, the tests', another library's) and be installed by importing this
    module, whatever the importer meant."""
    if session.info.get(_HOOKED):
        return
    session.info[_HOOKED] = True
    sa_event.listen(session, "after_commit", _chain_after_commit)
    sa_event.listen(session, "after_rollback", _forget_after_rollback)


def _chain_after_commit(session: OrmSession) -> None:
    auditor = session.info.pop(_TO_CHAIN, None)
    if auditor is not None:
        auditor.chain_committed(session)


def _forget_after_rollback(session: OrmSession) -> None:
    session.info.pop(_TO_CHAIN, None)
