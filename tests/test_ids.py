from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgguard.ids import is_name_id, is_user_id

BAD_COMMON = [
    "",
    " ",
    " acme",
    "acme ",
    "ac me",
    "a,b",
    "a'b",
    'a"b',
    "a[b]",
    "(a)",
    "*",
    "a*",
    "a:b",
    "a\nb",
    "a\tb",
    "a\x00b",
    "acm\u00e9",
    "\u0430cme",  # Cyrillic a
    "a\u200bb",
    "a/b",
    "a\\b",
    "a%2Cb",
    ".",
    "..",
    "...",
]


@pytest.mark.parametrize("value", [*BAD_COMMON, "a@b", "a+b", "x" * 65])
def test_is_name_id_refuses(value: str) -> None:
    assert not is_name_id(value)


@pytest.mark.parametrize("value", [*BAD_COMMON, "x" * 129])
def test_is_user_id_refuses(value: str) -> None:
    assert not is_user_id(value)


@pytest.mark.parametrize("value", ["a", "acme", "ACME-north_2.eu", "x" * 64])
def test_is_name_id_accepts(value: str) -> None:
    assert is_name_id(value)


@pytest.mark.parametrize(
    "value", ["bob", "bob@acme.example", "first.last+tag@x-y.example", "u" * 128]
)
def test_is_user_id_accepts(value: str) -> None:
    assert is_user_id(value)


@pytest.mark.parametrize("value", [None, 1, b"acme", ["acme"]])
def test_ids_refuse_non_strings(value: object) -> None:
    assert not is_name_id(value)
    assert not is_user_id(value)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from("abcXYZ019._-@+*:, é\\n"), min_size=0, max_size=140
    )
)
def test_the_api_patterns_accept_exactly_the_valid_ids(text: str) -> None:
    """The request models check ids with patterns (in Rust, for speed); they
    must agree with orgguard.ids, which every other boundary uses."""
    from pydantic import TypeAdapter, ValidationError

    from orgguard.api.schemas import NameId, UserId

    for annotation, valid in ((NameId, is_name_id), (UserId, is_user_id)):
        try:
            TypeAdapter(annotation).validate_python(text)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == valid(text), (annotation, text)
