"""Alerts: each finding of the audit log's anomaly rules, raised once, mailed, acknowledged.

Revision ID: 0020_alerts
Revises: 0019_review_sealed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_alerts"
down_revision = "0019_review_sealed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("started_at", when, nullable=False),
        sa.Column("ended_at", when, nullable=False),
        sa.Column("raised_at", when, nullable=False),
        sa.Column("mailed_at", when, nullable=True),
        sa.Column("acknowledged_by", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_at", when, nullable=True),
    )
    op.create_index("ix_alert_subject", "alert", ["rule", "subject"])


def downgrade() -> None:
    op.drop_index("ix_alert_subject", table_name="alert")
    op.drop_table("alert")
