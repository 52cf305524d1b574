"""Migration 0019_review_sealed: a review's title and legal basis sealed, the plaintext dropped.

As for 0016 (tests/portal/test_migration_sealed_text.py): the rows are made by the portal at the
newest schema, the schema is taken back to 0018 (whose plaintext columns are then filled as the
old code filled them), and ``upgrade_database`` is run again. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Engine

from portal import migrate
from portal.blobs import open_vault
from portal.db import make_engine
from portal.migrate import MigrationRefused, current_revision, head_revision, upgrade_database
from portal.sealing import text_place
from storage import Vault
from tests.portal.conftest import Exchange

TITLE = "Thematic review: the Mackenzie children"
BASIS = "Section 53, asked for by Mrs Mackenzie"
BEFORE = "0018_user_name"


def back_to_0018_with_plaintext(engine: Engine) -> None:
    config = migrate._config()
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, BEFORE)
        kept = connection.execute(text("SELECT title, legal_basis FROM review")).one()
        assert tuple(kept) == ("(sealed)", "(sealed)")  # a downgrade never puts plaintext back
        connection.execute(
            text("UPDATE review SET title = :t, legal_basis = :b WHERE code = 'SWG24'"),
            {"t": TITLE, "b": BASIS},
        )
    assert current_revision(engine) == BEFORE


def sealed_columns(engine: Engine) -> tuple[int, bytes | None, bytes | None]:
    with engine.connect() as connection:
        row_id, title, basis = connection.execute(
            text("SELECT id, title_sealed, legal_basis_sealed FROM review WHERE code = 'SWG24'")
        ).one()
    return row_id, title, basis


@pytest.fixture
def rows(exchange: Exchange) -> Iterator[tuple[Engine, Vault]]:
    engine = make_engine(exchange.world.settings.database_url)
    back_to_0018_with_plaintext(engine)
    yield engine, open_vault(exchange.world.settings)
    engine.dispose()


def test_existing_reviews_are_sealed_and_the_plaintext_dropped(
    rows: tuple[Engine, Vault], exchange: Exchange
) -> None:
    engine, vault = rows
    assert upgrade_database(engine, vault=vault) == (BEFORE, head_revision())
    with engine.connect() as connection:
        names = {c["name"] for c in engine.dialect.get_columns(connection, "review")}
    assert {"title", "legal_basis"}.isdisjoint(names)
    assert {"title_sealed", "legal_basis_sealed"} <= names
    row_id, title, basis = sealed_columns(engine)
    assert title is not None and basis is not None
    assert b"Mackenzie" not in title + basis
    place = text_place("SWG24", "review", "title_sealed", row_id)
    assert vault.open_text(place, title) == TITLE
    # The portal reads what the migration sealed, exactly as what it seals itself.
    shown = exchange.client.get("/api/v1/reviews/SWG24", headers=exchange.tokens["lead"]).json()
    assert (shown["title"], shown["legal_basis"]) == (TITLE, BASIS)
    assert upgrade_database(engine, vault=vault) == (head_revision(), head_revision())


def test_without_the_key_service_it_refuses_and_changes_nothing(
    rows: tuple[Engine, Vault],
) -> None:
    engine, vault = rows
    with pytest.raises(MigrationRefused, match="portal init"):
        upgrade_database(engine)
    assert current_revision(engine) == BEFORE
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT title FROM review")).scalar_one()
    assert kept == TITLE  # rolled back whole: nothing half-sealed
    assert upgrade_database(engine, vault=vault)[1] == head_revision()


def test_a_destroyed_review_gets_no_text(rows: tuple[Engine, Vault]) -> None:
    engine, vault = rows
    with engine.begin() as connection:
        connection.execute(text("UPDATE review SET state = 'destroyed'"))
    vault.destroy_review("SWG24")
    upgrade_database(engine, vault=vault)
    assert sealed_columns(engine)[1:] == (None, None)


def test_a_backup_restored_after_its_review_was_destroyed_keeps_no_text(
    rows: tuple[Engine, Vault],
) -> None:
    engine, vault = rows
    vault.destroy_review("SWG24")
    assert upgrade_database(engine, vault=vault)[1] == head_revision()
    assert sealed_columns(engine)[1:] == (None, None)
