"""Access-table rows for destruction (merged into tests/portal/web/test_routes.py).

The table runs against the open review SWG24: nothing can be destroyed, so a caller the rule lets
through gets 409 (early destruction of an open review), 400 (a form body where JSON is expected,
or a mistyped certificate reference) or 404 (a made-up hold); one it stops gets 404 (401 without
a token, 303 to sign in for a page). Nothing changes.
"""

from __future__ import annotations

from tests.portal.web.route_rules import api_for, page_for

WATCHERS = ("lead", "dpo")
MISTYPED = "0000-0000-0001"  # the check character is wrong: "invalid reference"

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("GET", "/api/v1/destruction/schedule"): ("/api/v1/destruction/schedule", api_for(*WATCHERS)),
    ("GET", "/api/v1/holds"): ("/api/v1/holds", api_for(*WATCHERS)),
    ("POST", "/api/v1/holds"): ("/api/v1/holds", api_for(*WATCHERS, ok=400)),
    ("POST", "/api/v1/holds/{hold_id}/lift"): (
        "/api/v1/holds/999999/lift",
        api_for("dpo", ok=400),  # the body (a lift reason) is checked first
    ),
    ("POST", "/api/v1/reviews/{code}/destruction/request"): (
        "/api/v1/reviews/{review}/destruction/request",
        api_for("dpo", ok=400),  # the table posts a form: it is not a JSON body
    ),
    ("POST", "/api/v1/reviews/{code}/destruction/approve"): (
        "/api/v1/reviews/{review}/destruction/approve",
        api_for("dpo", "admin", ok=400),  # a form is not a JSON body
    ),
    ("GET", "/api/v1/certificates"): ("/api/v1/certificates", api_for(*WATCHERS)),
    ("GET", "/api/v1/certificates/{ref}"): (
        f"/api/v1/certificates/{MISTYPED}",
        api_for(*WATCHERS, ok=400),
    ),
    ("GET", "/destruction/certificates/{ref}"): (
        f"/destruction/certificates/{MISTYPED}",
        page_for(*WATCHERS, ok=400),
    ),
}
