"""Access-table rows for the exchange's JSON API (see tests/portal/web/test_routes.py).

The table runs against an open review SWG24 ({review}) that asks the uploader's organisation for
records, with the inspector on its team, and {document}: a clean document the uploader sent.
Bodies are deliberately empty or malformed: a caller the rule lets through gets 400 (it reached the
handler), one it stops gets 404 (or 401 without a token), and nothing changes.
"""

from __future__ import annotations

from tests.portal.web.route_rules import SIGNED_IN, api_for

TEAM = ("inspector", "lead")
EVERY_SIGNED_IN = api_for(*SIGNED_IN)

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("GET", "/api/v1/reviews"): ("/api/v1/reviews", EVERY_SIGNED_IN),
    ("POST", "/api/v1/reviews"): ("/api/v1/reviews", api_for("lead", "admin", ok=400)),
    ("GET", "/api/v1/reviews/{code}"): ("/api/v1/reviews/{review}", EVERY_SIGNED_IN),
    ("GET", "/api/v1/reviews/{code}/requests"): (
        "/api/v1/reviews/{review}/requests",
        EVERY_SIGNED_IN,
    ),
    ("POST", "/api/v1/reviews/{code}/requests"): (
        "/api/v1/reviews/{review}/requests",
        api_for("lead", "admin", ok=400),
    ),
    ("GET", "/api/v1/reviews/{code}/cases"): ("/api/v1/reviews/{review}/cases", EVERY_SIGNED_IN),
    ("POST", "/api/v1/reviews/{code}/cases"): (
        "/api/v1/reviews/{review}/cases",
        api_for("uploader", ok=400),  # the table posts a form: it is not a JSON body
    ),
    ("GET", "/api/v1/reviews/{code}/documents"): (
        "/api/v1/reviews/{review}/documents",
        EVERY_SIGNED_IN,
    ),
    # The table posts a form: an upload's body must be application/octet-stream.
    ("POST", "/api/v1/reviews/{code}/documents"): (
        "/api/v1/reviews/{review}/documents",
        api_for("uploader", *TEAM, ok=415),
    ),
    ("POST", "/api/v1/reviews/{code}/{action}"): (
        "/api/v1/reviews/{review}/members",
        api_for("lead", "admin", ok=400),
    ),
    ("GET", "/api/v1/documents/{ref}"): (
        "/api/v1/documents/{document}",
        api_for("uploader", *TEAM, "dpo"),
    ),
    ("GET", "/api/v1/documents/{ref}/receipt"): (
        "/api/v1/documents/{document}/receipt",
        api_for("uploader", *TEAM, "dpo"),
    ),
    ("GET", "/api/v1/documents/{ref}/content"): (
        "/api/v1/documents/{document}/content",
        api_for(*TEAM),
    ),
    ("POST", "/api/v1/documents/{ref}/withdraw"): (
        "/api/v1/documents/{document}/withdraw",
        api_for("uploader", *TEAM, ok=400),
    ),
}
