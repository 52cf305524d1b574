"""The audit log's epochs: where the log starts after events were disposed of.

Revision ID: 0015_audit_epoch
Revises: 0010_destruction_uploads
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_audit_epoch"
down_revision = "0010_destruction_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_epoch",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("before_us", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("previous_seq", sa.BigInteger(), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_epoch")
