"""Destruction: holds, notices, early destruction, runs, their items and certificates.

Revision ID: 0006_destruction
Revises: 0005_uploads
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_destruction"
down_revision = "0005_uploads"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target), nullable=nullable)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=20)


def upgrade() -> None:
    op.create_table(
        "destruction_hold",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        _fk("document_id", "document.id", nullable=True),
        sa.Column(
            "reason",
            _enum("holdreason", "legal", "safeguarding", "complaint", "other"),
            nullable=False,
        ),
        sa.Column("order_reference", sa.String(40), nullable=True),
        sa.Column("state", _enum("holdstate", "requested", "active", "lifted"), nullable=False),
        _fk("requested_by", "user_account.id", nullable=True),
        _utc("requested_at", nullable=True),
        _fk("placed_by", "user_account.id", nullable=True),
        _utc("placed_at", nullable=True),
        _fk("lifted_by", "user_account.id", nullable=True),
        _utc("lifted_at", nullable=True),
    )
    op.create_index("ix_destruction_hold_review_id", "destruction_hold", ["review_id"])
    op.create_index("ix_destruction_hold_document_id", "destruction_hold", ["document_id"])
    op.create_index("ix_destruction_hold_state", "destruction_hold", ["state"])
    op.create_table(
        "destruction_notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        sa.Column("kind", _enum("noticekind", "days_30", "days_7"), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        _utc("created_at"),
        _utc("sent_at", nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.UniqueConstraint("review_id", "kind", "due_on"),
    )
    op.create_index("ix_destruction_notice_review_id", "destruction_notice", ["review_id"])
    op.create_table(
        "destruction_early",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        sa.Column("state", _enum("earlystate", "pending", "approved", "done"), nullable=False),
        _fk("requested_by", "user_account.id"),
        _utc("requested_at"),
        _fk("approved_by", "user_account.id", nullable=True),
        _utc("approved_at", nullable=True),
    )
    op.create_index("ix_destruction_early_review_id", "destruction_early", ["review_id"])
    op.create_index("ix_destruction_early_state", "destruction_early", ["state"])
    op.create_table(
        "destruction_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        sa.Column("open_review_id", sa.Integer(), nullable=True, unique=True),
        _fk("early_id", "destruction_early.id", nullable=True),
        _utc("started_at"),
        _utc("completed_at", nullable=True),
    )
    op.create_index("ix_destruction_run_review_id", "destruction_run", ["review_id"])
    op.create_table(
        "destruction_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("run_id", "destruction_run.id"),
        sa.Column(
            "document_id", sa.Integer(), sa.ForeignKey("document.id"), nullable=False, unique=True
        ),
        sa.Column("blob_id", sa.String(64), nullable=True),
        sa.Column("previous_state", sa.String(20), nullable=False),
        _utc("destroyed_at"),
    )
    op.create_index("ix_destruction_item_run_id", "destruction_item", ["run_id"])
    op.create_table(
        "destruction_certificate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(14), nullable=False),
        _fk("review_id", "review.id"),
        sa.Column(
            "run_id", sa.Integer(), sa.ForeignKey("destruction_run.id"), nullable=False, unique=True
        ),
        _utc("issued_at"),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_destruction_certificate_reference",
        "destruction_certificate",
        ["reference"],
        unique=True,
    )
    op.create_index(
        "ix_destruction_certificate_review_id", "destruction_certificate", ["review_id"]
    )


def downgrade() -> None:
    op.drop_table("destruction_certificate")
    op.drop_table("destruction_item")
    op.drop_table("destruction_run")
    op.drop_table("destruction_early")
    op.drop_table("destruction_notice")
    op.drop_table("destruction_hold")
