"""Every column of every table is classified; free text is sealed or justified; the docs agree."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import LargeBinary, String, Text

from portal.classification import COLUMNS, EXPLAINED, Holds, classified, markdown_table
from portal.schema import tables
from portal.sealing import SEALED_COLUMNS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "destruction.md"
# Text columns may hold only what cannot be typed about a person, or what a rule of its own keeps.
TEXT_MAY_HOLD = {
    Holds.code,
    Holds.reference,
    Holds.machine,
    Holds.account,
    Holds.audit,
}


def metadata_columns() -> dict[tuple[str, str], object]:
    return {(t.name, c.name): c.type for t in tables().values() for c in t.columns}


def test_every_column_of_every_table_is_classified_and_nothing_else() -> None:
    present = metadata_columns()
    listed = {(c.table, c.column) for c in classified()}
    unclassified = sorted(set(present) - listed)
    assert unclassified == [], (
        f"columns with no class in portal/classification.py: {unclassified}; a free-text column "
        "must be sealed under its review's key (portal.sealing) or say why it may stay readable"
    )
    assert sorted(listed - set(present)) == [], "classified columns that no table has"


def test_text_columns_that_stay_readable_are_justified() -> None:
    for (table, column), kind in metadata_columns().items():
        entry = COLUMNS[table][column]
        if isinstance(kind, String | Text):
            assert entry[0] in TEXT_MAY_HOLD, f"{table}.{column} is text classified {entry[0]}"
        assert len(entry[1]) >= 5, f"{table}.{column} needs a reason"
        if entry[0] in (Holds.sealed, Holds.wrapped_key):
            assert isinstance(kind, LargeBinary), f"{table}.{column} is sealed but not bytes"
    assert set(EXPLAINED) == set(Holds)


def test_the_sealed_columns_are_the_ones_the_portal_seals_and_rotates() -> None:
    review_sealed = {(m.__tablename__, column) for m, column in SEALED_COLUMNS}
    sealed = {(c.table, c.column) for c in classified() if c.holds is Holds.sealed}
    # File names are sealed under their document's (or upload's) own key, not the review's.
    assert sealed - review_sealed == {
        ("document", "filename_sealed"),
        ("upload_session", "filename_sealed"),
    }
    assert review_sealed <= sealed
    # The free texts of the tester's finding are sealed, and so are the review's own title and
    # legal basis: a lead types them, and nothing typed outlives destruction.
    assert COLUMNS["records_request"]["title_sealed"][0] is Holds.sealed
    assert COLUMNS["review"]["title_sealed"][0] is Holds.sealed
    assert COLUMNS["review"]["legal_basis_sealed"][0] is Holds.sealed
    assert "title" not in COLUMNS["review"] and "legal_basis" not in COLUMNS["review"]


def test_the_docs_table_is_the_module() -> None:
    text = DOCS.read_text()
    assert "## What each column holds" in text
    section = text.split("## What each column holds", 1)[1]
    assert markdown_table() in section, (
        "docs/destruction.md is out of date: paste "
        '`python -c "from portal.classification import markdown_table as t; print(t())"`'
    )
