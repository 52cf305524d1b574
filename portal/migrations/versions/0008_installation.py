"""The installation whose keys this database's rows are sealed and signed with.

Revision ID: 0008_installation
Revises: 0007_audit_pending
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_installation"
down_revision = "0007_audit_pending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        # One row: the primary key is fixed, so that two `portal init` cannot both record one.
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("installation_id", sa.String(length=32), nullable=False),
        sa.Column("signing_key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("secret_check", sa.String(length=64), nullable=False),
        sa.Column("key_service", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("installation")
