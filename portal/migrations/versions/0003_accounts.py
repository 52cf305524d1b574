"""Accounts: users, enrolment links, recovery codes, sessions, API tokens, sign-in throttling.

Revision ID: 0003_accounts
Revises: 0002_audit
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_accounts"
down_revision = "0002_audit"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    role = sa.Enum(
        "uploader", "inspector", "lead", "dpo", "admin", name="role", native_enum=False, length=20
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "organisation_id", sa.Integer(), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("role", role, nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("totp_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        _utc("enrolled_at", nullable=True),
        _utc("disabled_at", nullable=True),
        _utc("created_at"),
    )
    op.create_index("ix_user_account_email", "user_account", ["email"], unique=True)
    op.create_index("ix_user_account_organisation_id", "user_account", ["organisation_id"])
    op.create_table(
        "enrolment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        _utc("created_at"),
        _utc("expires_at"),
        _utc("used_at", nullable=True),
    )
    op.create_index("ix_enrolment_user_id", "enrolment", ["user_id"])
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        _utc("used_at", nullable=True),
    )
    op.create_index("ix_recovery_code_user_id", "recovery_code", ["user_id"])
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("id_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("mfa_done", sa.Boolean(), nullable=False),
        _utc("created_at"),
        _utc("last_seen_at"),
        _utc("ended_at", nullable=True),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        _utc("created_at"),
        _utc("expires_at"),
        _utc("revoked_at", nullable=True),
        _utc("last_used_at", nullable=True),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=80), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        _utc("window_started_at"),
        _utc("locked_until", nullable=True),
    )


def downgrade() -> None:
    for table in (
        "sign_in_throttle",
        "api_token",
        "web_session",
        "recovery_code",
        "enrolment",
        "user_account",
    ):
        op.drop_table(table)
