"""Destruction: the unfinished uploads a run destroyed.

Revision ID: 0010_destruction_uploads
Revises: 0009_upload_lease
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_destruction_uploads"
down_revision = "0009_upload_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destruction_upload",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("destruction_run.id"), nullable=False),
        sa.Column("previous_state", sa.String(20), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("blob_ids", sa.Text(), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_destruction_upload_run_id", "destruction_upload", ["run_id"])


def downgrade() -> None:
    op.drop_table("destruction_upload")
