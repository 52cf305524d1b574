"""Migration 0016_sealed_text on a database that holds rows: it seals them and drops the plaintext.

The rows are made by the portal at the newest schema, the schema is taken back to 0015 (whose
plaintext columns are then filled as the old code filled them), and ``upgrade_database`` is run
again, as ``portal init`` runs it on an installation being upgraded. SQLite and PostgreSQL.
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

TITLE = "Records for Callum MacLeod"
INSTRUCTIONS = "Callum's plan and the last two reviews."
ORDER = "CO/2027/0142"


def back_to_0015_with_plaintext(engine: Engine, request_id: int, hold_id: int) -> None:
    config = migrate._config()
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, "0015_audit_epoch")
        connection.execute(
            text("UPDATE records_request SET title = :t, instructions = :i WHERE id = :id"),
            {"t": TITLE, "i": INSTRUCTIONS, "id": request_id},
        )
        connection.execute(
            text("UPDATE destruction_hold SET order_reference = :o WHERE id = :id"),
            {"o": ORDER, "id": hold_id},
        )
    assert current_revision(engine) == "0015_audit_epoch"


def sealed_columns(
    engine: Engine, request_id: int, hold_id: int
) -> tuple[bytes | None, bytes | None, bytes | None]:
    with engine.connect() as connection:
        title, instructions = connection.execute(
            text("SELECT title_sealed, instructions_sealed FROM records_request WHERE id = :id"),
            {"id": request_id},
        ).one()
        (order,) = connection.execute(
            text("SELECT order_reference_sealed FROM destruction_hold WHERE id = :id"),
            {"id": hold_id},
        ).one()
    return title, instructions, order


@pytest.fixture
def rows(exchange: Exchange) -> Iterator[tuple[Engine, Vault, int, int]]:
    held = exchange.client.post(
        "/api/v1/holds",
        json={"review": "SWG24", "reason": "legal", "order_reference": "X-1"},
        headers=exchange.tokens["dpo"],
    )
    assert held.status_code == 201, held.text
    engine = make_engine(exchange.world.settings.database_url)
    back_to_0015_with_plaintext(engine, exchange.request_id, held.json()["id"])
    yield engine, open_vault(exchange.world.settings), exchange.request_id, held.json()["id"]
    engine.dispose()


def test_existing_rows_are_sealed_and_the_plaintext_dropped(
    rows: tuple[Engine, Vault, int, int], exchange: Exchange
) -> None:
    engine, vault, request_id, hold_id = rows
    assert upgrade_database(engine, vault=vault) == ("0015_audit_epoch", head_revision())
    with engine.connect() as connection:
        for table, column in [
            ("records_request", "title"),
            ("records_request", "instructions"),
            ("destruction_hold", "order_reference"),
        ]:
            names = {c["name"] for c in engine.dialect.get_columns(connection, table)}
            assert column not in names and f"{column}_sealed" in names
    title, instructions, order = sealed_columns(engine, request_id, hold_id)
    assert title is not None and instructions is not None and order is not None
    assert b"Callum" not in title + instructions and ORDER.encode() not in order
    place = text_place("SWG24", "records_request", "title_sealed", request_id)
    assert vault.open_text(place, title) == TITLE
    # The portal reads what the migration sealed, exactly as what it seals itself.
    listed = exchange.client.get("/api/v1/reviews/SWG24/requests", headers=exchange.tokens["lead"])
    assert (listed.json()["items"][0]["title"], listed.json()["items"][0]["instructions"]) == (
        TITLE,
        INSTRUCTIONS,
    )
    holds = exchange.client.get("/api/v1/holds", headers=exchange.tokens["dpo"]).json()["items"]
    assert holds[0]["order_reference"] == ORDER
    assert upgrade_database(engine, vault=vault) == (head_revision(), head_revision())


def test_without_the_key_service_it_refuses_and_changes_nothing(
    rows: tuple[Engine, Vault, int, int],
) -> None:
    engine, vault, request_id, _ = rows
    with pytest.raises(MigrationRefused, match="portal init"):
        upgrade_database(engine)
    assert current_revision(engine) == "0015_audit_epoch"
    with engine.connect() as connection:
        kept = connection.execute(
            text("SELECT title FROM records_request WHERE id = :id"), {"id": request_id}
        ).scalar_one()
    assert kept == TITLE  # rolled back whole: still the old schema, nothing half-sealed
    assert upgrade_database(engine, vault=vault)[1] == head_revision()


def test_rows_of_a_destroyed_review_get_no_text(rows: tuple[Engine, Vault, int, int]) -> None:
    engine, vault, request_id, hold_id = rows
    with engine.begin() as connection:
        connection.execute(text("UPDATE review SET state = 'destroyed'"))
    vault.destroy_review("SWG24")
    upgrade_database(engine, vault=vault)
    assert sealed_columns(engine, request_id, hold_id) == (None, None, None)


def test_a_backup_restored_after_its_review_was_destroyed_keeps_no_text(
    rows: tuple[Engine, Vault, int, int],
) -> None:
    """The rows say the review is open; the key service destroyed its key since the backup."""
    engine, vault, request_id, hold_id = rows
    vault.destroy_review("SWG24")
    assert upgrade_database(engine, vault=vault)[1] == head_revision()
    assert sealed_columns(engine, request_id, hold_id) == (None, None, None)
