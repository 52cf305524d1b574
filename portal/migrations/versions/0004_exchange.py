"""The exchange: reviews, teams, participating organisations, requests, cases, documents.

Revision ID: 0004_exchange
Revises: 0003_accounts
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_exchange"
down_revision = "0003_accounts"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target), nullable=nullable)


def _enum(name: str, *values: str, length: int = 20) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


def upgrade() -> None:
    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("legal_basis", sa.String(500), nullable=False),
        sa.Column(
            "state", _enum("reviewstate", "draft", "open", "closed", "destroyed"), nullable=False
        ),
        sa.Column("opens_on", sa.Date(), nullable=False),
        sa.Column("closes_on", sa.Date(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        _fk("lead_user_id", "user_account.id"),
        _utc("created_at"),
        _utc("closed_at", nullable=True),
        _utc("destroyed_at", nullable=True),
    )
    op.create_index("ix_review_code", "review", ["code"], unique=True)
    op.create_index("ix_review_lead_user_id", "review", ["lead_user_id"])
    op.create_table(
        "review_member",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        _fk("user_id", "user_account.id"),
        sa.UniqueConstraint("review_id", "user_id"),
    )
    op.create_index("ix_review_member_review_id", "review_member", ["review_id"])
    op.create_index("ix_review_member_user_id", "review_member", ["user_id"])
    op.create_table(
        "review_organisation",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        _fk("organisation_id", "organisation.id"),
        sa.UniqueConstraint("review_id", "organisation_id"),
    )
    op.create_index("ix_review_organisation_review_id", "review_organisation", ["review_id"])
    op.create_index(
        "ix_review_organisation_organisation_id", "review_organisation", ["organisation_id"]
    )
    op.create_table(
        "records_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("review_id", "review.id"),
        _fk("organisation_id", "organisation.id"),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("instructions", sa.String(4000), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("expected_items", sa.Integer(), nullable=False),
        _fk("created_by", "user_account.id"),
        _utc("created_at"),
    )
    op.create_index("ix_records_request_review_id", "records_request", ["review_id"])
    op.create_index("ix_records_request_organisation_id", "records_request", ["organisation_id"])
    op.create_table(
        "case_file",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(14), nullable=False),
        _fk("review_id", "review.id"),
        _fk("organisation_id", "organisation.id"),
        _fk("created_by", "user_account.id"),
        _utc("created_at"),
    )
    op.create_index("ix_case_file_reference", "case_file", ["reference"], unique=True)
    op.create_index("ix_case_file_review_id", "case_file", ["review_id"])
    op.create_index("ix_case_file_organisation_id", "case_file", ["organisation_id"])
    op.create_table(
        "document",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(14), nullable=False),
        _fk("review_id", "review.id"),
        _fk("organisation_id", "organisation.id"),
        _fk("request_id", "records_request.id", nullable=True),
        _fk("case_id", "case_file.id", nullable=True),
        sa.Column("kind", _enum("documentkind", "record", "note", length=10), nullable=False),
        sa.Column(
            "state",
            _enum(
                "documentstate",
                "receiving",
                "pending_scan",
                "available",
                "rejected",
                "withdrawn",
                "destroyed",
            ),
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("filename_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("blob_id", sa.String(64), nullable=True),
        _fk("uploaded_by", "user_account.id"),
        _utc("uploaded_at"),
        sa.Column("scan_verdict", sa.String(20), nullable=True),
        sa.Column("scan_signature", sa.String(100), nullable=True),
        _utc("scanned_at", nullable=True),
        sa.Column("scan_attempts", sa.Integer(), nullable=False),
        _utc("next_scan_at", nullable=True),
        _utc("scan_flagged_at", nullable=True),
        sa.Column("rejected_reason", sa.String(40), nullable=True),
        _utc("withdrawn_at", nullable=True),
        _fk("withdrawn_by", "user_account.id", nullable=True),
        sa.Column("withdraw_reason", sa.String(40), nullable=True),
        _utc("destroyed_at", nullable=True),
    )
    op.create_index("ix_document_reference", "document", ["reference"], unique=True)
    for column in ("review_id", "organisation_id", "request_id", "case_id", "state"):
        op.create_index(f"ix_document_{column}", "document", [column])
    op.create_index("ix_document_blob_id", "document", ["blob_id"])


def downgrade() -> None:
    for table in (
        "document",
        "case_file",
        "records_request",
        "review_organisation",
        "review_member",
        "review",
    ):
        op.drop_table(table)
