"""A review's title and legal basis sealed under its own key, as request titles are (0016).

A lead types both, and a title can name a person ("Thematic review: the Mackenzie children").
Each existing review's texts are sealed under its key, bound to the review's row
(``storage.Vault.seal_text``, table ``review``, columns ``title_sealed`` and
``legal_basis_sealed``), and the plaintext columns are dropped, so destroying a review's key
erases them in the database and in its backups. A review already destroyed gets no sealed text,
and nor does one whose key the key service destroyed after the database was backed up (a restore
of an older backup, which runs this migration too).

As with 0016, the key service is needed only if there are reviews to seal: without it this
migration refuses to run on a database holding any, rather than leave plaintext behind.

Revision ID: 0019_review_sealed
Revises: 0018_user_name
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from portal.migrate import MigrationRefused
from storage import KeyDestroyed, KeyNotFound, TextPlace, Vault

revision = "0019_review_sealed"
down_revision = "0018_user_name"
branch_labels = None
depends_on = None

# (plaintext column, its length before, sealed column); the places are frozen here as sealed.
SEALED = [
    ("title", 200, "title_sealed"),
    ("legal_basis", 500, "legal_basis_sealed"),
]


def upgrade() -> None:
    for _, _, sealed in SEALED:
        op.add_column("review", sa.Column(sealed, sa.LargeBinary(), nullable=True))
    _seal_existing_rows()
    for plain, _, _ in SEALED:
        op.drop_column("review", plain)


def _seal_existing_rows() -> None:
    bind = op.get_bind()
    vault: Vault | None = context.config.attributes.get("vault")
    rows = bind.execute(
        sa.text("SELECT id, code, state, title, legal_basis FROM review ORDER BY id")
    ).all()
    for row_id, review_code, state, *values in rows:
        if state == "destroyed":
            continue  # nothing to keep: the review's key, and with it its texts, is gone
        if vault is None:
            raise MigrationRefused(
                "review.title and review.legal_basis hold text to seal under each review's key: "
                "run `portal init`, which opens the key service for this migration"
            )
        sealed_values: dict[str, bytes | None] = {}
        for (_, _, sealed), value in zip(SEALED, values, strict=True):
            place = TextPlace(review=review_code, table="review", column=sealed, row=str(row_id))
            try:
                sealed_values[sealed] = None if value is None else vault.seal_text(place, value)
            except KeyDestroyed:
                # A backup restored after its review was destroyed: the key is gone, and so is
                # the text; it is not kept in plain.
                sealed_values[sealed] = None
            except KeyNotFound:
                raise MigrationRefused(
                    f"review {review_code} has no key in the key service: is it the one this "
                    "installation was made with (PORTAL_KMS or PORTAL_KEY_DIR)?"
                ) from None
        bind.execute(
            sa.text(
                "UPDATE review SET title_sealed = :title, legal_basis_sealed = :basis "
                "WHERE id = :id"
            ),
            {
                "title": sealed_values["title_sealed"],
                "basis": sealed_values["legal_basis_sealed"],
                "id": row_id,
            },
        )


def downgrade() -> None:
    # The plaintext is not put back: a downgrade must not undo an erasure. Both become
    # "(sealed)" so that the older code still runs.
    for plain, length, sealed in SEALED:
        op.add_column("review", sa.Column(plain, sa.String(length), nullable=True))
        op.drop_column("review", sealed)
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE review SET title = '(sealed)', legal_basis = '(sealed)'"))
