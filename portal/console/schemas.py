"""The console API's shapes (web.schemas): what a DPO reads of the audit log, a document's and a
user's history, verification, anomalies, alerts and subject access.

The rows are built once for the console's pages and the API (``display``, ``history``,
``alerts``, ``subject_access``); the API validates them into these models on the way out, so a
row that grows a key the schema does not describe fails loudly instead of leaking unreviewed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from audit import Outcome
from portal.audit_vocabulary import Action
from portal.schemas import MISSING, Reply, Stamp

AnomalyRule = Literal[
    "bulk_downloads", "bulk_documents", "out_of_hours", "failed_sign_ins", "refusals"
]
AlertRule = AnomalyRule | Literal["witness_mismatch", "unsigned_tail"]


class Actor(Reply):
    user_id: int | None
    email: str | None
    role: str | None
    organisation_id: int | None
    organisation: str | None


class Target(Reply):
    kind: str
    ref: str


class Event(Reply):
    seq: int
    time: Stamp
    actor: Actor
    action: str = Field(description=f"One of the registry's actions, e.g. {Action.SIGN_IN.value}.")
    action_words: str
    target: Target | None
    review: str | None
    document: str | None
    outcome: str = Field(description=", ".join(o.value for o in Outcome) + ".")
    outcome_words: str
    client: str | None
    request_id: str | None
    details: dict[str, Any] = Field(
        description="Facts on the log's allow-list (docs/audit-format.md); never text."
    )


class Events(Reply):
    items: list[Event]
    next: str | None


class UnsignedTail(Reply):
    """Events after the last signed checkpoint (the chain alone protects them), the oldest
    one's age, and whether it is older than twice the checkpoint interval (a finding: nothing is
    signing)."""

    events: int
    age_seconds: int | None
    stale: bool


class Witnessed(Reply):
    """The latest checkpoint the witness outside the database holds, and the receipt line a DPO
    keeps to check a later verification against (`portal audit verify --witness FILE`)."""

    seq: int
    receipt: str


class Break(Reply):
    sequence: int = Field(description="The first broken sequence number.")
    kind: str
    detail: str


class Verification(Reply):
    source: Literal["database", "export"]
    unsigned_tail: UnsignedTail | None = Field(description="Null for an export.")
    ok: bool
    first_seq: int
    last_seq: int
    events: int
    checkpoints: int
    last_checkpoint: int | None
    witnessed: Witnessed | None
    broken: Break | None
    shown: int | MISSING = Field(MISSING, description="An export only: events it shows.")
    hidden: int | MISSING = Field(MISSING, description="An export only: events filtered out.")


class Uploader(Reply):
    user_id: int | None
    email: str | None


class Scan(Reply):
    verdict: str | None
    signature: str | None
    scanned_at: Stamp | None
    attempts: int
    flagged_at: Stamp | None


class HoldMark(Reply):
    id: int
    state: str
    reason: str


class AuditedDocument(Reply):
    """A document's metadata as a DPO sees it: never its file name."""

    reference: str
    review: str | None
    organisation: str | None
    kind: str
    state: str
    case: str | None
    size: int
    sha256: str
    content_type: str
    uploaded_at: Stamp
    uploaded_by: Uploader
    scan: Scan
    withdrawn_at: Stamp | None
    withdraw_reason: str | None
    destroyed_at: Stamp | None
    holds: list[HoldMark]


class DocumentHistory(Reply):
    document: AuditedDocument
    items: list[Event]
    next: str | None


class Account(Reply):
    id: int
    email: str
    role: str
    organisation: str | None
    enrolled_at: Stamp | None
    disabled_at: Stamp | None


class UserHistory(Reply):
    user: Account
    items: list[Event]
    next: str | None


class Anomaly(Reply):
    rule: AnomalyRule
    rule_words: str
    started_at: Stamp
    ended_at: Stamp
    count: int
    user_id: int | None
    email: str | None
    client: str | None
    review: str | None
    document: str | None
    action: str | None
    action_words: str | None
    first_seq: int | None
    last_seq: int | None


class Anomalies(Reply):
    items: list[Anomaly]
    next: None


class Alert(Reply):
    id: int
    rule: AlertRule
    rule_words: str
    count: int
    user_id: int | None
    email: str | None
    first_seq: int | None
    last_seq: int | None
    started_at: Stamp
    ended_at: Stamp
    raised_at: Stamp
    mailed_at: Stamp | None
    acknowledged_at: Stamp | None
    acknowledged_by: int | None
    acknowledged_by_email: str | None


class Alerts(Reply):
    items: list[Alert]
    next: None


class CaseHolder(Reply):
    user_id: int | None
    email: str | None


class SubjectCase(Reply):
    reference: str
    review: str | None
    organisation: str | None
    created_at: Stamp
    created_by: CaseHolder


class Access(Reply):
    seq: int
    time: Stamp
    action: str
    action_words: str
    outcome: str
    user_id: int | None
    email: str | None
    role: str | None
    organisation: str | None


class SubjectHold(Reply):
    id: int
    scope: str
    reason: str
    state: str
    requested_at: Stamp | None
    placed_at: Stamp | None
    lifted_at: Stamp | None


class Destruction(Reply):
    run: int
    destroyed_at: Stamp | None
    certificate: str | None


class SubjectDocument(Reply):
    reference: str
    kind: str
    state: str
    size: int
    sha256: str
    uploaded_at: Stamp
    uploaded_by: Uploader
    scanned_at: Stamp | None
    withdrawn_at: Stamp | None
    destroyed_at: Stamp | None
    holds: list[SubjectHold]
    destruction: Destruction | None
    accesses: list[Access] = Field(description="Every event naming the document, oldest first.")
    events: int


class SubjectAccess(Reply):
    """Everything held for one case (CSV with format=csv)."""

    case: SubjectCase
    documents: list[SubjectDocument]
