"""Audit events committed with their action and waiting to be chained.

Revision ID: 0007_audit_pending
Revises: 0006_destruction
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_audit_pending"
down_revision = "0006_destruction"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("organisation_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_kind", sa.String(32), nullable=True),
        sa.Column("target_ref", sa.String(64), nullable=True),
        sa.Column("review", sa.String(32), nullable=True),
        sa.Column("document", sa.String(48), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client", sa.String(45), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_pending")
