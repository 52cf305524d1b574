"""An upload left in `completing` by a killed node is taken over within a minute.

Node B is killed (SIGKILL) while it turns a complete tus upload into a document; once its lease
runs out, node A or a worker finishes it, and the client learns the document's reference by asking
(HEAD, or an empty PATCH at the final offset)."""

from __future__ import annotations

import contextlib
import hashlib
import threading

import httpx
import pytest
from sqlmodel import Session

from audit import Outcome
from portal.audit_vocabulary import Action
from portal.uploads.models import UploadSession, UploadState

from .test_failover import node_b_back_afterwards  # noqa: F401 (fixture)
from .topology import Topology, new_review_code, wait_for
from .traffic import TUS, content_sha256, events, record, tus_create, tus_patch, wait_until_scanned

pytestmark = pytest.mark.slow

TAKEOVER_SECONDS = 75.0  # "within a minute", and the worker's round on top


def _state(topology: Topology, upload_id: str) -> UploadState:
    with Session(topology.engine) as db:
        upload = db.get(UploadSession, upload_id)
        assert upload is not None
        return upload.state


def test_an_upload_left_completing_by_a_killed_node_is_finished_by_another(
    topology: Topology,
    node_b_back_afterwards: None,  # noqa: F811
) -> None:
    review = topology.open_review(new_review_code("DONE"), through=topology.a.url)
    token = topology.tokens["uploader"]
    # Large enough that completing it (reading every part back, sealing it again) takes a while.
    body = record("completing when killed", 6 * 1024 * 1024)
    sha = hashlib.sha256(body).hexdigest()
    half = len(body) // 2
    with httpx.Client(base_url=topology.b.url, timeout=60) as on_b:
        path = tus_create(on_b, token, review, body)
        upload_id = path.rsplit("/", 1)[1]
        assert tus_patch(on_b, token, path, 0, body[:half]).status_code == 204

        def last_patch() -> None:
            with contextlib.suppress(httpx.TransportError):  # the node dies under it
                tus_patch(on_b, token, path, half, body[half:])

        sender = threading.Thread(target=last_patch)
        sender.start()
        wait_for(
            "the upload completing on node B",
            lambda: _state(topology, upload_id) is UploadState.completing or None,
            timeout=30,
        )
        topology.b.serve.kill()
        sender.join(timeout=30)
    assert _state(topology, upload_id) is UploadState.completing  # killed before it finished

    with httpx.Client(base_url=topology.a.url, timeout=60) as on_a:

        def reference() -> str | None:
            status = on_a.head(path, headers={**TUS, **token})
            found: str | None = status.headers.get("upload-document-reference")
            return found

        found = wait_for("the upload taken over", reference, timeout=TAKEOVER_SECONDS)
        document = wait_until_scanned(on_a, token, found)
        assert document["state"] == "available" and document["sha256"] == sha
        assert content_sha256(on_a, topology.tokens["inspector"], found) == sha
    scanned = events(topology.engine, Action.DOCUMENT_SCANNED, outcome=Outcome.SUCCESS)
    assert scanned.get(found) == 1
