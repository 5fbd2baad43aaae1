"""RFC 8785 canonical JSON and the strict parser."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.ledger import canonical


def test_keys_sorted_by_utf16_and_no_whitespace() -> None:
    # Python's sort_keys orders by code point; JCS by UTF-16 code unit: these two swap.
    assert canonical.encode({"\U0001f600": 1, "\ue000": 2, "a": [1, True, None]}) == (
        '{"a":[1,true,null],"\U0001f600":1,"\ue000":2}'.encode()
    )


def test_non_ascii_is_kept_raw() -> None:
    assert canonical.encode({"k": "café"}) == '{"k":"café"}'.encode()


@pytest.mark.parametrize("value", [1.0, {"a": 0.5}, [float("nan")], {"a": 2**53}, {1: "x"}, {"a": b"x"}])
def test_floats_big_ints_and_non_json_are_refused(value: object) -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.encode(value)


def test_version_field_is_added_and_checked() -> None:
    assert canonical.encode_versioned({"x": 1}) == b'{"v":1,"x":1}'
    with pytest.raises(canonical.CanonicalError):
        canonical.encode_versioned({"v": 2})


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"a":1.5}', '{"a":1e3}', '{"a":NaN}', '{"a":Infinity}', '{"a":9007199254740993}', "{"],
)
def test_strict_parser_refuses(text: str) -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.parse(text)


def test_require_canonical() -> None:
    assert canonical.parse_object(b'{"a":1,"b":2}', require_canonical=True) == {"a": 1, "b": 2}
    with pytest.raises(canonical.CanonicalError):
        canonical.parse(b'{"b":2,"a":1}', require_canonical=True)
    with pytest.raises(canonical.CanonicalError):
        canonical.parse(b'{"a": 1}', require_canonical=True)
    with pytest.raises(canonical.CanonicalError):
        canonical.parse_object(b"[1]")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value: object) -> None:
    data = canonical.encode(value)
    assert canonical.parse(data, require_canonical=True) == value


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_fast_path_writes_exactly_what_rfc8785_writes(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (ValueError, TypeError):
        with pytest.raises(canonical.CanonicalError):
            canonical.encode(value)
        return
    assert canonical.encode(value) == expected


def test_keys_outside_the_bmp_sort_by_utf16_code_units() -> None:
    value = {"\U0001f600": 1, "\ue000": 2}
    assert canonical.encode(value) == rfc8785.dumps(value)
