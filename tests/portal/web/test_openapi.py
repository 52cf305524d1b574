"""The OpenAPI document describes exactly the API that is served, and the API keeps to it."""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from portal.web.access import RuledRoute
from portal.web.app import create_app, routes
from portal.web.openapi import document
from tests.harness.serving import serving
from tests.portal.conftest import Exchange, cheap_hasher


def _served_api() -> set[tuple[str, str]]:
    served = set()
    for item in routes():
        if (
            isinstance(item, RuledRoute)
            and item.path.startswith("/api/v1/")
            and item.path != "/api/v1/openapi.json"
        ):
            for method in item.methods or ():
                if method != "HEAD":
                    served.add((method.lower(), item.path))
    return served


def test_every_api_route_is_described_and_nothing_else() -> None:
    described = {
        (method, path)
        for path, operations in document()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete", "head", "options")
    }
    served = _served_api()
    assert served - described == set(), "routes missing from the OpenAPI document"
    assert described - served == set(), "the OpenAPI document describes routes that do not exist"


def test_every_operation_has_a_unique_operation_id_and_a_description() -> None:
    operations = [
        (method, path, operation)
        for path, methods in document()["paths"].items()
        for method, operation in methods.items()
    ]
    ids = [operation.get("operationId") for _, _, operation in operations]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids), ids
    assert len(set(ids)) == len(ids), "an operationId is used twice"
    undescribed = [(m, p) for m, p, operation in operations if not operation.get("description")]
    assert undescribed == []


def test_the_document_is_served_and_references_resolve(exchange: Exchange) -> None:
    response = exchange.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    body = response.json()
    assert body["openapi"].startswith("3.1")
    text = response.text
    for name in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
        assert name in body["components"]["schemas"], name


@pytest.fixture
def live_portal(exchange: Exchange) -> Iterator[str]:
    world = exchange.world
    app = create_app(world.settings, clock=world.clock, password_hasher=cheap_hasher())
    with serving(app) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("who", ["lead", "uploader"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_portal: str, exchange: Exchange, who: str
) -> None:
    """Schemathesis generates requests from the document for every operation."""
    import schemathesis
    from schemathesis.core.result import Ok

    @schemathesis.serializer("application/offset+octet-stream")
    def tus_chunk(ctx: Any, value: Any) -> bytes:  # tus PATCH bodies are raw bytes
        return value if isinstance(value, bytes) else str(value).encode()

    schema = schemathesis.openapi.from_url(f"{live_portal}/api/v1/openapi.json")
    failures: list[str] = []
    calls: dict[int, int] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        _exercise(operation.label, operation.as_strategy(), exchange.tokens[who], calls, failures)
    assert not failures, "\n".join(failures[:10])
    # It really exercised the API: many requests, and some of them succeeded.
    assert sum(calls.values()) > 100 and any(200 <= status < 300 for status in calls), calls


def _exercise(
    label: str, strategy: Any, headers: dict[str, str], calls: dict[int, int], failures: list[str]
) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    # In CI the examples are fixed (derandomize), so a run's verdict does not depend on luck;
    # locally each run explores new ones.
    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=bool(os.environ.get("CI")),
    )
    @given(strategy)
    def check(case: Any) -> None:
        # Half the time aim at the real review, so the handlers' deeper paths run too.
        if (
            "{code}" in case.path
            and case.path_parameters
            and zlib.crc32(str(case.path_parameters).encode()) % 2
        ):
            case.path_parameters["code"] = "SWG24"
        response = case.call(headers=headers, timeout=30)
        calls[response.status_code] = calls.get(response.status_code, 0) + 1
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except Exception as failure:  # schemathesis raises its own failure types
            failures.append(f"{label}: {type(failure).__name__}: {str(failure)[:500]}")

    check()
