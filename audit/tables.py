"""The audit tables, on a ``MetaData`` of their own (the portal's migration 0002_audit creates
them; an application lists ``metadata`` beside its own for its migrations).

* ``audit_event``: one row per event, ``seq`` its primary key; times are microseconds since the
  epoch (UTC) so that the hashed value is exactly the stored one on every database.
* ``audit_checkpoint``: signed (seq, hash) pairs.
* ``audit_head``: ONE row (id 1), the end of the chain; every append locks it, which is what
  makes concurrent writers produce one chain without fork, gap or duplicate.
* ``audit_pending``: events committed with their action but not yet chained (``AuditLog.enqueue``);
  ``AuditLog.chain_pending`` moves them into ``audit_event`` moments later, in commit order.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

HEAD_ID = 1

# The library's own: importing it registers nothing on an application's metadata (SQLModel's is
# one global object), and its tables are where its queries expect them whatever the app does.
metadata = MetaData()


def _event_fields() -> list[Column[object]]:
    """An event's stored fields after ``seq`` (EVENT_FIELDS[1:]): in audit_event and, waiting
    to be chained, in audit_pending. New Column objects each call (a column has one table)."""
    return [
        Column("at_us", BigInteger, nullable=False),
        Column("nonce", String(32), nullable=False),
        Column("user_id", BigInteger, nullable=True),
        Column("role", String(32), nullable=True),
        Column("organisation_id", BigInteger, nullable=True),
        Column("action", String(64), nullable=False),
        Column("target_kind", String(32), nullable=True),
        Column("target_ref", String(64), nullable=True),
        Column("review", String(32), nullable=True),
        Column("document", String(48), nullable=True),
        Column("outcome", String(16), nullable=False),
        Column("client", String(45), nullable=True),
        Column("request_id", String(64), nullable=True),
        Column("details", Text, nullable=False),
    ]


event_table = Table(
    "audit_event",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    *_event_fields(),
    Column("hash", String(64), nullable=False),
    # Searches filter on one field and page by seq: (field, seq) serves both.
    Index("ix_audit_event_user", "user_id", "seq"),
    Index("ix_audit_event_action", "action", "seq"),
    Index("ix_audit_event_target", "target_kind", "target_ref", "seq"),
    Index("ix_audit_event_review", "review", "seq"),
    Index("ix_audit_event_document", "document", "seq"),
    Index("ix_audit_event_outcome", "outcome", "seq"),
    Index("ix_audit_event_at", "at_us"),
)

checkpoint_table = Table(
    "audit_checkpoint",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("every_events", Integer, nullable=False),
    Column("previous_seq", BigInteger, nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

head_table = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("checkpoint_seq", BigInteger, nullable=False),
    Column("checkpoint_us", BigInteger, nullable=False),
)

pending_table = Table(
    "audit_pending",
    metadata,
    # Order of arrival only (never shown, never hashed): the chain gives the sequence number.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    *_event_fields(),
)

epoch_table = Table(
    "audit_epoch",
    metadata,
    # The log starts after ``seq``: events up to it were disposed of at the end of their
    # retention period; the checkpoint at ``seq`` is kept as the anchor (docs/audit-format.md).
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("before_us", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("previous_seq", BigInteger, nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)
