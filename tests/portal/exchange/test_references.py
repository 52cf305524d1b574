"""References: readable, forgiving to type, and every single error or neighbour swap is caught."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.references import ALPHABET, InvalidReference, new_reference, parse_reference

references = st.builds(lambda seed: new_reference(random.Random(seed).getrandbits), st.integers())


def test_shape() -> None:
    reference = new_reference()
    assert len(reference) == 14 and reference[4] == reference[9] == "-"
    assert all(ch in ALPHABET for ch in reference.replace("-", ""))
    assert parse_reference(reference) == reference


@given(references)
def test_typing_is_forgiving(reference: str) -> None:
    sloppy = " " + reference.lower().replace("-", "  ").replace("0", "o").replace("1", "l") + " "
    assert parse_reference(sloppy) == reference


@given(references, st.data())
@settings(max_examples=300)
def test_every_single_wrong_character_is_caught(reference: str, data: st.DataObject) -> None:
    raw = reference.replace("-", "")
    position = data.draw(st.integers(0, len(raw) - 1))
    wrong = data.draw(st.sampled_from([ch for ch in ALPHABET if ch != raw[position]]))
    with pytest.raises(InvalidReference):
        parse_reference(raw[:position] + wrong + raw[position + 1 :])


@given(references, st.data())
@settings(max_examples=300)
def test_every_swap_of_neighbours_is_caught(reference: str, data: st.DataObject) -> None:
    raw = reference.replace("-", "")
    position = data.draw(st.integers(0, len(raw) - 2))
    a, b = raw[position], raw[position + 1]
    if a == b:
        return  # swapping equal characters changes nothing
    with pytest.raises(InvalidReference):
        parse_reference(raw[:position] + b + a + raw[position + 2 :])


def test_exhaustively_on_one_reference() -> None:
    """Every substitution at every position and every neighbour swap, for a fixed reference."""
    raw = new_reference().replace("-", "")
    for position in range(len(raw)):
        for ch in ALPHABET:
            if ch != raw[position]:
                with pytest.raises(InvalidReference):
                    parse_reference(raw[:position] + ch + raw[position + 1 :])


@pytest.mark.parametrize(
    "typed",
    ["", "ABC", "7KQ2-M9XD-3TPW-X", "7KQ2-M9XD-3TP!", "ÄKQ2-M9XD-3TPW", "U" * 12, "x" * 100],
)
def test_garbage_is_invalid(typed: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(typed)


def test_a_million_references_do_not_collide() -> None:
    seen = {new_reference() for _ in range(1_000_000)}
    assert len(seen) == 1_000_000
