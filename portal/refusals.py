"""Every refusal is an event: a signed-in caller refused something that exists is audited.

The rule (docs/audit-format.md, "Refusals"): where an authorisation decision refuses an object
that exists, the service that took it records an event with the caller as actor, the object as
target, outcome ``denied`` and a reason code (a word from ``portal.policy.why_not_*`` or the
caller of ``record``), and then raises exactly what it raised before (``NotFound`` for what the
caller may not see), so the response is the same as for an object that does not exist.

The event is **committed** before the refusal is raised: the request fails, and the failure would
otherwise roll the event back with it. Lookups that can refuse come first in a transaction (a
service checks rights before it changes anything), so nothing else is committed with it; the
session stays usable for callers that catch the refusal and go on.

Nothing is recorded for a reference that does not exist: there is no target to name, and anyone
signed in could fill the log with made-up references. Those stay plain 404s, counted by the server's
request log (status and request id), never by reference.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit import Actor, Outcome, Target
from portal.audit_vocabulary import Action
from portal.auditing import Auditor, Origin
from portal.exchange.acting import Acting

logger = logging.getLogger("portal.audit")


def record(
    db: Session,
    acting: Acting,
    action: Action,
    *,
    target: Target,
    reason: str,
    review: str | None = None,
    document: str | None = None,
) -> None:
    """Record ``acting``'s refusal and commit it (nothing when the caller is the operator, or
    when the caller was built without an auditor: reads at the command line record nothing)."""
    if acting.caller is None or acting.refusals is None:
        return
    acting.refusals.record_as(
        db,
        acting,
        action,
        outcome=Outcome.DENIED,
        target=target,
        review=review,
        document=document,
        details={"reason": reason},
    )
    db.commit()


def record_alone(
    engine: Engine,
    auditor: Auditor,
    action: Action,
    *,
    actor: Actor,
    origin: Origin,
    now: datetime,
    reason: str,
    target: Target | None = None,
    details: Mapping[str, int | bool | str] | None = None,
) -> None:
    """A refusal made before any service runs (a CSRF failure at the web boundary), in a short
    transaction of its own. Never raises: the refusal's response must not depend on whether its
    event could be stored (a 500 here would answer differently from the refusal itself)."""
    try:
        with Session(engine) as db:
            auditor.record(
                db,
                action,
                actor=actor,
                now=now,
                origin=origin,
                outcome=Outcome.DENIED,
                target=target,
                details={"reason": reason, **dict(details or {})},
            )
            db.commit()
    except Exception as exc:  # pragma: no cover - the database went away
        logger.warning("a refusal could not be audited (%s)", type(exc).__name__)
