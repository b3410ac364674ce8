"""Safe, data-only encoding of values that cross the sandbox boundary.

Arguments go to the candidate's process and return values come back as JSON text with a few
type tags, so the trusted side never runs code chosen by the candidate (no pickle, no
``eval``): :func:`decode` only ever builds builtins and a few standard-library data types,
whatever bytes it is given, at a cost bounded by the text's length (no hash flooding, no deep
recursion, no giant integers).

Tagged tree (:func:`to_jsonable`): ``None``, ``bool``, ``int``, finite ``float``, ``str`` and
``list`` map to JSON natives; every other value is a one-key object:

=================  ==================================  ==========================
type               JSON                                example
=================  ==================================  ==========================
tuple              ``{"t": [...]}``                    ``(1, "a")``
set / frozenset    ``{"s": [...]}`` / ``{"f": [...]}``  ``{1, 2}``
dict               ``{"d": [[k, v], ...]}``            ``{1: "x"}``
Counter            ``{"C": [[k, n], ...]}``            ``Counter("aab")``
OrderedDict        ``{"O": [[k, v], ...]}``
defaultdict        ``{"D": [factory, [[k, v], ...]]}``  factory: a builtin type name
deque              ``{"q": [[...], maxlen]}``
bytes / bytearray  ``{"b": "hex"}`` / ``{"y": "hex"}``
range              ``{"R": [start, stop, step]}``
float special      ``{"x": "inf"|"-inf"|"nan"}``
complex            ``{"c": [re, im]}``
Fraction           ``{"F": [num, den]}``
Decimal            ``{"M": "1.10"}``
big int            ``{"i": "hex"}``                    ``10**5000``
builtin type       ``{"T": "int"}``                    ``int``, ``ValueError``
=================  ==================================  ==========================

Subclasses of the builtin data types (a ``namedtuple``, an ``IntEnum`` member, a ``str``
subclass) travel as their base value: the receiver never sees the subclass, so its methods
(``__eq__`` included) cannot run on the trusted side. Two more tags exist for the sandbox's
own protocol and are only accepted when the decoder is asked for them: ``{"r": k}`` /
``{"g": name}`` (a reference, resolved by the candidate's runner to the result of its ``k``-th
call or to a top-level name of its program) and ``{"o": [type name, {attr: value} | null]}``
(a by-value view of an object of the program's own class, see :class:`RemoteObject`).

This module is stdlib-only: it also runs inside the sandbox workers (system Python, ``-I -S``).
"""

import builtins
import json
import math
import sys
from collections import Counter, OrderedDict, defaultdict, deque
from typing import Any

__all__ = [
    "EncodingError",
    "MAX_BYTES",
    "MAX_COLLISIONS",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "RemoteObject",
    "cost_bound",
    "decode",
    "encode",
    "from_jsonable",
    "make_decoder",
    "render",
    "to_jsonable",
    "values_equal",
]

MAX_BYTES = 8 * 1024 * 1024  #: default cap on encoded text length (characters)
MAX_DEPTH = 200  #: default cap on container nesting
MAX_ITEMS = 1_000_000  #: default cap on the number of encoded values
MAX_INT_BITS = 1 << 17  #: ints bigger than this (in bits) are refused both ways (about 40,000 digits)
MAX_COLLISIONS = 32  #: unequal values sharing one hash in one container before decoding refuses
_INT_DIGITS = 4000  # ints with more decimal digits travel as hex (no str->int digit limit)
_INT_BOUND = 10**_INT_DIGITS
_FAST_INT = 2**62
_CHECK_MIN = 64  # containers shorter than this cannot flood a hash table
_WALK_MIN_BYTES = 128  # shorter texts hold neither a 64-item container nor a deep value
_SMALL_TEXT = 4096  # cost_bound charges shorter texts by their length alone
_MISSING = object()


class EncodingError(ValueError):
    """A value cannot be encoded, or text is not a valid encoding."""


class RemoteObject:
    """By-value view of an object of a class the candidate's program defines.

    ``attrs`` holds the instance attributes as plain data (nested program objects are
    RemoteObjects too); ``None`` marks an object already shown higher up (a cycle). Two views
    are equal when their class names and attributes are equal: the program's own ``__eq__``
    never runs on the trusted side.
    """

    __slots__ = ("type_name", "attrs", "ref")

    def __init__(self, type_name: str, attrs: dict[str, Any] | None) -> None:
        self.type_name = type_name
        self.attrs = attrs
        self.ref: Any = None  #: where the judge can point the candidate back to this object

    def __eq__(self, other: object) -> bool:
        if type(other) is not RemoteObject:
            return NotImplemented
        return self.type_name == other.type_name and self.attrs == other.attrs

    __hash__ = None  # type: ignore[assignment]  # views of mutable objects are not keys

    def __repr__(self) -> str:
        if self.attrs is None:
            return f"<{self.type_name} ...>"
        inner = ", ".join(f"{k}={render(v, 60)}" for k, v in list(self.attrs.items())[:8])
        return f"{self.type_name}({inner})"


def _builtin_type_name(x: type) -> str | None:
    if x is type(None):
        return "NoneType"
    name = getattr(x, "__name__", None)
    if isinstance(name, str) and getattr(builtins, name, None) is x:
        return name
    return None


def _builtin_type(name: str) -> type:
    if name == "NoneType":
        return type(None)
    t = getattr(builtins, name, None) if name.isidentifier() else None
    if not isinstance(t, type):
        raise EncodingError(f"{name!r} is not a builtin type")
    return t


def _base_value(x: Any) -> Any:
    """The builtin value of an instance of a subclass of a builtin data type (else _MISSING)."""
    if isinstance(x, int):
        return int.__int__(x)
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bytes):
        return bytes(memoryview(x))
    if isinstance(x, tuple):
        return tuple(tuple.__iter__(x))
    if isinstance(x, list):
        return list(list.__iter__(x))
    if isinstance(x, dict):
        return dict(dict.items(x))
    if isinstance(x, frozenset):
        return frozenset(frozenset.__iter__(x))
    if isinstance(x, set):
        return set(set.__iter__(x))
    if isinstance(x, complex):
        return complex(complex.__getattribute__(x, "real"), complex.__getattribute__(x, "imag"))
    return _MISSING


def to_jsonable(
    obj: Any,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    objects: Any = None,
    refs: Any = None,
) -> Any:
    """Convert a plain-data value into the tagged JSON tree.

    Args:
        obj: Builtin data (see the module docstring), possibly nested.
        max_depth: Maximum container nesting.
        max_items: Maximum number of values in total.
        objects: ``objects(x) -> (type_name, attrs | None)`` for values that are not data
            (the candidate's runner uses it to send views of program objects); None refuses
            them.
        refs: ``refs(x) -> tree | None`` for values that stand for something in the
            candidate's process (the judge's proxies): a ``{"r": ...}``/``{"g": ...}`` tree,
            or None when ``x`` is not such a value.

    Returns:
        A tree of JSON-native values (dict/list/str/int/float/bool/None).

    Raises:
        EncodingError: Unsupported type, cycle/too deep, too many items, an int too big.
    """
    return _Encoder(max_depth, max_items, objects, refs).conv(obj, 0)


class _Encoder:
    """One :func:`to_jsonable` call: the item budget, the limits and the hooks, with one
    short method per kind of value (dispatched on the exact type)."""

    def __init__(self, max_depth: int, max_items: int, objects: Any, refs: Any) -> None:
        self.max_depth, self.max_items = max_depth, max_items
        self.budget = max_items
        self.objects, self.refs = objects, refs

    def charge(self, n: int = 1) -> None:
        self.budget -= n
        if self.budget < 0:
            raise EncodingError(f"value has more than {self.max_items} items")

    def conv(self, x: Any, depth: int) -> Any:
        self.charge()
        t = type(x)
        if t is str or x is None or t is bool:
            return x
        if t is int:
            return _encode_int(x)
        if t is float:
            return x if math.isfinite(x) else {"x": "nan" if x != x else ("inf" if x > 0 else "-inf")}
        if depth >= self.max_depth:
            raise EncodingError(f"value nested deeper than {self.max_depth} (or cyclic)")
        method = _DISPATCH.get(t)
        if method is not None:
            return method(self, x, depth)
        return self.other(x, t, depth)

    def items(self, pairs: Any, depth: int) -> list[Any]:
        return [[self.conv(k, depth + 1), self.conv(v, depth + 1)] for k, v in pairs]

    def values(self, xs: Any, depth: int) -> list[Any]:
        return [self.conv(v, depth + 1) for v in xs]

    def sequence(self, x: list[Any] | tuple[Any, ...], depth: int) -> Any:
        # fast path: flat sequences of strings / small ints (the common case)
        if all(type(v) is str or (type(v) is int and -_FAST_INT < v < _FAST_INT) for v in x):
            self.charge(len(x))
            items = list(x)
        else:
            items = self.values(x, depth)
        return items if type(x) is list else {"t": items}

    def mapping(self, x: Any, depth: int) -> Any:
        tag = {dict: "d", Counter: "C", OrderedDict: "O"}[type(x)]
        return {tag: self.items(dict.items(x), depth)}

    def default_dict(self, x: defaultdict, depth: int) -> Any:
        factory = x.default_factory
        name = _builtin_type_name(factory) if isinstance(factory, type) else None
        return {"D": [name, self.items(dict.items(x), depth)]}

    def collection(self, x: Any, depth: int) -> Any:
        tag = {set: "s", frozenset: "f"}[type(x)]
        return {tag: self.values(x, depth)}

    def other(self, x: Any, t: type, depth: int) -> Any:
        """Fractions, decimals, builtin types, subclasses of data, and the hooks' values."""
        fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
        if fractions is not None and t is fractions.Fraction:
            return {"F": self.values((x.numerator, x.denominator), depth)}
        if decimal is not None and t is decimal.Decimal:
            return {"M": str(x)}
        if isinstance(x, type):
            name = _builtin_type_name(x)
            if name is not None:
                return {"T": name}
        elif t.__module__ != "collections":  # a Counter subclass is no plain dict
            base = _base_value(x)
            if base is not _MISSING:
                self.budget += 1
                return self.conv(base, depth)
        tree = self.refs(x) if self.refs is not None else None
        if tree is not None:
            return tree
        if self.objects is not None:
            name, attrs = self.objects(x)
            return {"o": [name, None if attrs is None else self.conv(attrs, depth + 1)]}
        raise EncodingError(
            f"cannot encode a value of type {t.__module__}.{t.__qualname__}: only builtin "
            "data (None, bool, int, float, complex, str, bytes, bytearray, list, tuple, "
            "dict, set, frozenset, range, builtin types), collections' Counter/OrderedDict/"
            "defaultdict/deque, Fraction and Decimal cross the sandbox boundary"
        )


def _encode_int(x: int) -> Any:
    if -_INT_BOUND < x < _INT_BOUND:
        return x
    if x.bit_length() > MAX_INT_BITS:
        raise EncodingError(f"an int of {x.bit_length()} bits is over the {MAX_INT_BITS}-bit cap")
    return {"i": hex(x)}


#: Exact type -> the :class:`_Encoder` method for it (containers and other data types).
_DISPATCH: dict[type, Any] = {
    list: _Encoder.sequence,
    tuple: _Encoder.sequence,
    dict: _Encoder.mapping,
    Counter: _Encoder.mapping,
    OrderedDict: _Encoder.mapping,
    defaultdict: _Encoder.default_dict,
    set: _Encoder.collection,
    frozenset: _Encoder.collection,
    bytes: lambda enc, x, depth: {"b": x.hex()},
    bytearray: lambda enc, x, depth: {"y": x.hex()},
    complex: lambda enc, x, depth: {"c": enc.values((x.real, x.imag), depth)},
    deque: lambda enc, x, depth: {"q": [enc.values(x, depth), x.maxlen]},
    range: lambda enc, x, depth: {"R": enc.values((x.start, x.stop, x.step), depth)},
}


_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _check_hashes(values: list[Any]) -> None:
    """Refuse a container whose hashable members collide on purpose (``set`` and ``dict``
    would take quadratic time in one uninterruptible C call).

    Sorting the hash values finds equal ones without a hash table of our own (hash values
    themselves can be made to collide modulo the table's prime).
    """
    n = len(values)
    if n < _CHECK_MIN:
        return
    keyed = []
    for i, v in enumerate(values):
        try:
            keyed.append((hash(v), i))
        except TypeError:
            continue
    keyed.sort()
    run_hash, first, unequal = None, None, 0
    for h, i in keyed:
        if h != run_hash:
            run_hash, first, unequal = h, values[i], 0
            continue
        v = values[i]
        if v is first or v == first:
            continue
        unequal += 1
        if unequal > MAX_COLLISIONS:
            raise EncodingError(f"more than {MAX_COLLISIONS} unequal values share one hash "
                                "(a hash-flooding value)")


def _pairs(val: Any, what: str) -> list[Any]:
    if type(val) is not list:
        raise EncodingError(f"{what} items must be a list of [key, value] pairs")
    for kv in val:
        if type(kv) is not list or len(kv) != 2:
            raise EncodingError(f"{what} items must be [key, value] pairs")
    _check_hashes([kv[0] for kv in val])
    return val


#: Tags of standard-library containers and numbers, decoded by :func:`_library_value`.
_LIBRARY_TAGS = frozenset("CODqyRFMT")
_MALFORMED = object()


def _library_value(tag: str, tv: type, val: Any) -> Any:
    """The value a standard-library tag stands for, or ``_MALFORMED`` (the caller then
    raises); errors as in the object hook."""
    if tag == "C":
        return Counter({k: v for k, v in _pairs(val, "Counter")})
    if tag == "O":
        return OrderedDict(_pairs(val, "OrderedDict"))
    if tag == "D" and tv is list and len(val) == 2:
        factory = None if val[0] is None else _builtin_type(str(val[0]))
        return defaultdict(factory, {k: v for k, v in _pairs(val[1], "defaultdict")})
    if tag == "q" and tv is list and len(val) == 2 and type(val[0]) is list and (
            val[1] is None or type(val[1]) is int):
        return deque(val[0], val[1])
    if tag == "y" and tv is str:
        return bytearray.fromhex(val)
    if tag == "R" and tv is list and len(val) == 3 and all(type(v) is int for v in val):
        return range(*val)
    if tag == "F" and tv is list and len(val) == 2 and all(type(v) is int for v in val):
        from fractions import Fraction

        return Fraction(val[0], val[1])
    if tag == "M" and tv is str and len(val) <= 4096:
        from decimal import Decimal

        return Decimal(val)
    if tag == "T" and tv is str:
        return _builtin_type(val)
    return _MALFORMED


def _make_hook(refs: Any, objects: bool) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> Any:
        """``json`` object hook: turn a one-key tag object into the value it stands for."""
        if len(pairs) != 1:
            raise EncodingError(f"tag objects have exactly one key, got {len(pairs)}")
        tag, val = pairs[0]
        tv = type(val)
        try:
            if tag == "t" and tv is list:
                return tuple(val)
            if tag == "d":
                return {k: v for k, v in _pairs(val, "dict")}
            if tag in ("s", "f") and tv is list:
                _check_hashes(val)
                return set(val) if tag == "s" else frozenset(val)
            if tag == "b" and tv is str:
                return bytes.fromhex(val)
            if tag == "x" and tv is str and val in _SPECIAL:
                return _SPECIAL[val]
            if tag == "c" and tv is list and len(val) == 2:
                re_, im = val
                if type(re_) in (int, float) and type(im) in (int, float):
                    return complex(re_, im)
            if tag == "i" and tv is str and len(val) <= MAX_INT_BITS // 4 + 3:
                return int(val, 16)
            if tag in _LIBRARY_TAGS:
                value = _library_value(tag, tv, val)
                if value is not _MALFORMED:
                    return value
            if tag in ("r", "g") and refs is not None:
                return refs(tag, val)
            if tag == "o" and objects and tv is list and len(val) == 2 and type(val[0]) is str \
                    and (val[1] is None or type(val[1]) is dict):
                return RemoteObject(val[0][:200], val[1])
        except EncodingError:
            raise
        except (TypeError, ValueError, ArithmeticError) as e:  # unhashable key, bad hex, ...
            raise EncodingError(f"bad {tag!r} tag: {e}") from None
        raise EncodingError(f"unknown or malformed tag {tag!r}")

    return hook


def _reject_constant(name: str) -> Any:
    raise EncodingError(f"bare {name} is not allowed (use the 'x' tag)")


# built once: json.dumps/json.loads with options build a new coder on every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)
_DECODER = json.JSONDecoder(object_pairs_hook=_make_hook(None, False),
                            parse_constant=_reject_constant)
_OBJ_DECODER = json.JSONDecoder(object_pairs_hook=_make_hook(None, True),
                                parse_constant=_reject_constant)


def from_jsonable(tree: Any) -> Any:
    """Inverse of :func:`to_jsonable` for a tree already parsed by ``json`` (slow path)."""
    return decode(json.dumps(tree, allow_nan=False))


def encode(
    obj: Any,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    objects: Any = None,
    refs: Any = None,
) -> str:
    """Encode a plain-data value as compact tagged JSON text.

    Raises:
        EncodingError: See :func:`to_jsonable`; or the text would exceed ``max_bytes``.
    """
    tree = to_jsonable(obj, max_depth=max_depth, max_items=max_items, objects=objects,
                       refs=refs)
    try:
        text = _ENCODER.encode(tree)
    except RecursionError:
        raise EncodingError("value nested too deeply") from None
    if len(text) > max_bytes:
        raise EncodingError(f"encoded value is {len(text)} characters, over the {max_bytes} cap")
    return text


def make_decoder(refs: Any = None, objects: bool = False) -> Any:
    """A ``decode(text, max_bytes=...)`` function with references/views resolved as in
    :func:`decode`, its JSON decoder built once (for a process that decodes many values)."""
    decoder = json.JSONDecoder(object_pairs_hook=_make_hook(refs, objects),
                               parse_constant=_reject_constant)

    def run(text: str | bytes, *, max_bytes: int = MAX_BYTES,
            max_depth: int = MAX_DEPTH) -> Any:
        return decode(text, max_bytes=max_bytes, max_depth=max_depth, _decoder=decoder)

    return run


def _walk(value: Any, max_depth: int, work_cap: int) -> None:
    """Depth cap and hash-flooding check of lists and tuples (sets and dicts were checked
    before they were built), iteratively, at a cost bounded by ``work_cap``.

    Hashing a tuple hashes everything below it, again at every wide tuple or list above it
    that is checked: the work of every check is counted before any of them runs (each
    value, times the checked containers whose hashing reaches it), so a value built to make
    that work quadratic (wide tuples nested in wide tuples) is refused in linear time.
    """
    stack = [(value, 0, 0)]
    to_check: list[Any] = []
    work = 0
    while stack:
        v, depth, reach = stack.pop()
        if depth >= max_depth:
            raise EncodingError(f"value nested deeper than {max_depth}")
        t = type(v)
        if t is list or t is tuple:
            inner: Any = v
            checked = len(v) >= _CHECK_MIN
            if checked:
                to_check.append(v)
        elif t in _CONTAINERS:
            checked = False
            if t is RemoteObject:
                inner = [] if v.attrs is None else list(v.attrs.values())
            elif t is deque or t is set or t is frozenset:
                inner = list(v)
            else:
                inner = [x for kv in v.items() for x in kv]
        else:
            continue
        if reach:
            work += reach * (len(inner) + 1)
            if work > work_cap:
                raise EncodingError("value of tuples nested in wide tuples: checking its "
                                    f"hashes would take over {work_cap} steps")
        # hashing passes through a tuple into its items, stops at anything unhashable
        # (lists, dicts, sets) and at frozensets (they keep their hash)
        below = (reach if t is tuple else 0) + checked
        stack.extend((x, depth + 1, below) for x in inner if type(x) in _CONTAINERS)
    for v in to_check:
        _check_hashes(v)


def cost_bound(text: str | bytes) -> tuple[int, int]:
    """Upper bounds of what :func:`decode` builds from ``text``, read off the text without
    parsing it: ``(bytes, objects)``.

    Every value is either the first in its container or follows a comma, so commas plus
    opening brackets plus one bound the values. The text is decoded to a ``str`` and its
    strings are copied out (each character at most 4 bytes, 1 if the text is ASCII, twice);
    each value costs at most 192 bytes beside that (its object, its slot in a container, the
    hash check's entry for it), a tagged object (set, dict, ...) at most 256 more and a
    deque (``"q"``) 1 KiB more. A short text is charged 256 bytes a character without
    being read (values take at least 2 characters, tagged objects 8, deques 15, so no text
    costs more).
    """
    if len(text) < _SMALL_TEXT:  # at most ~205 bytes a character (see above): no scan
        return 256 * (len(text) + 1), len(text) + 1
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    braces = text.count(b"{")
    objects = text.count(b",") + text.count(b"[") + braces + 1
    per_char = 1 if text.isascii() else 4
    size = (2 * per_char * len(text) + 192 * objects + 256 * braces
            + 1024 * text.count(b'"q"'))
    return size, objects


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset, Counter, OrderedDict, defaultdict,
                         deque, RemoteObject})


def decode(
    text: str | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    refs: Any = None,
    objects: bool = False,
    _decoder: Any = None,
) -> Any:
    """Decode tagged JSON text into plain values. Safe on untrusted input.

    The cost is bounded by the text's length: nesting is capped, integers are capped at
    :data:`MAX_INT_BITS` bits, and containers whose members collide on purpose are refused
    before any hash table is built.

    Args:
        text: The encoding (``str``, or UTF-8 ``bytes``).
        max_bytes: Refuse longer texts.
        max_depth: Refuse deeper nesting.
        refs: ``refs(tag, value)`` resolves ``{"r": k}`` / ``{"g": name}`` references (the
            candidate's runner); None refuses them.
        objects: Accept ``{"o": ...}`` views of program objects (as :class:`RemoteObject`).

    Raises:
        EncodingError: Over ``max_bytes``, invalid JSON, bad tags, too deep, hash flooding,
            an int too big.
    """
    if len(text) > max_bytes:
        raise EncodingError(f"encoded value is {len(text)} bytes, over the {max_bytes} cap")
    try:
        if not isinstance(text, str):
            text = text.decode("utf-8", "surrogatepass")
        if _decoder is not None:
            decoder = _decoder
        elif refs is not None:
            decoder = json.JSONDecoder(object_pairs_hook=_make_hook(refs, objects),
                                       parse_constant=_reject_constant)
        else:
            decoder = _OBJ_DECODER if objects else _DECODER
        value = decoder.decode(text)
        if len(text) >= _WALK_MIN_BYTES:
            _walk(value, max_depth, 8 * len(text) + 4096)
        return value
    except EncodingError:
        raise
    except RecursionError:
        raise EncodingError("encoded value nested too deeply") from None
    except (ValueError, TypeError, ArithmeticError) as e:
        raise EncodingError(f"invalid encoding: {str(e)[:200]}") from None


# --------------------------------------------------------------------------- comparison

_MAPPINGS = frozenset({dict, Counter, OrderedDict, defaultdict})


def _is_number(x: Any) -> bool:
    t = type(x)
    return t is int or t is float or (t.__name__ in ("Fraction", "Decimal")
                                      and t.__module__ in ("fractions", "decimal"))


def _num_close(a: Any, b: Any, tol: float) -> bool:
    if type(a) is float or type(b) is float:
        try:
            a, b = float(a), float(b)
        except (OverflowError, ValueError, ArithmeticError):
            return False
        if a != a or b != b:  # nan
            return a != a and b != b
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    try:
        return bool(a == b)
    except ArithmeticError:
        return False


def values_equal(got: Any, expected: Any, tol: float = 1e-6) -> bool:
    """Compare a decoded candidate value with a trusted expected value.

    Numbers (int, float, Fraction, Decimal; never bool) compare numerically, floats within
    ``tol`` (absolute or relative; nan equals nan). Bools must be bools. Mappings (dict,
    Counter, OrderedDict, defaultdict) compare as dicts; other containers must have the same
    type (a list is not a tuple) and compare element-wise; sets exactly.
    """
    te, tg = type(expected), type(got)
    if te is bool or tg is bool:
        return te is tg and got == expected
    if _is_number(expected):
        return _is_number(got) and _num_close(got, expected, tol)
    if te is complex:
        if tg not in (int, float, complex):
            return False
        g = complex(got)
        return _num_close(g.real, expected.real, tol) and _num_close(g.imag, expected.imag, tol)
    if te in _MAPPINGS and tg in _MAPPINGS:
        if len(got) != len(expected):
            return False
        for k, v in expected.items():
            if k not in got or not values_equal(got[k], v, tol):
                return False
        return True
    if te is not tg:
        return False
    if te is list or te is tuple or te is deque:
        return len(got) == len(expected) and all(
            values_equal(g, e, tol) for g, e in zip(got, expected)
        )
    return bool(got == expected)


def render(x: Any, limit: int = 200) -> str:
    """A short ``repr`` of a decoded value at a cost bounded by ``limit`` (never the whole
    value's ``repr``: a large result is cut while it is rendered)."""
    out: list[str] = []
    size = [0]

    def put(s: str) -> bool:
        out.append(s)
        size[0] += len(s)
        return size[0] < limit

    def walk(v: Any, depth: int) -> bool:
        t = type(v)
        if depth > 20:
            return put("...")
        if t is list or t is tuple or t in (set, frozenset, deque):
            opener, closer = {list: "[]", tuple: "()", set: "{}", frozenset: "{}",
                              deque: "[]"}[t]
            if not put(opener):
                return False
            for i, item in enumerate(v):
                if i and not put(", "):
                    return False
                if not walk(item, depth + 1):
                    return False
            if t is tuple and len(v) == 1 and not put(","):
                return False
            return put(closer)
        if t in _MAPPINGS:
            if not put("{"):
                return False
            for i, (k, item) in enumerate(v.items()):
                if i and not put(", "):
                    return False
                if not walk(k, depth + 1) or not put(": ") or not walk(item, depth + 1):
                    return False
            return put("}")
        if t is int and v.bit_length() > 256:
            return put(f"<int of {v.bit_length()} bits>")
        if t in (str, bytes, bytearray) and len(v) > limit:
            v = v[:limit]
        try:
            return put(repr(v))
        except Exception:  # noqa: BLE001 - a value that cannot be shown
            return put(f"<{t.__name__}>")

    try:
        complete = walk(x, 0)
    except RecursionError:
        complete = False
    text = "".join(out)
    if not complete or len(text) > limit:
        return text[: max(0, limit - 3)] + "..."
    return text
