"""Access-table rows for this area's routes (merged into tests/portal/test_routes.py's TABLE).

Each row: (METHOD, routed path) -> (path to request, with {placeholders} filled by the table test,
{who: expected status}). Use the helpers everyone/page_for/api_for from tests.portal.route_rules.
"""

from __future__ import annotations

from tests.portal.route_rules import SIGNED_IN, api_for, everyone, page_for  # noqa: F401

ROWS: dict[tuple[str, str], tuple[str, dict[str, int]]] = {}
