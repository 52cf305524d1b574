"""Resumable uploads: sessions and their encrypted parts.

Revision ID: 0005_uploads
Revises: 0004_exchange
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_uploads"
down_revision = "0004_exchange"
branch_labels = None
depends_on = None


def _utc(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "upload_session",
        sa.Column("id", sa.String(64), primary_key=True),
        _fk("user_id", "user_account.id"),
        _fk("review_id", "review.id"),
        _fk("request_id", "records_request.id", nullable=True),
        _fk("case_id", "case_file.id", nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "receiving",
                "completing",
                "complete",
                name="uploadstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("filename_sealed", sa.LargeBinary(), nullable=False),
        _fk("document_id", "document.id", nullable=True),
        _utc("created_at"),
        _utc("updated_at"),
        _utc("expires_at"),
    )
    op.create_index("ix_upload_session_user_id", "upload_session", ["user_id"])
    op.create_index("ix_upload_session_review_id", "upload_session", ["review_id"])
    op.create_index("ix_upload_session_expires_at", "upload_session", ["expires_at"])
    op.create_table(
        "upload_part",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("upload_id", sa.String(64), sa.ForeignKey("upload_session.id"), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("upload_id", "part_index"),
    )
    op.create_index("ix_upload_part_upload_id", "upload_part", ["upload_id"])


def downgrade() -> None:
    op.drop_table("upload_part")
    op.drop_table("upload_session")
