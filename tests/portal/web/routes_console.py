"""Access-table rows for the DPO console (merged into tests/portal/web/test_routes.py).

DPOs only: every other role gets 404 (401 without a token on the API, 303 to sign in for a page).
Against the open review SWG24 with one uploaded document: a DPO's empty forms are refused (400),
early destruction of an open review is a conflict (409), a made-up hold or alert is not found (404), a
mistyped certificate reference is invalid (400). Nothing is destroyed.
"""

from __future__ import annotations

from tests.portal.web.route_rules import api_for, page_for

MISTYPED = "0000-0000-0001"  # the check character is wrong: "invalid reference"

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("GET", "/api/v1/audit/events"): ("/api/v1/audit/events", api_for("dpo")),
    ("GET", "/api/v1/audit/export"): ("/api/v1/audit/export?format=csv", api_for("dpo")),
    # A form body is not an export file: refused.
    ("POST", "/api/v1/audit/verify"): ("/api/v1/audit/verify", api_for("dpo", ok=400)),
    ("GET", "/api/v1/audit/documents/{ref}"): (
        "/api/v1/audit/documents/{document}",
        api_for("dpo"),
    ),
    ("GET", "/api/v1/audit/users/{user_id}"): (
        "/api/v1/audit/users/{victim_user}",
        api_for("dpo"),
    ),
    ("GET", "/api/v1/audit/anomalies"): ("/api/v1/audit/anomalies", api_for("dpo")),
    ("GET", "/api/v1/audit/alerts"): ("/api/v1/audit/alerts", api_for("dpo")),
    # A form body is not JSON: refused before the alert is looked for.
    ("POST", "/api/v1/audit/alerts/{alert_id}/acknowledge"): (
        "/api/v1/audit/alerts/999999/acknowledge",
        api_for("dpo", ok=400),
    ),
    ("GET", "/api/v1/cases/{reference}/subject-access"): (
        "/api/v1/cases/{case}/subject-access",
        api_for("dpo"),
    ),
    ("GET", "/console"): ("/console", page_for("dpo")),
    ("GET", "/console/audit"): ("/console/audit", page_for("dpo")),
    ("GET", "/console/audit/export"): ("/console/audit/export", page_for("dpo")),
    ("GET", "/console/audit/verify"): ("/console/audit/verify", page_for("dpo")),
    ("POST", "/console/audit/verify"): ("/console/audit/verify", page_for("dpo")),
    ("GET", "/console/audit/receipt"): ("/console/audit/receipt", page_for("dpo")),
    ("POST", "/console/audit/verify-file"): (
        "/console/audit/verify-file",
        page_for("dpo", ok=400),
    ),
    ("GET", "/console/documents"): ("/console/documents", page_for("dpo", ok=400)),
    ("GET", "/console/documents/{ref}"): ("/console/documents/{document}", page_for("dpo")),
    ("GET", "/console/users/{user_id}"): ("/console/users/{victim_user}", page_for("dpo")),
    ("GET", "/console/anomalies"): ("/console/anomalies", page_for("dpo")),
    ("GET", "/console/alerts"): ("/console/alerts", page_for("dpo")),
    ("POST", "/console/alerts/{alert_id}/acknowledge"): (
        "/console/alerts/999999/acknowledge",
        page_for("dpo", ok=404),
    ),
    ("GET", "/console/subject-access"): ("/console/subject-access?case={case}", page_for("dpo")),
    ("GET", "/console/subject-access/export"): (
        "/console/subject-access/export?case={case}&format=csv",
        page_for("dpo"),
    ),
    ("GET", "/console/destruction"): ("/console/destruction", page_for("dpo")),
    ("POST", "/console/destruction/{code}/request"): (
        "/console/destruction/{review}/request",
        page_for("dpo", ok=409),
    ),
    ("POST", "/console/destruction/{code}/approve"): (
        "/console/destruction/{review}/approve",
        page_for("dpo", ok=409),
    ),
    ("GET", "/console/holds"): ("/console/holds", page_for("dpo")),
    ("POST", "/console/holds"): ("/console/holds", page_for("dpo", ok=400)),
    ("POST", "/console/holds/{hold_id}/lift"): (
        "/console/holds/999999/lift",
        page_for("dpo", ok=404),
    ),
    ("GET", "/console/certificates"): ("/console/certificates", page_for("dpo")),
    ("GET", "/console/certificates/{ref}/signed"): (
        f"/console/certificates/{MISTYPED}/signed",
        page_for("dpo", ok=400),
    ),
}
