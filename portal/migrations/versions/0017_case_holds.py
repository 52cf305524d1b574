"""Holds on a case (every document of it, later ones included) and the reason a hold was lifted.

Revision ID: 0017_case_holds
Revises: 0015_audit_epoch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_case_holds"
down_revision = "0016_sealed_text"
branch_labels = None
depends_on = None

LIFT_REASONS = ("proceedings_concluded", "placed_in_error", "superseded", "other")


def upgrade() -> None:
    with op.batch_alter_table("destruction_hold") as batch:
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "lift_reason",
                sa.Enum(*LIFT_REASONS, name="liftreason", native_enum=False, length=30),
                nullable=True,
            )
        )
        batch.create_foreign_key("fk_destruction_hold_case_id", "case_file", ["case_id"], ["id"])
        batch.create_index("ix_destruction_hold_case_id", ["case_id"])


def downgrade() -> None:
    with op.batch_alter_table("destruction_hold") as batch:
        batch.drop_index("ix_destruction_hold_case_id")
        batch.drop_constraint("fk_destruction_hold_case_id", type_="foreignkey")
        batch.drop_column("lift_reason")
        batch.drop_column("case_id")
