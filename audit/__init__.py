"""A tamper-evident audit log: hash-chained events, Ed25519-signed checkpoints, offline-verifiable
exports. A library on its own: it knows SQLAlchemy, not the web app.

Appending, inside the caller's transaction::

    key = load_or_create_signing_key(key_dir / "audit-signing.pem")
    log = AuditLog(vocabulary, key)             # vocabulary: the application's words
    with engine.begin() as connection:          # or: session.connection()
        ...                                     # the action
        log.append(connection, AuditEvent("document.downloaded", Actor(7, "inspector", 2),
                                          document="7KQ2-M9XD-4", review="SWG24"))
"""

from .encoding import from_us, iso, to_us
from .errors import (
    AuditError,
    ChainBroken,
    EventRejected,
    ExportUnreadable,
    ForbiddenDetail,
    SignatureInvalid,
    SigningKeyError,
)
from .events import Actor, AuditEvent, AuditRecord, DetailKind, Outcome, Target
from .exports import FORMATS, ExportFormat, ExportSummary, export_log
from .log import Appended, AuditLog, CheckpointPolicy, utc_now
from .offline import ExportCheck, parse_receipts, verify_export
from .queries import MAX_PAGE, EventFilter, Page, count_events, events_between, search, seqs_after
from .retention import Disposal, disposable_through, dispose
from .signing import (
    PublicKey,
    SigningKey,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
)
from .tables import metadata
from .tail import Tail, unsigned_tail
from .verification import (
    Break,
    BreakKind,
    CheckpointRow,
    Verification,
    parts_by_default,
    verify_log,
)
from .vocabulary import Vocabulary
from .witness import (
    FileWitness,
    S3Witness,
    Witness,
    WitnessError,
    check_against_witness,
    checkpoint_line,
    parse_checkpoint_line,
    witness_checkpoints,
)

__all__ = [
    "FORMATS",
    "MAX_PAGE",
    "Actor",
    "Appended",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "Break",
    "BreakKind",
    "ChainBroken",
    "CheckpointPolicy",
    "CheckpointRow",
    "DetailKind",
    "Disposal",
    "EventFilter",
    "EventRejected",
    "ExportCheck",
    "ExportFormat",
    "ExportSummary",
    "ExportUnreadable",
    "FileWitness",
    "ForbiddenDetail",
    "Outcome",
    "Page",
    "PublicKey",
    "S3Witness",
    "SignatureInvalid",
    "SigningKey",
    "SigningKeyError",
    "Tail",
    "Target",
    "Verification",
    "Vocabulary",
    "Witness",
    "WitnessError",
    "check_against_witness",
    "checkpoint_line",
    "count_events",
    "disposable_through",
    "dispose",
    "events_between",
    "export_log",
    "from_us",
    "iso",
    "load_or_create_signing_key",
    "load_public_key",
    "load_signing_key",
    "metadata",
    "parse_checkpoint_line",
    "parse_receipts",
    "parts_by_default",
    "search",
    "seqs_after",
    "to_us",
    "unsigned_tail",
    "utc_now",
    "verify_export",
    "verify_log",
    "witness_checkpoints",
]
