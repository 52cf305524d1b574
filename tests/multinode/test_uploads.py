"""Uploads across the nodes: a tus upload spread over both, many at once through the proxy, and a
review made on one node used at once on the other. Every document is scanned exactly once."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from audit import Outcome
from portal.audit_vocabulary import Action

from .topology import Topology, new_review_code
from .traffic import (
    TUS,
    content_sha256,
    events,
    post_document,
    record,
    tus_create,
    tus_offset,
    tus_patch,
    wait_until_scanned,
)

pytestmark = pytest.mark.slow

CHUNK = 64 * 1024
CONCURRENT = 30


def test_a_tus_upload_whose_patches_alternate_between_nodes_completes(
    topology: Topology,
) -> None:
    review = topology.open_review(new_review_code("TUS"), through=topology.proxy_url)
    token, inspector = topology.tokens["uploader"], topology.tokens["inspector"]
    body = record("alternating", 5 * CHUNK + 1234)
    sha = hashlib.sha256(body).hexdigest()
    with (
        httpx.Client(base_url=topology.a.url, timeout=30) as on_a,
        httpx.Client(base_url=topology.b.url, timeout=30) as on_b,
    ):
        path = tus_create(on_a, token, review, body)
        nodes = [on_b, on_a]
        reference = None
        for index, offset in enumerate(range(0, len(body), CHUNK)):
            here, other = nodes[index % 2], nodes[(index + 1) % 2]
            answer = tus_patch(here, token, path, offset, body[offset : offset + CHUNK])
            assert answer.status_code == 204, answer.text
            new_offset = min(offset + CHUNK, len(body))
            assert int(answer.headers["upload-offset"]) == new_offset
            # The other node knows at once where the upload stands.
            assert tus_offset(other, token, path) == new_offset
            reference = answer.headers.get("upload-document-reference")
        assert reference is not None, "the last PATCH did not complete the upload"

        document = wait_until_scanned(on_b, token, reference)
        assert document["state"] == "available" and document["sha256"] == sha
        assert content_sha256(on_a, inspector, reference) == sha
        assert content_sha256(on_b, inspector, reference) == sha
    assert events(topology.engine, Action.DOCUMENT_SCANNED).get(reference) == 1


def test_thirty_uploads_at_once_through_the_proxy_each_scanned_once(topology: Topology) -> None:
    review = topology.open_review(new_review_code("MANY"), through=topology.proxy_url)
    token = topology.tokens["uploader"]
    bodies = [record(f"concurrent {n}", 2 * CHUNK + 100 * n) for n in range(CONCURRENT)]
    start = threading.Barrier(CONCURRENT, timeout=30)

    def upload(body: bytes) -> tuple[str, set[str]]:
        """A tus upload in three PATCHes through the proxy; the nodes that answered."""
        nodes = set()
        with httpx.Client(base_url=topology.proxy_url, timeout=60) as client:
            start.wait()  # all thirty at once
            path = tus_create(client, token, review, body)
            reference = None
            for offset in range(0, len(body), CHUNK):
                answer = tus_patch(client, token, path, offset, body[offset : offset + CHUNK])
                assert answer.status_code == 204, answer.text
                nodes.add(answer.headers["x-portal-upstream"])
                reference = answer.headers.get("upload-document-reference")
            assert reference is not None
            return reference, nodes

    with ThreadPoolExecutor(CONCURRENT) as pool:
        futures = [pool.submit(upload, body) for body in bodies]
        outcomes = [future.result(timeout=120) for future in futures]
    references = [reference for reference, _ in outcomes]
    assert len(set(references)) == CONCURRENT
    answered = set().union(*(nodes for _, nodes in outcomes))
    assert answered == {f"127.0.0.1:{topology.a.port}", f"127.0.0.1:{topology.b.port}"}

    with httpx.Client(base_url=topology.proxy_url, timeout=30) as client:
        documents: list[dict[str, Any]] = [
            wait_until_scanned(client, token, reference) for reference in references
        ]
    for body, found in zip(bodies, documents, strict=True):
        assert found["state"] == "available", found
        assert found["sha256"] == hashlib.sha256(body).hexdigest()
    scanned = events(topology.engine, Action.DOCUMENT_SCANNED, outcome=Outcome.SUCCESS)
    assert {reference: scanned.get(reference) for reference in references} == dict.fromkeys(
        references, 1
    )
    failed = events(topology.engine, Action.DOCUMENT_SCANNED, outcome=Outcome.FAILURE)
    assert not set(failed) & set(references), "a scan failed and was retried"


def test_a_review_made_on_node_a_takes_an_upload_on_node_b_at_once(topology: Topology) -> None:
    token = topology.tokens["uploader"]
    with httpx.Client(base_url=topology.b.url, timeout=30) as on_b:
        # Node B's key service session was open before the review (and its key) existed.
        assert on_b.get("/readyz").status_code == 200
        review = topology.open_review(new_review_code("NEW"), through=topology.a.url)
        body = record("first on node b", 3000)
        stored = post_document(on_b, token, review, body)
        assert stored.status_code == 201, stored.text
        reference = stored.json()["reference"]
        resumable = tus_create(on_b, token, review, body)
        assert tus_offset(on_b, token, resumable) == 0
        assert on_b.delete(resumable, headers={**TUS, **token}).status_code == 204
        document = wait_until_scanned(on_b, token, reference)
    assert document["state"] == "available"
    with httpx.Client(base_url=topology.a.url, timeout=30) as on_a:
        assert content_sha256(on_a, topology.tokens["inspector"], reference) == (
            hashlib.sha256(body).hexdigest()
        )
