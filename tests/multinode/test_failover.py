"""A node killed outright (SIGKILL) in the middle of a tus upload: the client carries on against
the other node from the offset it reports, and the upload completes and is scanned."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import httpx
import pytest

from audit import Outcome
from portal.audit_vocabulary import Action

from .topology import Topology, new_review_code
from .traffic import (
    content_sha256,
    events,
    record,
    tus_create,
    tus_offset,
    tus_patch,
    wait_until_scanned,
)

pytestmark = pytest.mark.slow

CHUNK = 64 * 1024


@pytest.fixture
def node_b_back_afterwards(topology: Topology) -> Iterator[None]:
    """Whatever the test does to node B, the next test finds it up again."""
    try:
        yield
    finally:
        if not topology.b.serve.alive:
            topology.b.restart()


def _patch_cut_short(
    port: int, path: str, token: dict[str, str], offset: int, data: bytes
) -> socket.socket:
    """A PATCH of ``data`` whose headers and first half are sent, the rest never: the request is
    in flight, its body incomplete, when the node dies."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Authorization: {token['Authorization']}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(head + data[: len(data) // 2])
    return connection


def test_node_b_killed_mid_upload_the_client_resumes_on_node_a(
    topology: Topology, node_b_back_afterwards: None
) -> None:
    review = topology.open_review(new_review_code("KILL"), through=topology.a.url)
    token = topology.tokens["uploader"]
    body = record("survives a node", 6 * CHUNK + 777)
    sha = hashlib.sha256(body).hexdigest()
    with httpx.Client(base_url=topology.b.url, timeout=30) as on_b:
        path = tus_create(on_b, token, review, body)
        for offset in (0, CHUNK):
            answer = tus_patch(on_b, token, path, offset, body[offset : offset + CHUNK])
            assert answer.status_code == 204, answer.text
    sent = 2 * CHUNK
    in_flight = _patch_cut_short(topology.b.port, path, token, sent, body[sent : sent + CHUNK])
    try:
        topology.b.serve.kill()
    finally:
        in_flight.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{topology.b.url}/healthz", timeout=5)

    with httpx.Client(base_url=topology.a.url, timeout=30) as on_a:
        # What node B had committed is where the upload stands; the cut PATCH left nothing.
        offset = tus_offset(on_a, token, path)
        assert offset == sent
        reference = None
        while offset < len(body):
            answer = tus_patch(on_a, token, path, offset, body[offset : offset + CHUNK])
            assert answer.status_code == 204, answer.text
            offset = int(answer.headers["upload-offset"])
            reference = answer.headers.get("upload-document-reference")
        assert reference is not None
        document = wait_until_scanned(on_a, token, reference)
        assert document["state"] == "available" and document["sha256"] == sha
        assert content_sha256(on_a, topology.tokens["inspector"], reference) == sha
    scanned = events(topology.engine, Action.DOCUMENT_SCANNED, outcome=Outcome.SUCCESS)
    assert scanned.get(reference) == 1
