"""The table of hostile tests in docs/security.md is the suite's own count (issue 18)."""

from __future__ import annotations

import pytest

from tests.security_catalogue import DOCUMENT, collect, counts, files, table, written_table


def _collected(request: pytest.FixtureRequest) -> list[str]:
    """What this run collected, if it holds every catalogued file; else a collection of them."""
    option = request.config.option
    narrowed = option.keyword or option.markexpr or getattr(option, "deselect", None)
    ids = [item.nodeid for item in request.session.items]
    present = {node_id.split("::")[0] for node_id in ids}
    if not narrowed and set(files()) <= present:
        return ids  # the whole suite (each xdist worker collects all of it)
    return collect(files())


def test_the_hostile_test_table_matches_the_suite(request: pytest.FixtureRequest) -> None:
    found, unmatched = counts(_collected(request))
    assert not unmatched, (
        f"catalogue patterns that match no test (renamed or removed?): {unmatched}"
    )
    assert all(found.values()), found
    expected = table(found)
    assert written_table(DOCUMENT.read_text()) == expected, (
        "docs/security.md's table of hostile tests is out of date: run "
        f"`python -m tests.security_catalogue`, or paste:\n{expected}"
    )


def test_the_count_sees_a_test_go_missing() -> None:
    """A pattern whose test has gone is reported, so the table cannot silently shrink."""
    found, unmatched = counts(["tests/portal/web/test_routes.py::test_something[sqlite]"])
    assert found["Authorisation matrix"] == 1
    assert "tests/storage/test_tamper.py::*" in unmatched
