"""Export and verification of the audit log from the console, each audited (SPEC §5).

The work is the command line's (``portal audit export`` / ``verify``): the same library calls, the
same signing key (``portal.destruction.services.signing_key``) and the same one-snapshot read as
``portal.cli.audit`` (which the web app does not import: it is the click program). What differs is where the bytes go: to the
browser, as they are written, through ``portal.web.streaming``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlmodel import Session

import audit
from audit import (
    EventFilter,
    ExportCheck,
    ExportFormat,
    ExportUnreadable,
    Outcome,
    PublicKey,
    SigningKey,
    Verification,
)
from portal.audit_vocabulary import Action
from portal.auditing import Auditor
from portal.console.search import AUDIT_LOG
from portal.errors import Conflict
from portal.exchange.acting import Acting

logger = logging.getLogger(__name__)

MAX_EXPORT_UPLOAD = 16 * 1024 * 1024  # an export checked in the browser; bigger: the CLI


def snapshot(engine: Engine) -> Connection:
    # One snapshot for the whole read, so that appends made meanwhile do not look like tampering
    # (a SQLite transaction is one already).
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return engine.connect()


def _filter_details(where: EventFilter) -> dict[str, int | bool | str]:
    details: dict[str, int | bool | str] = {"filtered": not where.is_empty}
    if where.actor is not None:
        details["filter_actor"] = where.actor
    if where.action is not None:
        details["filter_action"] = str(where.action)
    if where.review is not None:
        details["filter_review"] = where.review
    if where.document is not None:
        details["filter_document"] = where.document
    return details


def _record(
    engine: Engine,
    auditor: Auditor,
    acting: Acting,
    action: Action,
    *,
    ok: bool,
    details: dict[str, int | bool | str],
) -> None:
    outcome = Outcome.SUCCESS if ok else Outcome.FAILURE
    try:
        with Session(engine) as db:
            auditor.record_as(
                db,
                acting,
                action,
                outcome=outcome,
                target=AUDIT_LOG,
                details=details,
            )
            db.commit()
    except Exception:  # SQLAlchemy's or, on the driver-level path, psycopg's own
        if ok:
            raise
        # A tampered log can refuse the append itself (a head moved back onto events that are
        # still there): the finding must still reach the DPO, and the event is kept pending
        # (the worker's chaining then fails too, and says so) rather than lost.
        logger.warning("the audit log refused a verification's event: stored it pending")
        event = audit.AuditEvent(
            action,
            acting.actor,
            outcome=outcome,
            target=AUDIT_LOG,
            client=acting.origin.client_address,
            request_id=acting.origin.request_id,
            details=dict(details),
        )
        with engine.begin() as connection:
            auditor.log.enqueue(connection, event, now=acting.now)


class AuditLogDamaged(Conflict):
    """The log refused the export's own event: it does not verify (a head moved back onto
    events that are still there). No export leaves unrecorded, so none leaves."""

    code = "audit_log_damaged"

    def __init__(self) -> None:
        super().__init__(
            "The audit log refused to record this export, so nothing was exported: the log "
            "does not verify. Verify it (Verify, in the console, or portal audit verify) to see "
            "where it is broken."
        )


@dataclass(frozen=True)
class Export:
    """An export about to be written: ``write(out)`` runs it (in a worker thread)."""

    engine: Engine
    auditor: Auditor
    acting: Acting
    key: SigningKey
    format: ExportFormat
    where: EventFilter
    # The witness's latest checkpoint, which the export carries (its own line, signed).
    witnessed: audit.CheckpointRow | None = None

    def write(self, out: BinaryIO) -> audit.ExportSummary:
        details = {**_filter_details(self.where), "format": self.format}
        try:
            with snapshot(self.engine) as connection, connection.begin():
                return audit.export_log(
                    connection,
                    self.key,
                    out,
                    format=self.format,
                    where=self.where,
                    now=self.acting.now,
                    witnessed=self.witnessed,
                    public_keys=self.auditor.log.public_keys,
                )
        except BaseException:
            # The browser went away or the export failed: on record, as the CLI does.
            _record(
                self.engine,
                self.auditor,
                self.acting,
                Action.AUDIT_EXPORTED,
                ok=False,
                details=details,
            )
            raise


def start_export(
    engine: Engine,
    auditor: Auditor,
    acting: Acting,
    key: SigningKey,
    *,
    format: ExportFormat,
    where: EventFilter,
    witness: audit.Witness | None = None,
) -> Export:
    """Record the export and seal the log with a checkpoint, before the first byte leaves; give
    the witness the new checkpoint, and let the export carry the witness's latest line.

    Threat: an export that leaves the portal unrecorded. As with a document's download, the event
    is stored first; it precedes the checkpoint, so the export (unfiltered) contains its own event.
    A database that contradicts the witness is exported all the same, with the witness's line,
    so that the export's offline check names the cut (as `portal audit export` does).
    """
    details: dict[str, int | bool | str] = {**_filter_details(where), "format": format}
    try:
        with Session(engine) as db:
            auditor.record_as(
                db,
                acting,
                Action.AUDIT_EXPORTED,
                target=AUDIT_LOG,
                details=details,
            )
            auditor.log.checkpoint(db.connection(), now=acting.now)
            db.commit()
    except Exception as refused:  # SQLAlchemy's or, on the driver-level path, psycopg's own
        # The attempt is kept (pending, if the log refuses it again); a database that is down
        # raises here as it did above.
        _record(engine, auditor, acting, Action.AUDIT_EXPORTED, ok=False, details=details)
        raise AuditLogDamaged() from refused
    return Export(
        engine, auditor, acting, key, format, where, latest_witnessed(engine, auditor, witness)
    )


def latest_witnessed(
    engine: Engine, auditor: Auditor, witness: audit.Witness | None
) -> audit.CheckpointRow | None:
    """The witness's latest checkpoint after giving it the database's new ones (None: no
    witness, or one out of reach; a contradiction is left for the export's check to name)."""
    if witness is None:
        return None
    with contextlib.suppress(audit.ChainBroken, audit.WitnessError), engine.connect() as c:
        audit.witness_checkpoints(c, witness, auditor.log.public_keys)
    try:
        return witness.latest()
    except audit.WitnessError:
        return None


def verify_database(
    engine: Engine, auditor: Auditor, acting: Acting, witness: audit.Witness | None = None
) -> Verification:
    """Verify the whole chain in one snapshot, and against the witness outside the database;
    the result is recorded, broken or not."""
    if witness is not None:
        # Bring the witness up to date first; a database that contradicts it (or a witness out
        # of reach) is left for the verification to name.
        with contextlib.suppress(audit.ChainBroken, audit.WitnessError), engine.connect() as c:
            audit.witness_checkpoints(c, witness, auditor.log.public_keys)
    with snapshot(engine) as connection, connection.begin():
        # In parts, as `portal audit verify` does (PostgreSQL; a short log is one walk anyway).
        result = audit.verify_log(
            connection,
            auditor.log.public_keys,
            every_events=auditor.log.policy.every_events,
            processes=audit.parts_by_default(),
            witness=witness,
        )
    details: dict[str, int | bool | str] = {
        "first_sequence": result.first_seq,
        "last_sequence": max(0, result.last_seq),
        "events": result.events,
    }
    if result.broken is not None:
        details.update(broken_sequence=result.broken.sequence, broken_kind=result.broken.kind.value)
    _record(engine, auditor, acting, Action.AUDIT_VERIFIED, ok=result.ok, details=details)
    return result


@dataclass(frozen=True)
class FileCheck:
    """An uploaded export's verification: ``check`` if it could be read, else ``unreadable``."""

    check: ExportCheck | None
    unreadable: str | None = None

    @property
    def ok(self) -> bool:
        return self.check is not None and self.check.ok


def verify_file(
    engine: Engine, auditor: Auditor, acting: Acting, data: bytes, key: PublicKey
) -> FileCheck:
    """Verify an export as a DPO would offline, with the public key alone; recorded."""
    details: dict[str, int | bool | str] = {"offline": True, "size_bytes": len(data)}
    try:
        check = audit.verify_export(data, key)
    except ExportUnreadable as exc:
        details["reason"] = "unreadable"
        _record(engine, auditor, acting, Action.AUDIT_VERIFIED, ok=False, details=details)
        return FileCheck(None, unreadable=str(exc))
    result = check.verification
    details.update(
        first_sequence=max(0, result.first_seq),
        last_sequence=max(0, result.last_seq),
        events=check.shown,
    )
    if result.broken is not None:
        details.update(broken_sequence=result.broken.sequence, broken_kind=result.broken.kind.value)
    _record(engine, auditor, acting, Action.AUDIT_VERIFIED, ok=check.ok, details=details)
    return FileCheck(check)


def verification_json(
    result: Verification, *, now: datetime | None = None, every_seconds: int | None = None
) -> dict[str, Any]:
    """The verification for the API and the pages; with ``now`` and ``every_seconds`` (the
    database's log, not an export), the unsigned tail too."""
    broken = result.broken
    tail: dict[str, Any] | None = None
    if now is not None and every_seconds is not None:
        now_us = audit.to_us(now)
        age = result.tail_age_seconds(now_us)
        tail = {
            "events": result.tail_events,
            "age_seconds": round(age) if age is not None else None,
            "stale": result.tail_is_stale(now_us, every_seconds),
        }
    return {
        "unsigned_tail": tail,
        "ok": result.ok,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "events": result.events,
        "checkpoints": result.checkpoints,
        "last_checkpoint": result.last_checkpoint.seq if result.last_checkpoint else None,
        "witnessed": (
            {"seq": result.witnessed.seq, "receipt": audit.checkpoint_line(result.witnessed)}
            if result.witnessed is not None
            else None
        ),
        "broken": (
            {"sequence": broken.sequence, "kind": broken.kind.value, "detail": broken.detail}
            if broken is not None
            else None
        ),
    }
