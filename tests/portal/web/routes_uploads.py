"""Access-table rows for the resumable upload endpoint (merged into tests/portal/web/test_routes.py).

Each row: (METHOD, routed path) -> (path to request, with {placeholders} filled by the table test,
{who: expected status}). The upload id is made up: a caller the rule lets through reaches the
handler and gets 412 (no Tus-Resumable header: the table sends none) or 404 (no such upload);
one it stops gets 404 (or 401 without a token). Nothing changes.
"""

from __future__ import annotations

from tests.portal.web.route_rules import api_for

UPLOADERS = ("uploader", "inspector", "lead")
MADE_UP = "/api/v1/uploads/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("OPTIONS", "/api/v1/uploads"): ("/api/v1/uploads", api_for(*UPLOADERS, ok=204)),
    ("POST", "/api/v1/uploads"): ("/api/v1/uploads", api_for(*UPLOADERS, ok=412)),
    ("GET", "/api/v1/uploads/{upload_id}"): (MADE_UP, api_for(*UPLOADERS, ok=404)),
    ("PATCH", "/api/v1/uploads/{upload_id}"): (MADE_UP, api_for(*UPLOADERS, ok=412)),
    ("DELETE", "/api/v1/uploads/{upload_id}"): (MADE_UP, api_for(*UPLOADERS, ok=412)),
}
