"""Backup and restore (docs/operations.md): a database from before a review's destruction, with
the key service after it."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from portal.blobs import open_vault
from tests.portal.conftest import Exchange

DESTROYED = "SWG24"  # the exchange fixture's review


def _upload(exchange: Exchange, review: str, body: bytes, name: str) -> str:
    answer = exchange.client.post(
        f"/api/v1/reviews/{review}/documents",
        content=body,
        headers={
            **exchange.tokens["uploader"],
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["reference"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_document_whose_review_key_was_destroyed_answers_410_not_500(
    exchange: Exchange,
) -> None:
    """The rows of a restored database from before the destruction, and the key service after it:
    the download says "destroyed" (as after a destruction run), never 500, never a byte."""
    body = b"Chronology of the case.\n" * 30
    reference = _upload(exchange, DESTROYED, body, "chronology.txt")
    inspector = exchange.tokens["inspector"]
    path = f"/api/v1/documents/{reference}"
    assert exchange.client.get(f"{path}/content", headers=inspector).content == body
    open_vault(exchange.world.settings).keystore.destroy_review_key(DESTROYED)

    answer = exchange.client.get(f"{path}/content", headers=inspector)
    assert answer.status_code == 410, answer.text
    assert answer.json()["error"]["code"] == "destroyed"
    assert reference in answer.json()["error"]["message"]
    listed = exchange.client.get(f"/api/v1/reviews/{DESTROYED}/documents", headers=inspector)
    assert listed.status_code == 200 and listed.json()["items"][0]["filename"] is None
