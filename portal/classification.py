"""What every column of every table holds, and why it may (or may not) stay readable.

Destroying a review must erase everything about the people in it, in the database and in its
backups (SPEC §4, §6). Content, file names and every free text a person types about a review are
sealed under a key that destruction erases; every other column must be free of personal data by
construction, or kept under a rule of its own (accounts, the audit log). This module is that
claim, column by column: ``tests/portal/test_classification.py`` fails when a table gains a column
that is not listed here (so a new text column must be sealed or justified), and the table in
docs/destruction.md ("What each column holds") is generated from it (``markdown_table``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Holds(enum.StrEnum):
    """The classes of column, from "erased by destruction" to "kept by its own rule"."""

    sealed = "sealed"  # free text sealed under the review's or a document's key: shredded with it
    wrapped_key = "wrapped_key"  # a data key wrapped by the review key: erased, it opens nothing
    code = "code"  # a fixed set, number, date, time, flag or row id: no personal data possible
    reference = "reference"  # pseudonymous references, random ids, digests, hashes, signatures
    machine = "machine"  # text the portal or its scanner writes, never typed by a person
    account = "account"  # staff accounts and organisations: kept under the accounts' own rule
    audit = "audit"  # the audit log: outlives the documents (SPEC §5), facts only


EXPLAINED = {
    Holds.sealed: "erased by destroying the key it is sealed under (crypto-shredding)",
    Holds.wrapped_key: "a key wrapped by the review key: useless once that key is destroyed",
    Holds.code: "a fixed set, number, date, time, flag or row id: free of personal data",
    Holds.reference: "a pseudonymous reference, random id, digest or signature",
    Holds.machine: "written by the portal or its scanner, never typed by a person",
    Holds.account: "staff account or organisation data, kept under the accounts' own rule",
    Holds.audit: "the audit log, kept after destruction under its own retention (SPEC §5)",
}


@dataclass(frozen=True)
class ColumnClass:
    table: str
    column: str
    holds: Holds
    reason: str


_ID = (Holds.code, "row id")
_WHEN = (Holds.code, "a time")
_FK = (Holds.code, "row id of another table")
_AUDIT_COMMON: dict[str, tuple[Holds, str]] = {
    "at_us": (Holds.audit, "time of the event (µs)"),
    "nonce": (Holds.audit, "random nonce hashed into the chain"),
    "user_id": (Holds.audit, "who acted: a user's row id"),
    "role": (Holds.audit, "the actor's role: a fixed set"),
    "organisation_id": (Holds.audit, "the actor's organisation: a row id"),
    "action": (Holds.audit, "the action: a fixed set (portal.audit_vocabulary.Action)"),
    "target_kind": (Holds.audit, "kind of target: a fixed set"),
    "target_ref": (Holds.audit, "target reference: a reference, code or row id, never a name"),
    "review": (Holds.audit, "review code"),
    "document": (Holds.audit, "document reference"),
    "outcome": (Holds.audit, "outcome: a fixed set"),
    "client": (Holds.audit, "client address, kept as SPEC §5 asks"),
    "request_id": (Holds.audit, "random request id"),
    "details": (
        Holds.audit,
        "JSON of allow-listed keys only (portal.audit_vocabulary.DETAIL_KEYS)",
    ),
}

COLUMNS: dict[str, dict[str, tuple[Holds, str]]] = {
    "records_request": {
        "id": _ID,
        "review_id": _FK,
        "organisation_id": _FK,
        "title_sealed": (Holds.sealed, "may name a child: sealed under the review's key"),
        "instructions_sealed": (Holds.sealed, "may name a child: sealed under the review's key"),
        "due_on": (Holds.code, "a date"),
        "expected_items": (Holds.code, "a number"),
        "created_by": _FK,
        "created_at": _WHEN,
    },
    "destruction_hold": {
        "id": _ID,
        "review_id": _FK,
        "document_id": _FK,
        "case_id": _FK,
        "reason": (Holds.code, "reason category: a fixed set (HoldReason)"),
        "order_reference_sealed": (
            Holds.sealed,
            "an order's reference can lead to a person: sealed under the review's key",
        ),
        "state": (Holds.code, "a fixed set (HoldState)"),
        "requested_by": _FK,
        "requested_at": _WHEN,
        "placed_by": _FK,
        "placed_at": _WHEN,
        "lifted_by": _FK,
        "lifted_at": _WHEN,
        "lift_reason": (Holds.code, "why it was lifted: a fixed set (LiftReason)"),
    },
    "document": {
        "id": _ID,
        "reference": (Holds.reference, "random pseudonymous reference"),
        "review_id": _FK,
        "organisation_id": _FK,
        "request_id": _FK,
        "case_id": _FK,
        "kind": (Holds.code, "a fixed set (DocumentKind)"),
        "state": (Holds.code, "a fixed set (DocumentState)"),
        "size": (Holds.code, "a number"),
        "sha256": (Holds.reference, "digest of the plaintext, for the certificate"),
        "content_type": (Holds.machine, "detected from the content, never the name typed"),
        "wrapped_key": (Holds.wrapped_key, "erased when the document is destroyed"),
        "filename_sealed": (Holds.sealed, "the file name, sealed under the document's key"),
        "blob_id": (Holds.reference, "random blob id"),
        "uploaded_by": _FK,
        "uploaded_at": _WHEN,
        "scan_verdict": (Holds.machine, "the scanner's verdict: a fixed set"),
        "scan_signature": (Holds.machine, "malware signature name from ClamAV's database"),
        "scanned_at": _WHEN,
        "scan_attempts": (Holds.code, "a number"),
        "next_scan_at": _WHEN,
        "scan_flagged_at": _WHEN,
        "rejected_reason": (
            Holds.code,
            "set by the portal only ('malware', 'unscannable'): a fixed set",
        ),
        "withdrawn_at": _WHEN,
        "withdrawn_by": _FK,
        "withdraw_reason": (Holds.code, "a fixed set (WithdrawReason), refused otherwise"),
        "destroyed_at": _WHEN,
    },
    "upload_session": {
        "id": (Holds.reference, "random upload id"),
        "user_id": _FK,
        "review_id": _FK,
        "request_id": _FK,
        "case_id": _FK,
        "state": (Holds.code, "a fixed set"),
        "length": (Holds.code, "a number"),
        "received": (Holds.code, "a number"),
        "parts": (Holds.code, "a number"),
        "sha256": (Holds.reference, "digest the client announced"),
        "wrapped_key": (Holds.wrapped_key, "the upload's key; the row is deleted on destruction"),
        "filename_sealed": (Holds.sealed, "the file name, sealed under the upload's key"),
        "document_id": _FK,
        "lease_owner": (Holds.machine, "random id of the worker holding the lease"),
        "lease_until": _WHEN,
        "created_at": _WHEN,
        "updated_at": _WHEN,
        "expires_at": _WHEN,
    },
    "upload_part": {
        "id": _ID,
        "upload_id": (Holds.reference, "random upload id"),
        "part_index": (Holds.code, "a number"),
        "start": (Holds.code, "a number"),
        "size": (Holds.code, "a number"),
        "blob_id": (Holds.reference, "random blob id"),
        "wrapped_key": (Holds.wrapped_key, "the part's key; the row is deleted on destruction"),
    },
    "review": {
        "id": _ID,
        "code": (Holds.code, "a short code chosen by the lead (A-Z, 0-9)"),
        "title_sealed": (
            Holds.sealed,
            "typed by a lead, may name a person: sealed under the review's key",
        ),
        "legal_basis_sealed": (
            Holds.sealed,
            "typed by a lead, free text: sealed under the review's key",
        ),
        "state": (Holds.code, "a fixed set (ReviewState)"),
        "opens_on": (Holds.code, "a date"),
        "closes_on": (Holds.code, "a date"),
        "retention_days": (Holds.code, "a number"),
        "lead_user_id": _FK,
        "created_at": _WHEN,
        "closed_at": _WHEN,
        "destroyed_at": _WHEN,
    },
    "review_member": {"id": _ID, "review_id": _FK, "user_id": _FK},
    "review_organisation": {"id": _ID, "review_id": _FK, "organisation_id": _FK},
    "case_file": {
        "id": _ID,
        "reference": (Holds.reference, "random pseudonymous case reference, never a name"),
        "review_id": _FK,
        "organisation_id": _FK,
        "created_by": _FK,
        "created_at": _WHEN,
    },
    "destruction_notice": {
        "id": _ID,
        "review_id": _FK,
        "kind": (Holds.code, "a fixed set (NoticeKind)"),
        "due_on": (Holds.code, "a date"),
        "created_at": _WHEN,
        "sent_at": _WHEN,
        "recipients": (Holds.code, "a number"),
    },
    "destruction_early": {
        "id": _ID,
        "review_id": _FK,
        "state": (Holds.code, "a fixed set (EarlyState)"),
        "requested_by": _FK,
        "requested_at": _WHEN,
        "approved_by": _FK,
        "approved_at": _WHEN,
    },
    "destruction_run": {
        "id": _ID,
        "review_id": _FK,
        "open_review_id": _FK,
        "early_id": _FK,
        "started_at": _WHEN,
        "completed_at": _WHEN,
    },
    "destruction_item": {
        "id": _ID,
        "run_id": _FK,
        "document_id": _FK,
        "blob_id": (Holds.reference, "random blob id, until verified gone"),
        "previous_state": (Holds.code, "a document state: a fixed set"),
        "destroyed_at": _WHEN,
    },
    "destruction_upload": {
        "id": _ID,
        "run_id": _FK,
        "previous_state": (Holds.code, "an upload state: a fixed set"),
        "parts": (Holds.code, "a number"),
        "blob_ids": (Holds.reference, "random blob ids, until verified gone"),
        "destroyed_at": _WHEN,
    },
    "destruction_certificate": {
        "id": _ID,
        "reference": (Holds.reference, "random certificate reference"),
        "review_id": _FK,
        "run_id": _FK,
        "issued_at": _WHEN,
        "documents": (Holds.code, "a number"),
        "body": (Holds.machine, "canonical JSON: references, sizes, digests, times, roles"),
        "signature": (Holds.reference, "Ed25519 signature"),
        "key_fingerprint": (Holds.reference, "SHA-256 of the public key"),
    },
    "organisation": {
        "id": _ID,
        "slug": (Holds.account, "the organisation's short name"),
        "name": (Holds.account, "a public body's name, not a person's"),
        "kind": (Holds.code, "a fixed set (OrganisationKind)"),
        "created_at": _WHEN,
    },
    "installation": {
        "id": _ID,
        "installation_id": (Holds.reference, "random installation id"),
        "signing_key_fingerprint": (Holds.reference, "SHA-256 of the public key"),
        "secret_check": (Holds.reference, "keyed digest that checks the key service"),
        "key_service": (Holds.machine, "where the key service was at init (no PIN)"),
        "created_at": _WHEN,
    },
    "user_account": {
        "id": _ID,
        "email": (Holds.account, "a staff member's work address: the accounts' own rule"),
        "name": (Holds.account, "a staff member's name, for certificates: the accounts' own rule"),
        "organisation_id": _FK,
        "role": (Holds.code, "a fixed set (Role)"),
        "password_hash": (Holds.reference, "Argon2id hash"),
        "totp_secret_sealed": (Holds.account, "sealed by the installation's secret box"),
        "totp_last_step": (Holds.code, "a number"),
        "enrolled_at": _WHEN,
        "disabled_at": _WHEN,
        "created_at": _WHEN,
    },
    "api_token": {
        "id": _ID,
        "user_id": _FK,
        "name": (Holds.account, "a label its owner gives a token; about the account, no review"),
        "token_hash": (Holds.reference, "SHA-256 of the token"),
        "created_at": _WHEN,
        "expires_at": _WHEN,
        "revoked_at": _WHEN,
        "last_used_at": _WHEN,
    },
    "enrolment": {
        "id": _ID,
        "token_hash": (Holds.reference, "SHA-256 of the enrolment token"),
        "user_id": _FK,
        "created_at": _WHEN,
        "expires_at": _WHEN,
        "used_at": _WHEN,
    },
    "recovery_code": {
        "id": _ID,
        "user_id": _FK,
        "code_hash": (Holds.reference, "hash of a recovery code"),
        "used_at": _WHEN,
    },
    "web_session": {
        "id": _ID,
        "id_hash": (Holds.reference, "SHA-256 of the session id"),
        "user_id": _FK,
        "mfa_done": (Holds.code, "a flag"),
        "created_at": _WHEN,
        "last_seen_at": _WHEN,
        "ended_at": _WHEN,
    },
    "sign_in_throttle": {
        "key": (Holds.reference, "hashed e-mail, client address, or user id and hashed device"),
        "failures": (Holds.code, "a number"),
        "lockouts": (Holds.code, "a number"),
        "window_started_at": _WHEN,
        "locked_until": _WHEN,
    },
    "audit_event": {
        "seq": (Holds.audit, "sequence number"),
        **_AUDIT_COMMON,
        "hash": (Holds.audit, "hash chain link"),
    },
    "audit_pending": {"id": (Holds.audit, "row id"), **_AUDIT_COMMON},
    "audit_checkpoint": {
        "seq": (Holds.audit, "sequence number checkpointed"),
        "hash": (Holds.audit, "chain hash"),
        "at_us": (Holds.audit, "a time (µs)"),
        "every_events": (Holds.audit, "a number"),
        "previous_seq": (Holds.audit, "a sequence number"),
        "key_fingerprint": (Holds.audit, "SHA-256 of the public key"),
        "signature": (Holds.audit, "Ed25519 signature"),
    },
    "audit_epoch": {
        "seq": (Holds.audit, "sequence number the log starts at"),
        "hash": (Holds.audit, "chain hash"),
        "before_us": (Holds.audit, "a time (µs)"),
        "at_us": (Holds.audit, "a time (µs)"),
        "previous_seq": (Holds.audit, "a sequence number"),
        "key_fingerprint": (Holds.audit, "SHA-256 of the public key"),
        "signature": (Holds.audit, "Ed25519 signature"),
    },
    "audit_head": {
        "id": (Holds.audit, "row id"),
        "seq": (Holds.audit, "newest sequence number"),
        "hash": (Holds.audit, "newest chain hash"),
        "checkpoint_seq": (Holds.audit, "a sequence number"),
        "checkpoint_us": (Holds.audit, "a time (µs)"),
    },
    "alert": {
        "id": _ID,
        "key": (Holds.reference, "SHA-256 of rule, subject and start: finds the same finding"),
        "rule": (Holds.code, "an anomaly rule: a fixed set"),
        "subject": (Holds.reference, "SHA-256 of the account id or client address concerned"),
        "user_id": (Holds.audit, "who the finding is about: a user's row id"),
        "count": (Holds.code, "a number"),
        "first_seq": (Holds.audit, "a sequence number"),
        "last_seq": (Holds.audit, "a sequence number"),
        "started_at": _WHEN,
        "ended_at": _WHEN,
        "raised_at": _WHEN,
        "mailed_at": _WHEN,
        "acknowledged_by": _FK,
        "acknowledged_at": _WHEN,
    },
}


def classified() -> list[ColumnClass]:
    return [
        ColumnClass(table, column, holds, reason)
        for table, columns in COLUMNS.items()
        for column, (holds, reason) in columns.items()
    ]


def markdown_table() -> str:
    """The table of docs/destruction.md, "What each column holds", one row per column."""
    lines = ["| table | column | holds | why |", "| --- | --- | --- | --- |"]
    for entry in sorted(classified(), key=lambda c: (c.table, c.column)):
        lines.append(
            f"| `{entry.table}` | `{entry.column}` | {entry.holds.value} | {entry.reason} |"
        )
    return "\n".join(lines) + "\n"
