"""Every JSON answer of the API has the shape the OpenAPI document gives its operation and status.

One walk through the whole API as the people who use it (a lead, an uploader, a DPO, an
administrator), each answer validated against the generated schema (tests/portal/openapi_shapes):
the document is checked against what the handlers really write, not only against the route list.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from portal.runtime import build_runtime
from portal.worker import Worker
from tests.portal.conftest import Exchange, cheap_hasher
from tests.portal.web.openapi_shapes import ShapeCheck

CONTENT = b"Minutes of the meeting of the review team.\n" * 20

# JSON successes the walk cannot reach without a worker or a mail relay: an alert to acknowledge.
UNREACHED = {("post", "/api/v1/audit/alerts/{alert_id}/acknowledge", 200)}


def _tus_metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_every_json_answer_keeps_to_the_schema_of_its_operation(exchange: Exchange) -> None:
    client, tokens = exchange.client, exchange.tokens
    lead, uploader, dpo, admin = (tokens[w] for w in ("lead", "uploader", "dpo", "admin"))
    shapes = ShapeCheck()
    shapes.watch(client)

    def ok(response: Any, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        json = response.headers.get("content-type", "").startswith("application/json")
        return response.json() if json else None

    # Accounts
    ok(client.get("/api/v1/me", headers=uploader))
    listed = ok(client.get("/api/v1/tokens", headers=uploader))
    own_token = listed["items"][0]["id"]

    # Reviews, requests, cases
    ok(client.get("/api/v1/reviews", headers=lead))
    ok(client.get("/api/v1/reviews/SWG24", headers=uploader))
    created = {
        "code": "SWG25",
        "title": "A second review",
        "legal_basis": "The same basis.",
        "opens_on": "2026-11-01",
        "closes_on": "2027-01-31",
        "retention_days": 30,
        "organisations": ["aberdeen-city"],
    }
    ok(client.post("/api/v1/reviews", json=created, headers=lead), 201)
    ok(client.post("/api/v1/reviews/SWG25/open", json={}, headers=lead))
    ok(client.post("/api/v1/reviews/SWG25/close", json={}, headers=lead))
    ok(
        client.post(
            "/api/v1/reviews/SWG24/organisations",
            json={"organisation": "dundee-city"},
            headers=lead,
        )
    )
    ok(client.get("/api/v1/reviews/SWG24/requests", headers=uploader))
    ok(
        client.post(
            "/api/v1/reviews/SWG24/requests",
            json={"organisation": "dundee-city", "title": "Minutes", "due_on": "2026-12-20"},
            headers=lead,
        ),
        201,
    )
    case = ok(client.post("/api/v1/reviews/SWG24/cases", headers=uploader), 201)["reference"]
    ok(client.get("/api/v1/reviews/SWG24/cases", headers=uploader))

    # Documents
    reference = ok(exchange.upload("uploader", CONTENT, case=str(case)), 201)["reference"]
    ok(client.get("/api/v1/reviews/SWG24/documents", headers=lead))
    ok(client.get(f"/api/v1/documents/{reference}", headers=lead))
    ok(client.get(f"/api/v1/documents/{reference}/receipt", headers=uploader))
    ok(client.get(f"/api/v1/documents/{reference}/content", headers=lead))
    spare = ok(exchange.upload("uploader", CONTENT + b"2"), 201)["reference"]
    ok(
        client.post(
            f"/api/v1/documents/{spare}/withdraw", json={"reason": "wrong_file"}, headers=uploader
        )
    )

    # Resumable uploads
    tus = {"Tus-Resumable": "1.0.0"}
    ok(client.options("/api/v1/uploads", headers={**tus, **uploader}), 204)
    creation = client.post(
        "/api/v1/uploads",
        headers={
            **tus,
            **uploader,
            "Upload-Length": str(len(CONTENT)),
            "Upload-Metadata": _tus_metadata(filename="part.txt", review="SWG24"),
        },
    )
    ok(creation, 201)
    upload = creation.headers["location"]
    ok(client.get(upload, headers=uploader))
    digest = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()
    sent = client.patch(
        upload,
        content=CONTENT,
        headers={
            **tus,
            **uploader,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Upload-Checksum": f"sha256 {digest}",
        },
    )
    ok(sent, 204)
    ok(client.get(upload, headers=uploader))
    cancelled = client.post(
        "/api/v1/uploads",
        headers={
            **tus,
            **uploader,
            "Upload-Length": "10",
            "Upload-Metadata": _tus_metadata(filename="other.txt", review="SWG24"),
        },
    )
    ok(client.delete(cancelled.headers["location"], headers={**tus, **uploader}), 204)

    # Destruction
    ok(client.get("/api/v1/destruction/schedule", headers=dpo))
    hold = ok(
        client.post(
            "/api/v1/holds",
            json={"review": "SWG24", "case": case, "reason": "legal", "order_reference": "C/1"},
            headers=dpo,
        ),
        201,
    )
    ok(client.get("/api/v1/holds", headers=dpo))
    ok(client.post(f"/api/v1/holds/{hold['id']}/lift", json={"reason": "superseded"}, headers=dpo))
    ok(client.get("/api/v1/holds", params={"include_lifted": "true"}, headers=dpo))
    ok(client.post("/api/v1/reviews/SWG25/destruction/request", headers=dpo), 201)
    ok(client.post("/api/v1/reviews/SWG25/destruction/approve", headers=admin))
    world = exchange.world
    worker = Worker(
        build_runtime(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    )
    assert len(worker.run_round(force=True).destruction.report.certificates) == 1  # SWG25
    ok(
        client.get(
            "/api/v1/destruction/schedule", params={"include_destroyed": "true"}, headers=dpo
        )
    )
    certificates = ok(client.get("/api/v1/certificates", headers=dpo))["items"]
    ok(client.get(f"/api/v1/certificates/{certificates[0]['reference']}", headers=dpo))
    ok(client.get("/api/v1/reviews/SWG25", headers=lead))  # destroyed: its title erased
    ok(client.get("/api/v1/certificates/0000-0000-0001", headers=dpo), 400)

    # The console
    ok(client.get("/api/v1/audit/events", params={"limit": "5"}, headers=dpo))
    ok(client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=dpo))
    ok(client.post("/api/v1/audit/verify", headers=dpo))
    ok(client.get(f"/api/v1/audit/documents/{reference}", headers=dpo))
    uploader_id = exchange.world.people["uploader"].user_id
    ok(client.get(f"/api/v1/audit/users/{uploader_id}", headers=dpo))
    ok(client.get(f"/api/v1/cases/{case}/subject-access", headers=dpo))
    ok(client.get("/api/v1/audit/anomalies", headers=dpo))
    ok(client.get("/api/v1/audit/alerts", headers=dpo))
    ok(client.post("/api/v1/audit/alerts/999999/acknowledge", headers=dpo), 404)

    # Errors have their shape too; and the token goes last.
    ok(client.get("/api/v1/documents/0000-0000-0000", headers=uploader), 404)
    ok(client.delete(f"/api/v1/tokens/{own_token}", headers=uploader), 204)

    assert not shapes.failures, "\n".join(shapes.failures)
    successes = {(m, t, s) for m, t, s in shapes.seen if 200 <= s < 300}
    assert shapes.json_operations() - successes <= UNREACHED
