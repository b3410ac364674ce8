"""Tests for the data-only encoding that crosses the sandbox boundary."""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxes import encoding as enc

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
HASHABLE = st.recursive(
    SCALARS, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(HASHABLE, inner, max_size=3)
    | st.sets(HASHABLE, max_size=3)
    | st.frozensets(HASHABLE, max_size=3),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    """Equality that also checks exact types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[union-attr,index]
    return a == b


@settings(max_examples=100, deadline=None)
@given(VALUES)
def test_roundtrip_keeps_values_and_exact_types(value: object) -> None:
    assert _same(enc.decode(enc.encode(value)), value)


def test_roundtrip_special_values() -> None:
    values = [
        (1, [2, (3, 4)], {"a": (1,)}),
        {(1, 2): "x", 3: None, "k": {1, 2}},
        frozenset({1, (2, 3)}),
        b"\x00\xff",
        complex(1.5, -2),
        10**5000,
        -(10**5000),
        [math.inf, -math.inf],
        True,
        0.1 + 0.2,
    ]
    for v in values:
        assert _same(enc.decode(enc.encode(v)), v), v
    nan = enc.decode(enc.encode(math.nan))
    assert isinstance(nan, float) and math.isnan(nan)


def test_tuple_and_list_stay_distinct() -> None:
    assert enc.decode(enc.encode((1, 2))) == (1, 2)
    assert type(enc.decode(enc.encode([1, 2]))) is list


class _Str(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


class _Color(enum.IntEnum):
    RED = 1


class _AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize("bad", [_Str("x"), _Color.RED, _AlwaysEqual(), [1, _AlwaysEqual()],
                                 lambda: 1, object(), bytearray(b"x"), range(3)])
def test_rejects_subclasses_and_non_data(bad: object) -> None:
    with pytest.raises(enc.EncodingError):
        enc.encode(bad)


def test_rejects_cycles_depth_and_size() -> None:
    cyc: list[object] = []
    cyc.append(cyc)
    with pytest.raises(enc.EncodingError):
        enc.encode(cyc)
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(enc.EncodingError):
        enc.encode(deep)
    with pytest.raises(enc.EncodingError):
        enc.encode(list(range(1000)), max_items=100)
    with pytest.raises(enc.EncodingError):
        enc.encode("x" * 1000, max_bytes=100)


@pytest.mark.parametrize(
    "text",
    [
        '{"t": [1], "s": [2]}',  # two keys
        '{"zz": 1}',  # unknown tag
        '{"a": 1}',  # a bare dict is not an encoding
        "NaN",
        "Infinity",
        '{"s": [[1]]}',  # unhashable set element
        '{"d": [[[1], 2]]}',  # unhashable key
        '{"d": [1]}',  # malformed pair
        '{"b": "zz"}',  # bad hex
        '{"x": "huge"}',
        "[1,",
        "[" * 100000 + "]" * 100000,
    ],
)
def test_decode_rejects_malformed_input(text: str) -> None:
    with pytest.raises(enc.EncodingError):
        enc.decode(text)


def test_decode_size_cap() -> None:
    with pytest.raises(enc.EncodingError):
        enc.decode(json.dumps("x" * 1000), max_bytes=100)


def test_decode_builds_only_builtins() -> None:
    v = enc.decode('{"t": [1, {"d": [["a", {"s": [1]}]]}, {"b": "00"}]}')
    assert v == (1, {"a": {1}}, b"\x00")


def test_values_equal_semantics() -> None:
    eq = enc.values_equal
    assert eq(0.1 + 0.2, 0.3)
    assert eq(3, 3.0) and eq(3.0, 3)
    assert not eq(1.0, 1.1)
    assert eq(math.nan, math.nan)
    assert eq(math.inf, math.inf) and not eq(math.inf, -math.inf)
    assert not eq(True, 1) and not eq(1, True) and eq(False, False)
    assert not eq([1, 2], (1, 2))
    assert eq({"a": [1.0, 2.0]}, {"a": [1.0, 2.0000000001]})
    assert not eq({"a": 1}, {"a": 1, "b": 2})
    assert eq({1, 2}, {2, 1}) and not eq({1}, frozenset({1}))
    assert eq("x", "x") and not eq("x", b"x")
    assert eq(None, None) and not eq(None, 0)
    assert eq(complex(1, 2), complex(1, 2 + 1e-9))
