"""Schemathesis as a DPO over the console's API (the shared fuzz test calls as a lead and an
uploader, to whom these routes are all "not found")."""

from __future__ import annotations

import pytest

from tests.portal.conftest import Exchange
from tests.portal.web.test_openapi import _exercise, live_portal  # noqa: F401 (a fixture)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_audit_api_keeps_to_its_schema_for_a_dpo(
    live_portal: str,  # noqa: F811
    exchange: Exchange,
) -> None:
    import schemathesis
    from schemathesis.core.result import Ok

    assert exchange.upload("uploader", b"Minutes of the meeting.\n" * 10).status_code == 201
    schema = schemathesis.openapi.from_url(f"{live_portal}/api/v1/openapi.json")
    failures: list[str] = []
    calls: dict[int, int] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        if operation.path.startswith("/api/v1/audit/"):
            _exercise(
                operation.label, operation.as_strategy(), exchange.tokens["dpo"], calls, failures
            )
    assert not failures, "\n".join(failures[:10])
    assert sum(calls.values()) > 50 and calls.get(200, 0) > 10, calls
