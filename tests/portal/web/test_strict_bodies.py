"""Every JSON body is strict (issue 16): a field a route does not take is a 400 that names it,
never dropped. `{"case": …}` on the hold API was once ignored and placed a whole-review hold.

The routes come from the OpenAPI document, which test_openapi keeps equal to the routes served:
a new route is covered here without anyone remembering to add it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from portal.web.openapi import document
from tests.portal.conftest import Exchange

EXTRA = "surplus_field"
WRITES = ("post", "put", "patch")  # a DELETE takes no body
# Placeholders for path parameters: well formed, so that nothing fails before the body is read.
PLACEHOLDER = {"code": "SWG24", "ref": "0000-0000-0000", "hold_id": "1", "alert_id": "1"}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _json_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every write that takes a JSON body, or no body at all
    (one with no field: a body with a field is refused too). Protocol routes (tus), whose
    requests are headers and raw bytes, and raw-byte uploads are not JSON routes."""
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            if method not in WRITES:
                continue
            parameters = operation.get("parameters", [])
            if any(p.get("in") == "header" and p["name"] == "Tus-Resumable" for p in parameters):
                continue
            content = operation.get("requestBody", {}).get("content", {"application/json": {}})
            if "application/json" not in content:
                continue
            yield method, path, operation


def _paths(path: str, operation: dict[str, Any]) -> list[str]:
    """The path with every placeholder filled in, once per value of an enumerated parameter."""
    choices: list[list[tuple[str, str]]] = []
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "path":
            continue
        name = parameter["name"]
        values = parameter.get("schema", {}).get("enum") or [PLACEHOLDER[name]]
        choices.append([(name, str(v)) for v in values])
    filled = []
    for combination in itertools.product(*choices):
        concrete = path
        for name, value in combination:
            concrete = concrete.replace("{" + name + "}", value)
        filled.append(concrete)
    return filled


def test_the_routes_that_take_json_are_found() -> None:
    found = {(m, p) for m, p, _ in _json_operations()}
    # A few that must be among them, so that the discovery itself is checked.
    assert {
        ("post", "/api/v1/holds"),
        ("post", "/api/v1/holds/{hold_id}/lift"),
        ("post", "/api/v1/reviews"),
        ("post", "/api/v1/reviews/{code}/{action}"),
        ("post", "/api/v1/documents/{ref}/withdraw"),
        ("post", "/api/v1/reviews/{code}/destruction/approve"),
    } <= found
    assert ("post", "/api/v1/uploads") not in found  # tus: headers, not JSON


def test_every_json_body_schema_forbids_other_fields() -> None:
    spec = document()
    components = spec["components"]["schemas"]
    for method, path, operation in _json_operations():
        body = operation.get("requestBody")
        if body is None:
            continue
        schema = _resolve(body["content"]["application/json"]["schema"], components)
        assert schema.get("additionalProperties") is False, (method, path)


def test_every_json_route_refuses_a_field_it_does_not_take_by_name(exchange: Exchange) -> None:
    client, tokens = exchange.client, exchange.tokens
    checked = 0
    for method, path, operation in _json_operations():
        for concrete in _paths(path, operation):
            answers = {
                who: client.request(
                    method.upper(), concrete, json={EXTRA: "x"}, headers=tokens[who]
                )
                for who in tokens
            }
            for who, answer in answers.items():
                assert answer.status_code < 500, (concrete, who, answer.text)
                assert not 200 <= answer.status_code < 300, (concrete, who, answer.text)
            refused = [
                a
                for a in answers.values()
                if a.status_code == 400 and a.json()["error"]["code"] == "unknown_field"
            ]
            assert refused, (concrete, {w: a.status_code for w, a in answers.items()})
            for answer in refused:
                assert f"'{EXTRA}'" in answer.json()["error"]["message"]
            checked += 1
    assert checked >= 10


def test_a_route_that_takes_no_body_still_takes_an_empty_one(exchange: Exchange) -> None:
    client, tokens = exchange.client, exchange.tokens
    case = client.post("/api/v1/reviews/SWG24/cases", headers=tokens["uploader"])
    assert case.status_code == 201, case.text
    empty = client.post("/api/v1/reviews/SWG24/cases", headers=tokens["uploader"], json={})
    assert empty.status_code == 201, empty.text
    not_object = client.post("/api/v1/reviews/SWG24/cases", headers=tokens["uploader"], json=[1])
    assert not_object.status_code == 400, not_object.text
