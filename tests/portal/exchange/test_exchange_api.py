"""The exchange through its API: upload, scan, reference, retrieve, withdraw."""

from __future__ import annotations

import hashlib

from portal.clamd_local import EICAR
from tests.portal.conftest import Exchange

MINUTES = (
    b"Minutes of the case conference held on 3 March.\nAttendees: social worker, team lead.\n" * 20
)


def test_upload_scan_and_download(exchange: Exchange) -> None:
    uploaded = exchange.upload(
        "uploader", MINUTES, "Case conference minutes.txt", request=str(exchange.request_id)
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["state"] in ("pending_scan", "available")
    assert body["sha256"] == hashlib.sha256(MINUTES).hexdigest() and body["size"] == len(MINUTES)
    assert body["filename"] == "Case conference minutes.txt"
    reference = body["reference"]
    meta = exchange.client.get(
        f"/api/v1/documents/{reference}", headers=exchange.tokens["inspector"]
    )
    assert meta.status_code == 200 and meta.json()["state"] == "available", meta.text
    assert meta.json()["scan"]["verdict"] == "clean"
    content = exchange.client.get(
        f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
    )
    assert content.status_code == 200
    assert content.content == MINUTES
    assert content.headers["content-disposition"].startswith("attachment;")
    assert (
        "filename*=UTF-8''Case%20conference%20minutes.txt" in content.headers["content-disposition"]
    )
    # The uploader sees the metadata and receipt, never the content.
    assert (
        exchange.client.get(
            f"/api/v1/documents/{reference}", headers=exchange.tokens["uploader"]
        ).status_code
        == 200
    )
    assert (
        exchange.client.get(
            f"/api/v1/documents/{reference}/content", headers=exchange.tokens["uploader"]
        ).status_code
        == 404
    )
    # Another organisation's uploader, the DPO and the admin never see content.
    assert (
        exchange.client.get(
            f"/api/v1/documents/{reference}", headers=exchange.tokens["other_uploader"]
        ).status_code
        == 404
    )
    for who in ("dpo", "admin", "other_uploader"):
        assert (
            exchange.client.get(
                f"/api/v1/documents/{reference}/content", headers=exchange.tokens[who]
            ).status_code
            == 404
        )


def test_eicar_is_rejected_and_never_downloadable(exchange: Exchange) -> None:
    uploaded = exchange.upload("uploader", EICAR, "notes.txt")
    assert uploaded.status_code == 201, uploaded.text
    reference = uploaded.json()["reference"]
    meta = exchange.client.get(
        f"/api/v1/documents/{reference}", headers=exchange.tokens["uploader"]
    ).json()
    assert meta["state"] == "rejected"
    assert meta["scan"]["signature"].startswith("Eicar-Test-Signature")
    content = exchange.client.get(
        f"/api/v1/documents/{reference}/content", headers=exchange.tokens["inspector"]
    )
    # Told apart from "not scanned yet" (issue 18, item 8): it was scanned, and found infected.
    assert content.status_code == 400 and content.json()["error"]["code"] == "rejected"
    assert "rejected: infected (Eicar-Test-Signature" in content.json()["error"]["message"]


def test_wrong_check_character_is_400_and_unknown_is_404(exchange: Exchange) -> None:
    reference = exchange.upload("uploader", MINUTES).json()["reference"]
    last = reference[-1]
    wrong = reference[:-1] + ("0" if last != "0" else "1")
    bad = exchange.client.get(f"/api/v1/documents/{wrong}", headers=exchange.tokens["inspector"])
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_reference"
    from portal.references import new_reference

    missing = exchange.client.get(
        f"/api/v1/documents/{new_reference()}", headers=exchange.tokens["inspector"]
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
