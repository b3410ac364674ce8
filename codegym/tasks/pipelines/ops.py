"""The operation table of the ``pipelines`` suite and what a sequence of steps means.

An :class:`Op` is one list operation or return form: its English phrasings, its reference
line of code and the same operation as a Python function (a test checks that they agree). A
step is an operation with its parameter; a task's reference solution is one line per step.
The split of a sequence of steps is a fixed hash of its canonical text (:func:`split_of`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Category = Literal["map", "filter", "order", "slice", "grow", "return"]
ParamKind = Literal["none", "int", "value"]

#: Fraction of operation sequences in each split (by hash of the canonical sequence).
SPLIT_FRACTIONS: dict[str, float] = {"test": 0.1, "validation": 0.1, "train": 0.8}
SPLITS: tuple[str, ...] = ("train", "validation", "test")
_HASH_SALT = b"codegym-pipelines-v1"


@dataclass(frozen=True)
class Op:
    """One pipeline operation (or return form).

    Attributes:
        name: Canonical name (used in task metadata and in the split hash).
        category: ``map``/``filter``/``order``/``slice``/``grow`` or ``return``.
        phrasings: English phrasings (``str.format`` templates with ``{k}``); the first is
            the canonical one used unless varied phrasing is on.
        code: The reference line without its 4-space indent (template with ``{k}``).
        fn: ``fn(xs, k)``: the operation on a Python list (``k`` is ignored when the
            operation has no parameter). Must match ``code`` exactly (a test checks it).
        param: ``"none"``, ``"int"`` (drawn from ``domain``) or ``"value"`` (a threshold
            drawn from the values the list holds at that step).
        domain: Integer parameters for ``param="int"``.
    """

    name: str
    category: Category
    phrasings: tuple[str, ...]
    code: str
    fn: Callable[[list[int], int], Any]
    param: ParamKind = "none"
    domain: tuple[int, ...] = ()
    is_return: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_return", self.category == "return")


def _cumsum(xs: list[int], _k: int) -> list[int]:
    return [sum(xs[: i + 1]) for i in range(len(xs))]


_OPS: tuple[Op, ...] = (
    # ---- the basic set: 12 list operations -------------------------------------------
    Op("add", "map", ("add {k} to every element", "increase each element by {k}",
                      "add {k} to each number"),
       "xs = [x + {k} for x in xs]", lambda xs, k: [x + k for x in xs], "int", tuple(range(1, 10))),
    Op("sub", "map", ("subtract {k} from every element", "decrease each element by {k}",
                      "take {k} away from each number"),
       "xs = [x - {k} for x in xs]", lambda xs, k: [x - k for x in xs], "int", tuple(range(1, 10))),
    Op("mul", "map", ("multiply every element by {k}", "scale each element by a factor of {k}",
                      "replace each number by {k} times itself"),
       "xs = [x * {k} for x in xs]", lambda xs, k: [x * k for x in xs], "int", (2, 3, 4)),
    Op("keep_gt", "filter", ("keep elements greater than {k}", "remove elements that are at most {k}",
                             "keep only the numbers above {k}"),
       "xs = [x for x in xs if x > {k}]", lambda xs, k: [x for x in xs if x > k], "value"),
    Op("keep_lt", "filter", ("keep elements less than {k}", "remove elements that are at least {k}",
                             "keep only the numbers below {k}"),
       "xs = [x for x in xs if x < {k}]", lambda xs, k: [x for x in xs if x < k], "value"),
    Op("keep_even", "filter", ("keep even elements", "remove odd elements",
                               "keep only the even numbers"),
       "xs = [x for x in xs if x % 2 == 0]", lambda xs, k: [x for x in xs if x % 2 == 0]),
    Op("keep_odd", "filter", ("keep odd elements", "remove even elements",
                              "keep only the odd numbers"),
       "xs = [x for x in xs if x % 2 == 1]", lambda xs, k: [x for x in xs if x % 2 == 1]),
    Op("reverse", "order", ("reverse the list", "reverse the order of the elements",
                            "turn the list around"),
       "xs = xs[::-1]", lambda xs, k: xs[::-1]),
    Op("sort", "order", ("sort the list in ascending order", "sort the elements from smallest to largest",
                         "put the numbers in increasing order"),
       "xs = sorted(xs)", lambda xs, k: sorted(xs)),
    Op("sort_desc", "order", ("sort the list in descending order",
                              "sort the elements from largest to smallest",
                              "put the numbers in decreasing order"),
       "xs = sorted(xs, reverse=True)", lambda xs, k: sorted(xs, reverse=True)),
    Op("take", "slice", ("keep the first {k} elements", "keep only the first {k} elements",
                         "cut the list after its first {k} elements"),
       "xs = xs[:{k}]", lambda xs, k: xs[:k], "int", (1, 2, 3, 4, 5, 6)),
    Op("drop", "slice", ("drop the first {k} elements", "remove the first {k} elements",
                         "skip the first {k} elements"),
       "xs = xs[{k}:]", lambda xs, k: xs[k:], "int", (1, 2, 3, 4)),
    # ---- extra operations of the full set ---------------------------------------------
    Op("negate", "map", ("negate every element", "flip the sign of each element"),
       "xs = [-x for x in xs]", lambda xs, k: [-x for x in xs]),
    Op("abs", "map", ("replace every element by its absolute value",
                      "take the absolute value of each element"),
       "xs = [abs(x) for x in xs]", lambda xs, k: [abs(x) for x in xs]),
    Op("square", "map", ("square every element", "replace each element by its square"),
       "xs = [x * x for x in xs]", lambda xs, k: [x * x for x in xs]),
    Op("mod", "map", ("replace every element by its remainder modulo {k}",
                      "take each element modulo {k}"),
       "xs = [x % {k} for x in xs]", lambda xs, k: [x % k for x in xs], "int", (2, 3, 4, 5, 7)),
    Op("floordiv", "map", ("divide every element by {k}, rounding down",
                           "replace each element by its floor division by {k}"),
       "xs = [x // {k} for x in xs]", lambda xs, k: [x // k for x in xs], "int", (2, 3, 4, 5)),
    Op("clamp_max", "map", ("replace every element greater than {k} by {k}",
                            "cap each element at {k}"),
       "xs = [min(x, {k}) for x in xs]", lambda xs, k: [min(x, k) for x in xs], "value"),
    Op("clamp_min", "map", ("replace every element less than {k} by {k}",
                            "raise each element to at least {k}"),
       "xs = [max(x, {k}) for x in xs]", lambda xs, k: [max(x, k) for x in xs], "value"),
    Op("cumsum", "map", ("replace every element by the sum of the elements up to and including it",
                         "compute the running sums of the list"),
       "xs = [sum(xs[:i + 1]) for i in range(len(xs))]", _cumsum),
    Op("remove_eq", "filter", ("remove elements equal to {k}", "delete every occurrence of {k}"),
       "xs = [x for x in xs if x != {k}]", lambda xs, k: [x for x in xs if x != k], "value"),
    Op("keep_multiple", "filter", ("keep elements divisible by {k}",
                                   "keep only the multiples of {k}"),
       "xs = [x for x in xs if x % {k} == 0]", lambda xs, k: [x for x in xs if x % k == 0], "int",
       (3, 4, 5)),
    Op("dedupe", "filter", ("remove duplicates, keeping the first occurrence of each element",
                            "drop repeated elements, keeping their first occurrence"),
       "xs = list(dict.fromkeys(xs))", lambda xs, k: list(dict.fromkeys(xs))),
    Op("rotate", "order", ("move the first element to the end",
                           "rotate the list left by one position"),
       "xs = xs[1:] + xs[:1]", lambda xs, k: xs[1:] + xs[:1]),
    Op("keep_last", "slice", ("keep the last {k} elements", "keep only the last {k} elements"),
       "xs = xs[-{k}:]", lambda xs, k: xs[-k:], "int", (1, 2, 3, 4, 5)),
    Op("drop_last", "slice", ("drop the last {k} elements", "remove the last {k} elements"),
       "xs = xs[:-{k}]", lambda xs, k: xs[:-k], "int", (1, 2, 3)),
    Op("every_other", "slice", ("keep every other element, starting with the first",
                                "keep the elements at even positions"),
       "xs = xs[::2]", lambda xs, k: xs[::2]),
    Op("append", "grow", ("append {k} to the end of the list", "add the number {k} at the end"),
       "xs = xs + [{k}]", lambda xs, k: xs + [k], "int", tuple(range(0, 10))),
    Op("prepend", "grow", ("insert {k} at the start of the list",
                           "put the number {k} in front of the list"),
       "xs = [{k}] + xs", lambda xs, k: [k] + xs, "int", tuple(range(0, 10))),
    # ---- return forms (the last step) -------------------------------------------------
    Op("ret_sum", "return", ("return the sum", "return the sum of the elements"),
       "return sum(xs)", lambda xs, k: sum(xs)),
    Op("ret_len", "return", ("return the length", "return the number of elements"),
       "return len(xs)", lambda xs, k: len(xs)),
    Op("ret_max", "return", ("return the maximum (or 0 if empty)",
                             "return the largest element (or 0 if the list is empty)"),
       "return max(xs, default=0)", lambda xs, k: max(xs, default=0)),
    Op("ret_min", "return", ("return the minimum (or 0 if empty)",
                             "return the smallest element (or 0 if the list is empty)"),
       "return min(xs, default=0)", lambda xs, k: min(xs, default=0)),
    Op("ret_list", "return", ("return the list", "return the resulting list"),
       "return xs", lambda xs, k: xs),
    Op("ret_first", "return", ("return the first element (or 0 if empty)",
                               "return the element at the front (or 0 if the list is empty)"),
       "return xs[0] if xs else 0", lambda xs, k: xs[0] if xs else 0),
    Op("ret_last", "return", ("return the last element (or 0 if empty)",
                              "return the element at the end (or 0 if the list is empty)"),
       "return xs[-1] if xs else 0", lambda xs, k: xs[-1] if xs else 0),
    Op("ret_count_even", "return", ("return the number of even elements",
                                    "return how many elements are even"),
       "return sum(1 for x in xs if x % 2 == 0)", lambda xs, k: sum(1 for x in xs if x % 2 == 0)),
    Op("ret_distinct", "return", ("return the number of distinct elements",
                                  "return how many different values the list holds"),
       "return len(set(xs))", lambda xs, k: len(set(xs))),
    Op("ret_range", "return", ("return the maximum minus the minimum (or 0 if empty)",
                               "return the difference between the largest and smallest element "
                               "(or 0 if the list is empty)"),
       "return max(xs) - min(xs) if xs else 0", lambda xs, k: max(xs) - min(xs) if xs else 0),
)

#: Every operation by canonical name.
OPS: dict[str, Op] = {op.name: op for op in _OPS}

#: Named operation sets. ``basic`` (12 operations + 5 return forms, one phrasing each) is
#: small enough for a tiny language model trained on a CPU to learn; ``full`` adds 17
#: operations and 5 return forms and varies the phrasing.
OP_SETS: dict[str, tuple[str, ...]] = {
    "basic": (
        "add", "sub", "mul", "keep_gt", "keep_lt", "keep_even", "keep_odd",
        "reverse", "sort", "sort_desc", "take", "drop",
        "ret_sum", "ret_len", "ret_max", "ret_min", "ret_list",
    ),
    "full": tuple(OPS),
}

Step = tuple[Op, int]  # (operation, parameter; 0 when the operation has none)


def step_key(step: Step) -> str:
    """Canonical text of one step, e.g. ``"add:3"`` or ``"reverse"``."""
    op, k = step
    return op.name if op.param == "none" else f"{op.name}:{k}"


def step_code(step: Step) -> str:
    """The reference line of one step, 4-space indented."""
    op, k = step
    return "    " + op.code.format(k=k)


def split_of(steps: Sequence[Step]) -> str:
    """The split an operation sequence belongs to (a fixed hash of its canonical form)."""
    return _split_of_key("|".join(step_key(s) for s in steps))


def _split_of_key(key: str) -> str:
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8, key=_HASH_SALT).digest(), "big")
    u = h / 2**64
    acc = 0.0
    for name in ("test", "validation", "train"):
        acc += SPLIT_FRACTIONS[name]
        if u < acc:
            return name
    return "train"


def run_steps(steps: Sequence[Step], xs: list[int]) -> Any:
    """Evaluate an operation sequence on ``xs`` (``None`` if no step returns)."""
    for op, k in steps:
        if op.is_return:
            return op.fn(xs, k)
        xs = op.fn(xs, k)
    return None
