"""The tamper-evident audit log: events, signed checkpoints and the chain head.

Revision ID: 0002_audit
Revises: 0001_initial
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("organisation_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=True),
        sa.Column("target_ref", sa.String(length=64), nullable=True),
        sa.Column("review", sa.String(length=32), nullable=True),
        sa.Column("document", sa.String(length=48), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=45), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_audit_event_user", "audit_event", ["user_id", "seq"])
    op.create_index("ix_audit_event_action", "audit_event", ["action", "seq"])
    op.create_index("ix_audit_event_target", "audit_event", ["target_kind", "target_ref", "seq"])
    op.create_index("ix_audit_event_review", "audit_event", ["review", "seq"])
    op.create_index("ix_audit_event_document", "audit_event", ["document", "seq"])
    op.create_index("ix_audit_event_outcome", "audit_event", ["outcome", "seq"])
    op.create_index("ix_audit_event_at", "audit_event", ["at_us"])
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("every_events", sa.Integer(), nullable=False),
        sa.Column("previous_seq", sa.BigInteger(), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_us", sa.BigInteger(), nullable=False),
    )
    # The one head row exists from the start, so that appends only ever lock, never race to create.
    op.bulk_insert(
        head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH, "checkpoint_seq": 0, "checkpoint_us": 0}]
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoint")
    for name in ("at", "outcome", "document", "review", "target", "action", "user"):
        op.drop_index(f"ix_audit_event_{name}", table_name="audit_event")
    op.drop_table("audit_event")
