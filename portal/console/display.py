"""Events as a DPO reads them: actions in plain words, actors resolved to email, role and
organisation, times in UTC. Resolution happens here, at display time: the log itself holds ids only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from audit import AuditRecord, Outcome
from portal.accounts.models import User
from portal.audit_vocabulary import Action
from portal.console.anomalies import Anomaly
from portal.models import Organisation

ACTION_WORDS: dict[Action, str] = {
    Action.SIGN_IN: "Signed in",
    Action.SIGN_IN_FAILED: "Sign-in refused (password step)",
    Action.MFA_FAILED: "Sign-in refused (security code step)",
    Action.MFA_ENROLLED: "Set up an authenticator app",
    Action.RECOVERY_CODE_USED: "Used a recovery code",
    Action.LOCKED_OUT: "Locked out after repeated failures",
    Action.SIGN_OUT: "Signed out",
    Action.SESSION_REVOKED: "Session ended by the portal",
    Action.ACCESS_DENIED: "Access refused",
    Action.TOKEN_CREATED: "Created an API token",
    Action.TOKEN_REVOKED: "Revoked an API token",
    Action.DOCUMENT_UPLOADED: "Uploaded a document",
    Action.DOCUMENT_SCANNED: "Virus check of a document",
    Action.DOCUMENT_REJECTED: "Document rejected",
    Action.DOCUMENT_METADATA_VIEWED: "Viewed a document's details",
    Action.DOCUMENT_DOWNLOADED: "Downloaded a document",
    Action.DOCUMENT_WITHDRAWN: "Withdrew a document",
    Action.DOCUMENT_DESTROYED: "Document destroyed",
    Action.HOLD_PLACED: "Placed or requested a hold",
    Action.HOLD_LIFTED: "Lifted a hold",
    Action.DESTRUCTION_REQUESTED: "Early destruction requested",
    Action.DESTRUCTION_APPROVED: "Early destruction approved",
    Action.DESTRUCTION_RUN: "Destruction run",
    Action.CERTIFICATE_ISSUED: "Destruction certificate issued",
    Action.CERTIFICATE_EXPORTED: "Destruction certificate exported",
    Action.KEY_CREATED: "Key created",
    Action.KEY_ROTATED: "Key rotated",
    Action.KEY_DESTROYED: "Key destroyed",
    Action.USER_CREATED: "User added",
    Action.USER_UPDATED: "User changed",
    Action.USER_DISABLED: "User disabled",
    Action.USER_ENABLED: "User enabled",
    Action.ORGANISATION_CREATED: "Organisation added",
    Action.ORGANISATION_UPDATED: "Organisation changed",
    Action.REVIEW_CREATED: "Review created",
    Action.REVIEW_UPDATED: "Review changed",
    Action.REVIEW_OPENED: "Review opened",
    Action.REVIEW_CLOSED: "Review closed",
    Action.REVIEW_DESTROYED: "Review destroyed",
    Action.REVIEW_MEMBER_ADDED: "Added to a review team",
    Action.REVIEW_MEMBER_REMOVED: "Removed from a review team",
    Action.REVIEW_ORGANISATION_ADDED: "Organisation added to a review",
    Action.REVIEW_ORGANISATION_REMOVED: "Organisation removed from a review",
    Action.REQUEST_CREATED: "Request for records made",
    Action.REQUEST_UPDATED: "Request for records changed",
    Action.CASE_CREATED: "Case reference created",
    Action.AUDIT_SEARCHED: "Searched the audit log",
    Action.AUDIT_EXPORTED: "Exported the audit log",
    Action.AUDIT_VERIFIED: "Verified the audit log",
    Action.AUDIT_DISPOSED: "Disposed of audit events past their retention period",
    Action.AUDIT_PUBLIC_KEY_EXPORTED: "Exported the audit public key",
}

OUTCOME_WORDS = {
    Outcome.SUCCESS: "Success",
    Outcome.FAILURE: "Failed",
    Outcome.DENIED: "Refused",
}

RULE_WORDS = {
    "bulk_downloads": "Many downloads within an hour",
    "bulk_documents": "Many different documents downloaded within an hour",
    "out_of_hours": "Access outside working hours",
    "failed_sign_ins": "Repeated failed sign-ins",
    "refusals": "Many refused requests within an hour",
    "witness_mismatch": "The audit log disagrees with its witness",
    "unsigned_tail": "Audit events left unsigned too long",
}


def action_words(action: str) -> str:
    try:
        return ACTION_WORDS[Action(action)]
    except (ValueError, KeyError):
        return action  # an action from a newer version: shown as stored


def action_choices() -> list[tuple[str, str]]:
    return sorted(((a.value, ACTION_WORDS.get(a, a.value)) for a in Action), key=lambda c: c[1])


@dataclass(frozen=True)
class Person:
    user_id: int
    email: str
    role: str
    organisation: str | None


def people(db: Session, user_ids: Iterable[int | None]) -> dict[int, Person]:
    """The users behind these ids, with their organisation's name, in two queries."""
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    users = db.exec(select(User).where(col(User.id).in_(wanted))).all()
    org_ids = {u.organisation_id for u in users}
    names = {
        o.id: o.name
        for o in db.exec(select(Organisation).where(col(Organisation.id).in_(org_ids))).all()
    }
    return {
        u.id: Person(u.id, u.email, u.role.value, names.get(u.organisation_id))
        for u in users
        if u.id is not None
    }


def event_row(record: AuditRecord, who: dict[int, Person]) -> dict[str, Any]:
    """One event for a page or the API. Details are on the log's allow-list: facts, never text."""
    person = who.get(record.actor.user_id) if record.actor.user_id is not None else None
    return {
        "seq": record.seq,
        "time": record.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "time_shown": record.at.strftime("%-d %b %Y, %H:%M:%S UTC"),
        "actor": {
            "user_id": record.actor.user_id,
            "email": person.email if person else None,
            "role": record.actor.role,
            "organisation_id": record.actor.organisation_id,
            "organisation": person.organisation if person else None,
        },
        "action": record.action,
        "action_words": action_words(record.action),
        "target": (
            {"kind": str(record.target.kind), "ref": record.target.ref} if record.target else None
        ),
        "review": record.review,
        "document": record.document,
        "outcome": record.outcome,
        "outcome_words": OUTCOME_WORDS.get(Outcome(record.outcome), record.outcome)
        if record.outcome in Outcome._value2member_map_
        else record.outcome,
        "client": record.client,
        "request_id": record.request_id,
        "details": dict(record.details),
    }


def event_rows(db: Session, records: list[AuditRecord]) -> list[dict[str, Any]]:
    who = people(db, (r.actor.user_id for r in records))
    return [event_row(r, who) for r in records]


def anomaly_row(anomaly: Anomaly, who: dict[int, Person]) -> dict[str, Any]:
    person = who.get(anomaly.user_id) if anomaly.user_id is not None else None
    return {
        "rule": anomaly.rule,
        "rule_words": RULE_WORDS[anomaly.rule],
        "started_at": anomaly.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "ended_at": anomaly.ended_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "started_shown": anomaly.started_at.strftime("%-d %b %Y, %H:%M UTC"),
        "ended_shown": anomaly.ended_at.strftime("%-d %b %Y, %H:%M UTC"),
        "count": anomaly.count,
        "user_id": anomaly.user_id,
        "email": person.email if person else None,
        "client": anomaly.client,
        "review": anomaly.review,
        "document": anomaly.document,
        "action": anomaly.action,
        "action_words": action_words(anomaly.action) if anomaly.action else None,
        "first_seq": anomaly.sequences[0] if anomaly.sequences else None,
        "last_seq": anomaly.sequences[-1] if anomaly.sequences else None,
    }


def anomaly_rows(db: Session, found: list[Anomaly]) -> list[dict[str, Any]]:
    who = people(db, (a.user_id for a in found))
    return [anomaly_row(a, who) for a in found]
