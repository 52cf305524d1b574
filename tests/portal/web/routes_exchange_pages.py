"""Access-table rows for the exchange's pages (merged into tests/portal/web/test_routes.py's TABLE).

Same world as the API rows: an open review SWG24 ({review}) asking the uploader's organisation for
records, the inspector on its team, and {document}, a clean record the uploader sent. Forms are
posted empty (a CSRF token only): a caller the rule lets through gets the form's own error (400) or
its harmless result, one it stops gets 404, and an anonymous caller is sent to sign in (303).
"""

from __future__ import annotations

from tests.portal.web.route_rules import SIGNED_IN, page_for

TEAM = ("inspector", "lead")
UPLOADERS = ("uploader", *TEAM)
METADATA = ("uploader", *TEAM, "dpo")

LEADS = ("lead", "admin")

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {
    ("GET", "/"): ("/", page_for(*SIGNED_IN)),
    ("GET", "/reviews/{code}"): ("/reviews/{review}", page_for(*SIGNED_IN)),
    # Issues a new case reference for the uploader's organisation, then back to the review.
    ("POST", "/reviews/{code}/cases"): ("/reviews/{review}/cases", page_for("uploader", ok=303)),
    ("GET", "/reviews/{code}/upload"): ("/reviews/{review}/upload", page_for(*UPLOADERS)),
    # No file in the form: "choose a file".
    ("POST", "/reviews/{code}/upload"): (
        "/reviews/{review}/upload",
        page_for(*UPLOADERS, ok=400),
    ),
    # The home page's "find a document" box, sent empty: "enter a reference".
    ("GET", "/documents"): ("/documents", page_for(*SIGNED_IN, ok=400)),
    ("GET", "/documents/{ref}"): ("/documents/{document}", page_for(*METADATA)),
    ("GET", "/documents/{ref}/receipt"): ("/documents/{document}/receipt", page_for(*METADATA)),
    ("GET", "/documents/{ref}/download"): ("/documents/{document}/download", page_for(*TEAM)),
    # Only the organisation that sent a record may withdraw it (the team withdraws its notes).
    ("GET", "/documents/{ref}/withdraw"): ("/documents/{document}/withdraw", page_for("uploader")),
    # No reason chosen: "choose why".
    ("POST", "/documents/{ref}/withdraw"): (
        "/documents/{document}/withdraw",
        page_for("uploader", ok=400),
    ),
    # Managing reviews: the review's lead (SWG24's) and administrators. Empty forms: "enter ...".
    ("GET", "/reviews/new"): ("/reviews/new", page_for(*LEADS)),
    ("POST", "/reviews/new"): ("/reviews/new", page_for(*LEADS, ok=400)),
    ("GET", "/reviews/{code}/manage"): ("/reviews/{review}/manage", page_for(*LEADS)),
    ("POST", "/reviews/{code}/manage/organisations"): (
        "/reviews/{review}/manage/organisations",
        page_for(*LEADS, ok=400),
    ),
    ("POST", "/reviews/{code}/manage/members"): (
        "/reviews/{review}/manage/members",
        page_for(*LEADS, ok=400),
    ),
    ("POST", "/reviews/{code}/manage/requests"): (
        "/reviews/{review}/manage/requests",
        page_for(*LEADS, ok=400),
    ),
    # SWG24 is open already: "only a draft can be opened".
    ("POST", "/reviews/{code}/manage/open"): (
        "/reviews/{review}/manage/open",
        page_for(*LEADS, ok=400),
    ),
    ("GET", "/reviews/{code}/manage/close"): ("/reviews/{review}/manage/close", page_for(*LEADS)),
    # Not confirmed: "tick the box".
    ("POST", "/reviews/{code}/manage/close"): (
        "/reviews/{review}/manage/close",
        page_for(*LEADS, ok=400),
    ),
}
