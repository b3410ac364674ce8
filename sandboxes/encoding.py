"""Safe, data-only encoding of values that cross the sandbox boundary.

Arguments go to the candidate's process and return values come back as JSON text with a few
type tags, so the trusted side never runs code chosen by the candidate (no pickle, no
``eval``). Only *exact* builtin types are accepted: a subclass of ``int``/``str``/``list``...
(which could override ``__eq__``) is rejected by :func:`to_jsonable`, and :func:`from_jsonable`
/ :func:`decode` only ever build plain builtins, whatever bytes the candidate sends.

Tagged tree (``to_jsonable``): ``None``, ``bool``, ``int`` (up to 4000 digits), finite
``float``, ``str`` and ``list`` map to JSON natives; every other value is a one-key object:

=============  ==========================  ===================
type           JSON                        example
=============  ==========================  ===================
tuple          ``{"t": [...]}``            ``(1, "a")``
set            ``{"s": [...]}``            ``{1, 2}``
frozenset      ``{"f": [...]}``            ``frozenset()``
dict           ``{"d": [[k, v], ...]}``    ``{1: "x"}``
bytes          ``{"b": "hex"}``            ``b"\\x00"``
float special  ``{"x": "inf"|"-inf"|"nan"}``
complex        ``{"c": [re, im]}``
big int        ``{"i": "hex"}``            ``10**5000``
=============  ==========================  ===================

This module is stdlib-only: it also runs inside the sandbox workers (system Python, ``-I -S``).
"""

import json
import math
from typing import Any

__all__ = [
    "EncodingError",
    "decode",
    "encode",
    "from_jsonable",
    "to_jsonable",
    "values_equal",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ITEMS",
]

MAX_BYTES = 8 * 1024 * 1024  #: default cap on encoded text length (characters)
MAX_DEPTH = 200  #: default cap on container nesting
MAX_ITEMS = 1_000_000  #: default cap on the number of encoded values
_INT_DIGITS = 4000  # ints with more decimal digits travel as hex (no str->int digit limit)
_INT_BOUND = 10**_INT_DIGITS
_FAST_INT = 2**62


class EncodingError(ValueError):
    """A value cannot be encoded, or text is not a valid encoding."""


def to_jsonable(
    obj: Any, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS
) -> Any:
    """Convert a plain-data value into the tagged JSON tree.

    Args:
        obj: None, bool, int, float, complex, str, bytes, or list/tuple/dict/set/frozenset
            of those (exact types only; subclasses are rejected).
        max_depth: Maximum container nesting.
        max_items: Maximum number of values in total.

    Returns:
        A tree of JSON-native values (dict/list/str/int/float/bool/None).

    Raises:
        EncodingError: Unsupported type, subclass of a builtin, cycle/too deep, too many items.
    """
    budget = [max_items]

    def conv(x: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise EncodingError(f"value has more than {max_items} items")
        t = type(x)
        if t is str or x is None or t is bool:
            return x
        if t is int:
            if -_INT_BOUND < x < _INT_BOUND:
                return x
            return {"i": hex(x)}
        if t is float:
            if math.isfinite(x):
                return x
            return {"x": "nan" if x != x else ("inf" if x > 0 else "-inf")}
        if depth >= max_depth:
            raise EncodingError(f"value nested deeper than {max_depth} (or cyclic)")
        if t is list or t is tuple:
            # fast path: flat sequences of strings / small ints (the common case)
            if all(type(v) is str or (type(v) is int and -_FAST_INT < v < _FAST_INT) for v in x):
                budget[0] -= len(x)
                if budget[0] < 0:
                    raise EncodingError(f"value has more than {max_items} items")
                return list(x) if t is list else {"t": list(x)}
            items = [conv(v, depth + 1) for v in x]
            return items if t is list else {"t": items}
        if t is dict:
            return {"d": [[conv(k, depth + 1), conv(v, depth + 1)] for k, v in x.items()]}
        if t is set:
            return {"s": [conv(v, depth + 1) for v in x]}
        if t is frozenset:
            return {"f": [conv(v, depth + 1) for v in x]}
        if t is bytes:
            return {"b": x.hex()}
        if t is complex:
            return {"c": [conv(x.real, depth + 1), conv(x.imag, depth + 1)]}
        raise EncodingError(
            f"cannot encode a value of type {t.__module__}.{t.__qualname__}: only exact "
            "builtin data types (None, bool, int, float, complex, str, bytes, list, tuple, "
            "dict, set, frozenset) cross the sandbox boundary"
        )

    return conv(obj, 0)


_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _tag_hook(pairs: list[tuple[str, Any]]) -> Any:
    """``json`` object hook: turn a one-key tag object into the value it stands for."""
    if len(pairs) != 1:
        raise EncodingError(f"tag objects have exactly one key, got {len(pairs)}")
    tag, val = pairs[0]
    try:
        if tag == "t" and type(val) is list:
            return tuple(val)
        if tag == "d" and type(val) is list:
            out = {}
            for kv in val:
                if type(kv) is not list or len(kv) != 2:
                    raise EncodingError("dict items must be [key, value] pairs")
                out[kv[0]] = kv[1]
            return out
        if tag == "s" and type(val) is list:
            return set(val)
        if tag == "f" and type(val) is list:
            return frozenset(val)
        if tag == "b" and type(val) is str:
            return bytes.fromhex(val)
        if tag == "x" and type(val) is str and val in _SPECIAL:
            return _SPECIAL[val]
        if tag == "c" and type(val) is list and len(val) == 2:
            re_, im = val
            if type(re_) in (int, float) and type(im) in (int, float):
                return complex(re_, im)
        if tag == "i" and type(val) is str and len(val) <= MAX_BYTES:
            return int(val, 16)
    except TypeError as e:  # unhashable key / set element
        raise EncodingError(f"bad {tag!r} tag: {e}") from None
    raise EncodingError(f"unknown or malformed tag {tag!r}")


def _reject_constant(name: str) -> Any:
    raise EncodingError(f"bare {name} is not allowed (use the 'x' tag)")


# built once: json.dumps/json.loads with options build a new coder on every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
_DECODER = json.JSONDecoder(object_pairs_hook=_tag_hook, parse_constant=_reject_constant)


def from_jsonable(tree: Any) -> Any:
    """Inverse of :func:`to_jsonable` for a tree already parsed by ``json`` (slow path)."""
    return decode(json.dumps(tree, allow_nan=False))


def encode(
    obj: Any,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> str:
    """Encode a plain-data value as compact tagged JSON text.

    Raises:
        EncodingError: See :func:`to_jsonable`; or the text would exceed ``max_bytes``.
    """
    text = _ENCODER.encode(to_jsonable(obj, max_depth=max_depth, max_items=max_items))
    if len(text) > max_bytes:
        raise EncodingError(f"encoded value is {len(text)} characters, over the {max_bytes} cap")
    return text


def decode(text: str | bytes, *, max_bytes: int = MAX_BYTES) -> Any:
    """Decode tagged JSON text into plain builtin values. Safe on untrusted input.

    Raises:
        EncodingError: Over ``max_bytes``, invalid JSON, bad tags, too deeply nested.
    """
    if len(text) > max_bytes:
        raise EncodingError(f"encoded value is {len(text)} bytes, over the {max_bytes} cap")
    try:
        if not isinstance(text, str):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except EncodingError:
        raise
    except RecursionError:
        raise EncodingError("encoded value nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise EncodingError(f"invalid encoding: {e}") from None


def _num_close(a: Any, b: Any, tol: float) -> bool:
    if type(a) is float or type(b) is float:
        if a != a or b != b:  # nan
            return a != a and b != b
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return a == b


def values_equal(got: Any, expected: Any, tol: float = 1e-6) -> bool:
    """Compare a decoded candidate value with a trusted expected value.

    Numbers (int/float, never bool) compare numerically, floats within ``tol`` (absolute or
    relative; nan equals nan). Bools must be bools. Containers must have the same type
    (a list is not a tuple) and compare element-wise; dict values recursively; sets exactly.
    """
    te, tg = type(expected), type(got)
    if te is bool or tg is bool:
        return te is tg and got == expected
    if te in (int, float):
        return tg in (int, float) and _num_close(got, expected, tol)
    if te is complex:
        if tg not in (int, float, complex):
            return False
        g = complex(got)
        return _num_close(g.real, expected.real, tol) and _num_close(g.imag, expected.imag, tol)
    if te is not tg:
        return False
    if te is list or te is tuple:
        return len(got) == len(expected) and all(
            values_equal(g, e, tol) for g, e in zip(got, expected)
        )
    if te is dict:
        if len(got) != len(expected):
            return False
        for k, v in expected.items():
            if k not in got or not values_equal(got[k], v, tol):
                return False
        return True
    return bool(got == expected)
