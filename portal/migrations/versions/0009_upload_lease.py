"""Resumable uploads: the lease of the attempt completing an upload.

Revision ID: 0009_upload_lease
Revises: 0008_installation
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_upload_lease"
down_revision = "0008_installation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions left ``completing`` by an older version have no lease: a null lease has run out,
    # so the worker finishes them.
    op.add_column("upload_session", sa.Column("lease_owner", sa.String(32), nullable=True))
    op.add_column(
        "upload_session", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_upload_session_lease_until", "upload_session", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_upload_session_lease_until", table_name="upload_session")
    op.drop_column("upload_session", "lease_until")
    op.drop_column("upload_session", "lease_owner")
