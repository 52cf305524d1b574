"""Every JSON answer checked against the OpenAPI document: the schema of its operation and status.

``ShapeCheck.watch(client)`` hooks a test client; each answer from /api/v1 is matched to its
operation (the most literal path template wins: ``/reviews/{code}/requests`` over
``/reviews/{code}/{action}``), its status must be one the operation documents, and a JSON body
must validate against that status's schema (jsonschema-rs, draft 2020-12, the document's own
``components`` resolving the ``$ref``s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema_rs
from starlette.testclient import TestClient

from portal.web.openapi import document

OPERATIONS = ("get", "post", "put", "patch", "delete", "options")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal: int  # characters outside {parameters}: the more, the more specific
    spec: dict[str, Any]


def _operations(spec: dict[str, Any]) -> list[Operation]:
    found = []
    for template, operations in spec["paths"].items():
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        literal = len(re.sub(r"\{[a-z_]+\}", "", template))
        for method, operation in operations.items():
            if method in OPERATIONS:
                found.append(
                    Operation(method, template, re.compile(f"{regex}$"), literal, operation)
                )
    return sorted(found, key=lambda o: -o.literal)


@dataclass
class ShapeCheck:
    spec: dict[str, Any] = field(default_factory=document)
    seen: set[tuple[str, str, int]] = field(default_factory=set)  # (method, template, status)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._operations = _operations(self.spec)
        self._validators: dict[tuple[str, str, str], jsonschema_rs.Validator] = {}

    def watch(self, client: TestClient) -> None:
        client.event_hooks["response"] = [*client.event_hooks["response"], self.check]

    def operation(self, method: str, path: str) -> Operation | None:
        return next(
            (o for o in self._operations if o.method == method and o.pattern.match(path)), None
        )

    def check(self, response: httpx.Response) -> None:
        request = response.request
        path, method = request.url.path, request.method.lower()
        if not path.startswith("/api/v1/") or path == "/api/v1/openapi.json" or method == "head":
            return
        operation = self.operation(method, path)
        where = f"{method.upper()} {path} → {response.status_code}"
        if operation is None:
            if response.status_code not in (404, 405):  # no such route: nothing to describe
                self.failures.append(f"{where}: no operation in the document")
            return
        self.seen.add((method, operation.template, response.status_code))
        described = operation.spec["responses"].get(str(response.status_code))
        if described is None:
            self.failures.append(f"{where}: the status is not documented")
            return
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if media != "application/json":
            return
        response.read()
        content = described.get("content", {})
        if "application/json" not in content:
            self.failures.append(f"{where}: JSON where the document describes {sorted(content)}")
            return
        validator = self._validator(method, operation.template, str(response.status_code))
        for error in validator.iter_errors(response.json()):
            path_in_body = "/".join(map(str, error.instance_path))
            self.failures.append(f"{where}: at /{path_in_body}: {error.message[:300]}")

    def _validator(self, method: str, template: str, status: str) -> jsonschema_rs.Validator:
        key = (method, template, status)
        if key not in self._validators:
            operation = self.spec["paths"][template][method]
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            self._validators[key] = jsonschema_rs.Draft202012Validator(
                {**schema, "components": self.spec["components"]}
            )
        return self._validators[key]

    def json_operations(self) -> set[tuple[str, str, int]]:
        """(method, template, status) of every success the document answers with JSON."""
        return {
            (o.method, o.template, int(status))
            for o in self._operations
            for status, answer in o.spec["responses"].items()
            if status.startswith("2") and "application/json" in answer.get("content", {})
        }
