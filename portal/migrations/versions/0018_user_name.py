"""A user's name: destruction certificates name who authorised them (a signed identity).

Revision ID: 0018_user_name
Revises: 0017_case_holds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_user_name"
down_revision = "0017_case_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("name", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("user_account", "name")
