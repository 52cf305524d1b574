"""One installation, two nodes: the second joined the first's keys, and a person signed in on one
node carries on on the other (sessions in the database, form tokens from the shared key service)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from .topology import Topology, new_review_code
from .traffic import csrf_from, sign_in

pytestmark = pytest.mark.slow


def test_node_b_joined_the_installation_node_a_created(topology: Topology) -> None:
    assert "created the installation's keys" in topology.init_output["a"]
    assert "joined installation" in topology.init_output["b"]
    assert "created the installation's keys" not in topology.init_output["b"]
    # Each node has a home of its own, and neither holds a key.
    assert topology.a.home != topology.b.home
    for node in (topology.a, topology.b):
        assert not (node.home / "keys").exists(), f"node {node.name} made a key folder"


def test_signed_in_on_node_a_a_form_posted_on_node_b_is_accepted(topology: Topology) -> None:
    review = topology.open_review(new_review_code("SES"), through=topology.a.url)
    uploader = topology.people["uploader"]
    with (
        httpx.Client(base_url=topology.a.url, timeout=30) as on_a,
        httpx.Client(base_url=topology.b.url, timeout=30) as on_b,
    ):
        sign_in(on_a, uploader, uploader.code(datetime.now(UTC)))
        token_from_a = csrf_from(on_a.get(f"/reviews/{review}").text)
        # Node B gets node A's cookies, and no more: it never saw this browser before.
        on_b.cookies = on_a.cookies
        assert on_b.get("/account").status_code == 200

        created = on_b.post(f"/reviews/{review}/cases", data={"csrf_token": token_from_a})
        assert created.status_code == 303, created.text
        assert "case_created=" in created.headers["location"]
        # The token is checked on node B, not merely ignored: a wrong one is refused there.
        forged = on_b.post(
            f"/reviews/{review}/cases", data={"csrf_token": token_from_a[:-4] + "0000"}
        )
        assert forged.status_code == 403 and "csrf" in forged.text.lower()

        # Signing out on node B ends the session everywhere: node A, shown the very cookies it
        # set, no longer knows the session.
        kept = httpx.Cookies(on_a.cookies)
        signed_out = on_b.post("/sign-out", data={"csrf_token": token_from_a})
        assert signed_out.status_code == 200, signed_out.text
        on_a.cookies = kept
        after = on_a.get("/account")
        assert after.status_code == 303 and after.headers["location"] == "/sign-in"
