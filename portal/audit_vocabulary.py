"""What the portal says in its audit log: the registry of actions and kinds of target, the
shape of review codes and references, and the details keys; ``VOCABULARY`` hands them to the
audit library (``audit.Vocabulary``), which checks every event against them.

To audit something new, add a member here (and, if it needs details, a key to ``DETAIL_KEYS``):
nothing else accepts an action name, so a typo cannot create a new kind of event that a DPO's
search would miss. Renaming or removing a member is a change of the log's format: stored events
keep the names they were written with (docs/audit-format.md).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType

from audit import DetailKind, Vocabulary


class Action(enum.StrEnum):
    # Sign-in and sessions (SPEC §4)
    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    MFA_FAILED = "auth.mfa_failed"
    MFA_ENROLLED = "auth.mfa_enrolled"
    RECOVERY_CODE_USED = "auth.recovery_code_used"
    LOCKED_OUT = "auth.locked_out"
    SIGN_OUT = "auth.sign_out"
    SESSION_REVOKED = "auth.session_revoked"
    # A refusal with no action of its own (a review or certificate looked at, a CSRF failure):
    # always outcome denied, the target and a reason code saying what and why (docs/audit-format.md)
    ACCESS_DENIED = "access.denied"
    # Personal access tokens
    TOKEN_CREATED = "token.created"  # noqa: S105 (an action name, not a secret)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105
    # Documents
    DOCUMENT_UPLOADED = "document.uploaded"
    DOCUMENT_SCANNED = "document.scanned"
    DOCUMENT_REJECTED = "document.rejected"
    DOCUMENT_METADATA_VIEWED = "document.metadata_viewed"
    DOCUMENT_DOWNLOADED = "document.downloaded"
    DOCUMENT_WITHDRAWN = "document.withdrawn"
    DOCUMENT_DESTROYED = "document.destroyed"
    # Holds and destruction
    HOLD_PLACED = "hold.placed"
    HOLD_LIFTED = "hold.lifted"
    DESTRUCTION_REQUESTED = "destruction.requested"  # early: a DPO asks, a second person approves
    DESTRUCTION_APPROVED = "destruction.approved"
    DESTRUCTION_RUN = "destruction.run"
    CERTIFICATE_ISSUED = "destruction.certificate_issued"
    CERTIFICATE_EXPORTED = "destruction.certificate_exported"
    # Keys
    KEY_CREATED = "key.created"
    KEY_ROTATED = "key.rotated"
    KEY_DESTROYED = "key.destroyed"
    # Administration
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    ORGANISATION_CREATED = "organisation.created"
    ORGANISATION_UPDATED = "organisation.updated"
    REVIEW_CREATED = "review.created"
    REVIEW_UPDATED = "review.updated"
    REVIEW_OPENED = "review.opened"
    REVIEW_CLOSED = "review.closed"
    REVIEW_DESTROYED = "review.destroyed"
    REVIEW_MEMBER_ADDED = "review.member_added"
    REVIEW_MEMBER_REMOVED = "review.member_removed"
    REVIEW_ORGANISATION_ADDED = "review.organisation_added"
    REVIEW_ORGANISATION_REMOVED = "review.organisation_removed"
    REQUEST_CREATED = "request.created"
    REQUEST_UPDATED = "request.updated"
    CASE_CREATED = "case.created"
    # The audit log itself (SPEC §5: export and verification are audited too)
    AUDIT_SEARCHED = "audit.searched"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_VERIFIED = "audit.verified"
    AUDIT_DISPOSED = "audit.disposed"
    AUDIT_PUBLIC_KEY_EXPORTED = "audit.public_key_exported"
    ALERT_ACKNOWLEDGED = "audit.alert_acknowledged"


class TargetKind(enum.StrEnum):
    DOCUMENT = "document"
    CASE = "case"
    REVIEW = "review"
    REQUEST = "request"
    ORGANISATION = "organisation"
    USER = "user"
    TOKEN = "token"  # noqa: S105 (a kind of target, not a secret)
    SESSION = "session"
    HOLD = "hold"
    CERTIFICATE = "certificate"
    KEY = "key"
    AUDIT_LOG = "audit_log"
    ALERT = "alert"


REVIEW_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
# Crockford Base32 groups with hyphens and the check character (which may be * ~ $ = U).
REFERENCE = re.compile(r"[0-9A-Z][0-9A-Z*~$=-]{0,47}")

# The allow-list of details keys: THE place to extend. A key must name a fact, never carry
# user-chosen text; pick the narrowest kind that fits.
DETAIL_KEYS: Mapping[str, DetailKind] = MappingProxyType(
    {
        "attempts": DetailKind.COUNT,
        "failures": DetailKind.COUNT,
        "count": DetailKind.COUNT,
        "events": DetailKind.COUNT,
        "size_bytes": DetailKind.COUNT,
        "first_sequence": DetailKind.COUNT,
        "last_sequence": DetailKind.COUNT,
        "broken_sequence": DetailKind.COUNT,
        "approved_by": DetailKind.COUNT,
        "key_version": DetailKind.COUNT,
        "retention_days": DetailKind.COUNT,
        "expires_in_days": DetailKind.COUNT,
        "filter_actor": DetailKind.COUNT,
        "since_us": DetailKind.COUNT,
        "until_us": DetailKind.COUNT,
        "broken_kind": DetailKind.WORD,
        "reason": DetailKind.WORD,
        "verdict": DetailKind.WORD,
        "method": DetailKind.WORD,
        "format": DetailKind.WORD,
        "factor": DetailKind.WORD,
        "state": DetailKind.WORD,
        "previous_state": DetailKind.WORD,
        "granted_role": DetailKind.WORD,
        "scope": DetailKind.WORD,
        "lift_reason": DetailKind.WORD,
        "rule": DetailKind.WORD,
        "mfa": DetailKind.FLAG,
        "filtered": DetailKind.FLAG,
        "early": DetailKind.FLAG,
        "dry_run": DetailKind.FLAG,
        "offline": DetailKind.FLAG,
        "content_type": DetailKind.CONTENT_TYPE,
        "malware_signature": DetailKind.MALWARE_NAME,
        "filter_action": DetailKind.ACTION,
        "filter_review": DetailKind.REVIEW,
        "filter_document": DetailKind.REFERENCE,
        "case": DetailKind.REFERENCE,
        "filter_case": DetailKind.REFERENCE,
    }
)

VOCABULARY = Vocabulary(
    actions=Action,
    target_kinds=TargetKind,
    review_code=REVIEW_CODE,
    reference=REFERENCE,
    detail_keys=DETAIL_KEYS,
)
