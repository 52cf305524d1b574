"""Free texts sealed under their review's key: request titles and instructions, hold orders.

They can name a child ("Records for Callum ..."). Each existing row is sealed under its review's
key, bound to its table, column and row (``storage.Vault.seal_text``), and the plaintext columns
are dropped, so destroying a review's key erases them as it erases the documents. Rows of a
review already destroyed get no sealed text: their review's key is gone, and so is their text;
so do rows whose review's key the key service destroyed after the database was backed up (a
restore of an older backup, which runs this migration too).

The key service is needed only if there are rows to seal: ``portal init`` hands the vault over
(``portal.migrate.upgrade_database(..., vault=...)``); without one this migration refuses to
run on a database holding such rows, rather than leave plaintext behind.

Revision ID: 0016_sealed_text
Revises: 0015_audit_epoch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from portal.migrate import MigrationRefused
from storage import KeyDestroyed, KeyNotFound, TextPlace, Vault

revision = "0016_sealed_text"
down_revision = "0015_audit_epoch"
branch_labels = None
depends_on = None

# (table, plaintext column, sealed column); the places are frozen here as they were sealed.
SEALED = [
    ("records_request", "title", "title_sealed"),
    ("records_request", "instructions", "instructions_sealed"),
    ("destruction_hold", "order_reference", "order_reference_sealed"),
]


def upgrade() -> None:
    for table, _, sealed in SEALED:
        op.add_column(table, sa.Column(sealed, sa.LargeBinary(), nullable=True))
    _seal_existing_rows()
    for table, plain, _ in SEALED:
        op.drop_column(table, plain)


def _seal_existing_rows() -> None:
    bind = op.get_bind()
    vault: Vault | None = context.config.attributes.get("vault")
    for table, plain, sealed in SEALED:
        rows = bind.execute(
            sa.text(
                f"SELECT t.id, t.{plain}, r.code, r.state FROM {table} t "  # noqa: S608 (fixed names)
                "JOIN review r ON r.id = t.review_id ORDER BY t.id"
            )
        ).all()
        for row_id, value, review_code, state in rows:
            if value is None or state == "destroyed":
                continue  # nothing to keep: the review's key, and with it the text, is gone
            if vault is None:
                raise MigrationRefused(
                    f"{table}.{plain} holds text to seal under each review's key: run "
                    "`portal init`, which opens the key service for this migration"
                )
            place = TextPlace(review=review_code, table=table, column=sealed, row=str(row_id))
            try:
                value_sealed: bytes | None = vault.seal_text(place, value)
            except KeyDestroyed:
                # A backup restored after its review was destroyed: the key service no longer
                # holds the key, so the text is gone with the review; it is not kept in plain.
                value_sealed = None
            except KeyNotFound:
                raise MigrationRefused(
                    f"review {review_code} has no key in the key service: is it the one this "
                    "installation was made with (PORTAL_KMS or PORTAL_KEY_DIR)?"
                ) from None
            bind.execute(
                sa.text(f"UPDATE {table} SET {sealed} = :sealed WHERE id = :id"),  # noqa: S608
                {"sealed": value_sealed, "id": row_id},
            )


def downgrade() -> None:
    # The plaintext is not put back: a downgrade must not undo an erasure. Titles become
    # "(sealed)" so that the older code still runs.
    for table, plain, sealed in SEALED:
        op.add_column(table, sa.Column(plain, sa.String(4000), nullable=True))
        op.drop_column(table, sealed)
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE records_request SET title = '(sealed)', instructions = ''"))
