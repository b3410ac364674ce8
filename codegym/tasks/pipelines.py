"""The ``pipelines`` suite: procedurally generated, seeded, long-horizon list tasks.

Each task asks for ``def solve(xs):`` where ``xs`` is a list of integers; the docstring lists
N numbered steps in plain English ("add 3 to every element", "keep elements greater than 4",
"reverse the list", ..., "return the sum"). The reference solution has exactly one line per
step, so the horizon (number of env steps of a perfect agent) is N, a knob set by
``min_steps``/``max_steps``.

Splits (``train``, ``validation``, ``test``) are disjoint by construction: the split of a task
is a fixed function of a hash of its canonical operation sequence (operations and parameters,
not their phrasing, not the seed), and generation for one split rejects sequences that belong
to another. So no operation sequence ever appears in two splits, whatever the seed.

Tests are input -> expected-output pairs (``TestSuite(kind="io")``), the expected values
computed by the trusted reference. They are strong by construction (see the weak-tests
finding in DESIGN.md):

* the expected outputs take at least 3 distinct values, so no constant answer passes;
* every single-line mutant of the reference that changes its behaviour on ~100 candidate
  inputs (random and adversarial: empty, negatives, duplicates, long lists; then wider
  values and dense integer runs for mutants no ordinary input separates) fails at least one
  test. Mutants: delete a line, duplicate a line, swap adjacent lines, replace a line by
  another operation or parameter, by a text edit of it (any other digit, a sign flip,
  operator and call flips such as ``sum``/``len``), by a copy of another line or by an early
  ``return``, and "skip every step" programs (a return form applied to the raw input).
  Mutated lines are compiled one at a time (cached) and evaluated in-process: they are our
  own generated code. Inputs are added greedily until every such mutant is killed;
* every step matters: a task where deleting some line leaves the behaviour unchanged is
  regenerated, and so is a pipeline that empties the list on too many inputs.

A task that fails any of these is regenerated from the next sub-seed. Generation is
deterministic per ``(seed, split, index)`` and cached. Randomness comes from a local
``random.Random`` seeded from a hash of ``(seed, split, index, attempt)`` (no global state).

How a task is drawn (:meth:`PipelinesSuite._draw_steps`): the number of steps, then the
return form, then the operations *backwards* so that each can matter given what follows (no
reordering before an order-blind return unless a slice comes between, no map right before
"return the length", no two adjacent steps that merge such as add then subtract), then
parameters *forwards* while simulating 16 inputs (each step must change typical inputs and
keep most lists at >= 2 elements; thresholds are values present at that point; an
infeasible operation is substituted). Known skew: long pipelines (10-12 steps) lean to
maps (``mul`` ~20 % of their steps) and rarely end in "return the length", whose steps
before it must all shrink the list.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import operator
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from codegym.tasks.base import Task, TaskSuite
from sandboxes import IOCase, TestSuite

Category = Literal["map", "filter", "order", "slice", "grow", "return"]
ParamKind = Literal["none", "int", "value"]

#: Fraction of operation sequences in each split (by hash of the canonical sequence).
SPLIT_FRACTIONS: dict[str, float] = {"test": 0.1, "validation": 0.1, "train": 0.8}
SPLITS: tuple[str, ...] = ("train", "validation", "test")
_HASH_SALT = b"codegym-pipelines-v1"

_MAX_ATTEMPTS = 2000
_ATTEMPTS_PER_LENGTH = 200
_MAX_ABS_VALUE = 1000  # values stay small: no growth through repeated products


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
#: where a tiny CPU language model learns (see the calibration in DESIGN.md); ``full`` adds
#: 17 operations and 5 return forms and varies the phrasing.
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


# ---------------------------------------------------------------------------------------
# generation


def _random_input(rng: random.Random, style: int, grow: int = 0) -> list[int]:
    """One candidate input list; ``style`` picks a distribution (adversarial ones included),
    ``grow`` lengthens the lists (long pipelines get longer inputs)."""
    r = rng.randint
    if style == 0:  # typical
        return rng.choices(range(-5, 16), k=r(4, 10 + grow) + grow)
    if style == 1:  # wider values
        return rng.choices(range(-20, 31), k=r(3, 12 + grow) + grow)
    if style == 2:  # many duplicates
        return rng.choices(rng.choices(range(-6, 13), k=r(1, 3)), k=r(3, 10 + grow))
    if style == 3:  # long
        return rng.choices(range(-10, 26), k=r(13, 24) + grow)
    if style == 4:  # short
        return rng.choices(range(-8, 17), k=r(1, 3))
    if style == 5:  # mostly negative
        return rng.choices(range(-15, 4), k=r(3, 10 + grow))
    # style 6: sorted or reverse-sorted run
    xs = sorted(rng.choices(range(-8, 21), k=r(4, 10 + grow)))
    return xs if r(0, 1) else xs[::-1]


def _make_pool(rng: random.Random, n: int, grow: int = 0) -> list[list[int]]:
    styles = (0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 1, 0)
    return [_random_input(rng, styles[i % len(styles)], grow) for i in range(n)]


def _make_wide_pool(rng: random.Random, n: int, grow: int = 0) -> list[list[int]]:
    """Second-line candidate inputs (wider values, any length, many duplicates): tried only
    for mutants that no ordinary candidate kills (boundary cases such as ``x > k + 1``)."""
    pool = []
    for i in range(n):
        lo = rng.randint(-40, 20)
        hi = lo + rng.randint(4, 50)
        length = rng.randint(0, 20 + grow)
        if i % 3 == 0:  # duplicates
            pool.append(rng.choices(rng.choices(range(lo, hi + 1), k=rng.randint(1, 4)), k=length))
        else:
            pool.append(rng.choices(range(lo, hi + 1), k=length))
    # dense runs: after maps such as "multiply by 3" only these are sure to hold a value at
    # each side of a threshold
    for lo, hi in ((-60, 60), (-25, 25), (-10, 40)):
        run = list(range(lo, hi + 1))
        pool.append(run)
        pool.append(run[::-1])
        rng.shuffle(run)
        pool.append(run)
    return pool


def _merge_group(op: Op) -> str:
    """Operations of one group merge or override each other when adjacent."""
    if op.name in ("add", "sub"):
        return "shift"
    if op.category == "order" and op.name != "rotate":
        return "order"
    return op.name


_ORDER_FREE_RETURNS = frozenset(
    {"ret_sum", "ret_len", "ret_max", "ret_min", "ret_count_even", "ret_distinct", "ret_range"}
)
_ELEMENTWISE = frozenset(
    {"add", "sub", "mul", "negate", "abs", "square", "mod", "floordiv", "clamp_max", "clamp_min"}
)


def _observed_by_return(ret: Op) -> frozenset[str]:
    """What a return form observes of the list: ``vals`` (the multiset of values),
    ``order``, ``len``."""
    if ret.name == "ret_len":
        return frozenset({"len"})
    if ret.name in _ORDER_FREE_RETURNS:
        return frozenset({"vals"})
    return frozenset({"vals", "order"})


def _is_alive(op: Op, seen: frozenset[str]) -> bool:
    """Whether ``op`` can matter when the rest of the program observes ``seen``."""
    if op.name in _ELEMENTWISE or op.name == "cumsum":
        return seen != {"len"}  # maps keep the length
    if op.category == "order":
        return "order" in seen
    return True


def _observed_before(op: Op, seen: frozenset[str]) -> frozenset[str]:
    """What the program observes of the list just before ``op`` given ``seen`` after it."""
    if op.name in ("sort", "sort_desc"):
        return seen - {"order"}
    if op.category == "slice":
        return seen | ({"order"} if "vals" in seen else {"len"})
    if op.category == "filter":
        return seen | {"vals"}
    if op.name == "cumsum" and "vals" in seen:
        return seen | {"order"}
    return seen


def _has_dead_line(steps: Sequence[Step]) -> bool:
    """A cheap structural test for a line whose deletion cannot change the result.

    Walks backwards tracking what the rest of the program observes of the list: its
    values (as a multiset), their order, its length. A reordering is dead when order is
    not observed; a map that keeps the length is dead when only the length is. This only
    pre-filters candidates; the mutant check on real inputs is the authority.
    """
    seen = _observed_by_return(steps[-1][0])
    for op, _k in reversed(steps[:-1]):
        if not _is_alive(op, seen):
            return True
        seen = _observed_before(op, seen)
    return False


def _differs(out: Any, expected: Any) -> bool:
    """Whether a returned value fails a test expecting ``expected`` (types compared too)."""
    return not (type(out) is type(expected) and out == expected)


def _distinct(ret: Op, states: list[list[int]]) -> int:
    """Number of distinct outputs of return form ``ret`` over ``states``."""
    return len({repr(ret.fn(s, 0)) for s in states})


@dataclass(frozen=True)
class _Mutant:
    """A single-line mutant: start from the reference state before line ``start``, run the
    source lines ``head``, then the reference lines from ``resume`` on."""

    start: int
    head: tuple[str, ...]
    resume: int
    is_delete: bool = False


_VALUE_FILTERS = frozenset(
    {"keep_gt", "keep_lt", "keep_even", "keep_odd", "remove_eq", "keep_multiple"}
)
_MONOTONE_MAPS = frozenset({"add", "sub", "mul", "floordiv", "clamp_max", "clamp_min"})
_IDEMPOTENT = _VALUE_FILTERS | {"sort", "sort_desc", "abs", "clamp_max", "clamp_min", "dedupe"}


def _commute(a: Op, b: Op) -> bool:
    """Whether two adjacent operations commute (their swap is not a behaviour change):
    value filters with each other, with sorting and with reversal; reversal with element-
    wise maps; sorting with non-decreasing maps (all ``int`` parameters are positive)."""
    names = {a.name, b.name}
    if len(names) == 1:
        return True
    if a.name in _VALUE_FILTERS and b.name in _VALUE_FILTERS:
        return True
    for x, y in ((a.name, b.name), (b.name, a.name)):
        if x == "reverse" and (y in _VALUE_FILTERS or y in _ELEMENTWISE):
            return True
        if x in ("sort", "sort_desc") and (y in _VALUE_FILTERS or y in _MONOTONE_MAPS):
            return True
    return False


@functools.lru_cache(maxsize=65536)
def _line_fn(line: str) -> tuple[Callable[[Any], Any], bool] | None:
    """One body line compiled on its own as a function of ``xs`` (``(fn, is_return)``), or
    None if it does not compile. Every pipelines line reads and writes only ``xs``, so a
    program is the composition of its lines. Only our own generated lines (and their
    mutants) come here: trusted code, run in-process."""
    body = line.strip()
    is_return = body.startswith("return")
    src = f"def _line(xs):\n    {body}\n" + ("" if is_return else "    return xs\n")
    try:
        code = compile(src, "<pipelines-line>", "exec")
    except SyntaxError:
        return None
    ns: dict[str, Any] = {}
    exec(code, ns)
    return ns["_line"], is_return


#: Operator and call flips applied to a line's text (first occurrence) to build mutants.
_FLIPS: tuple[tuple[str, str], ...] = (
    (" + ", " - "), (" - ", " + "), (" * ", " + "), (" > ", " < "), (" < ", " > "),
    (" > ", " >= "), (" < ", " <= "), (" == ", " != "), (" != ", " == "), ("sum(", "len("),
    ("len(", "sum("), ("max(", "min("), ("min(", "max("), ("[::-1]", ""),
    (", reverse=True", ""), ("sorted(xs)", "sorted(xs, reverse=True)"), ("xs[", "xs[::-1]["),
)
_NEG_LITERAL = re.compile(r"-(?=\d)")
_POS_LITERAL = re.compile(r"(?<=[ (\[:=])(?=\d)")


def textual_variants(line: str) -> list[str]:
    """Edits of one source line: every other digit at each digit position, a sign flip on
    each number, and operator/call flips (see ``_FLIPS``). The line itself is excluded."""
    out: list[str] = []
    for p, c in enumerate(line):
        if c.isdigit():
            out.extend(line[:p] + d + line[p + 1 :] for d in "0123456789" if d != c)
    for m in _NEG_LITERAL.finditer(line):
        out.append(line[: m.start()] + line[m.end() :])
    for m in _POS_LITERAL.finditer(line):
        out.append(line[: m.start()] + "-" + line[m.start() :])
    for a, b in _FLIPS:
        if a in line:
            out.append(line.replace(a, b, 1))
    return [v for v in dict.fromkeys(out) if v != line]


class PipelinesSuite(TaskSuite):
    """Procedural list-pipeline tasks with a horizon knob and disjoint splits.

    Args:
        seed: Seed of the task stream (the split assignment does not depend on it).
        min_steps: Fewest steps per task (the last step is always a return form), >= 1.
        max_steps: Most steps per task (>= ``min_steps``, <= 40).
        ops: ``"basic"`` (12 operations + 5 return forms, the default), ``"full"`` (29 + 10),
            or a sequence of operation names from :data:`OPS` with at least one return form.
        varied_phrasing: Draw each step's English phrasing from several per operation.
            Default: on for ``ops="full"``, off otherwise.
        min_cases: Fewest test cases per task.
        max_cases: Most test cases per task (a task whose mutants need more is regenerated).
        pool_size: Candidate inputs per task from which test cases are chosen.

    Note: for very short horizons the space of sequences is small (1-step tasks are a bare
    return form), so a split may hold few or none of them; generation then draws another
    length, or raises ``ValueError`` when ``min_steps..max_steps`` allows nothing in a split.
    """

    name = "pipelines"

    def __init__(
        self,
        seed: int = 0,
        min_steps: int = 1,
        max_steps: int = 12,
        ops: str | Sequence[str] = "basic",
        varied_phrasing: bool | None = None,
        min_cases: int = 6,
        max_cases: int = 12,
        pool_size: int = 48,
    ) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        for label, v in (("min_steps", min_steps), ("max_steps", max_steps)):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 40:
                raise ValueError(f"{label} must be an int in [1, 40], got {v!r}")
        if min_steps > max_steps:
            raise ValueError(f"min_steps ({min_steps}) must be <= max_steps ({max_steps})")
        if not 1 <= min_cases <= max_cases:
            raise ValueError(f"need 1 <= min_cases <= max_cases, got {min_cases}, {max_cases}")
        if pool_size < max(16, max_cases):
            raise ValueError(f"pool_size must be >= max(16, max_cases), got {pool_size}")
        if isinstance(ops, str):
            if ops not in OP_SETS:
                raise ValueError(
                    f"unknown ops set {ops!r}: use one of {sorted(OP_SETS)} or a list of names"
                )
            names = OP_SETS[ops]
            varied = (ops == "full") if varied_phrasing is None else bool(varied_phrasing)
        else:
            names = tuple(ops)
            unknown = [n for n in names if n not in OPS]
            if unknown:
                raise ValueError(f"unknown operation(s) {unknown}: choose from {sorted(OPS)}")
            varied = bool(varied_phrasing)
        self.ops_list: tuple[Op, ...] = tuple(OPS[n] for n in dict.fromkeys(names))
        self.transforms: tuple[Op, ...] = tuple(o for o in self.ops_list if not o.is_return)
        self.returns: tuple[Op, ...] = tuple(o for o in self.ops_list if o.is_return)
        if not self.returns:
            raise ValueError("ops must include at least one return form (e.g. 'ret_sum')")
        if max_steps > 1 and not self.transforms:
            raise ValueError("ops must include at least one list operation when max_steps > 1")
        self.seed = seed
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.varied_phrasing = varied
        self.min_cases = min_cases
        self.max_cases = max_cases
        self.pool_size = pool_size
        #: Generation counters (tasks, attempts and why attempts were rejected).
        self.stats: collections.Counter[str] = collections.Counter()
        self._get_cached = functools.lru_cache(maxsize=8192)(self._generate)
        self._init_kwargs: dict[str, Any] = {
            "seed": seed, "min_steps": min_steps, "max_steps": max_steps,
            "ops": ops if isinstance(ops, str) else list(names), "varied_phrasing": varied_phrasing,
            "min_cases": min_cases, "max_cases": max_cases, "pool_size": pool_size,
        }

    def __getstate__(self) -> dict[str, Any]:
        """Pickle by constructor arguments (the cache and operation functions stay behind)."""
        return dict(self._init_kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_kwargs.items())
        return f"PipelinesSuite({args})"

    # -- TaskSuite API -------------------------------------------------------------------

    @property
    def splits(self) -> tuple[str, ...]:
        """``("train", "validation", "test")``."""
        return SPLITS

    def size(self, split: str) -> int | None:
        """``None``: every split is unlimited."""
        self.check_split(split)
        return None

    def get(self, split: str, index: int) -> Task:
        """The ``index``-th task of ``split`` (deterministic, cached)."""
        self.check_split(split)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        return self._get_cached(split, index)

    # -- generation ----------------------------------------------------------------------

    def _rng(self, split: str, index: int, attempt: int) -> random.Random:
        key = f"{self.seed}|{split}|{index}|{attempt}".encode()
        return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))

    def _generate(self, split: str, index: int) -> Task:
        # The horizon is drawn once per task so that rejections do not skew its distribution;
        # only when a length yields nothing in this split (tiny spaces: 1-step tasks) for
        # _ATTEMPTS_PER_LENGTH attempts is another length drawn. The candidate inputs are
        # drawn once per task; the first 16 drive the simulation while drawing steps.
        rng0 = self._rng(split, index, -1)
        one_step = any(split_of([(r, 0)]) == split for r in self.returns)
        if self.max_steps == 1 and not one_step:
            raise ValueError(
                f"pipelines: no 1-step task (a bare return form) falls in split {split!r} "
                f"with ops {[o.name for o in self.ops_list]}; use max_steps >= 2"
            )
        n = rng0.randint(self.min_steps, self.max_steps)
        while n == 1 and not one_step:
            n = rng0.randint(self.min_steps, self.max_steps)
        pool = _make_pool(rng0, self.pool_size, grow=n // 3)
        sim = pool[:16]
        pool.insert(rng0.randint(0, len(pool)), [])  # the empty list is always a candidate
        wide = _make_wide_pool(rng0, self.pool_size, grow=n // 3)
        self.stats["tasks"] += 1
        for attempt in range(_MAX_ATTEMPTS):
            rng = self._rng(split, index, attempt)
            if attempt and attempt % _ATTEMPTS_PER_LENGTH == 0:
                n = rng.randint(self.min_steps, self.max_steps)
                while n == 1 and not one_step:
                    n = rng.randint(self.min_steps, self.max_steps)
            self.stats["attempts"] += 1
            steps = self._draw_steps(rng, n, sim, split)
            if steps is None:
                self.stats["draw_failed"] += 1
                continue
            cases = self._select_cases(rng, steps, pool, wide)
            if cases is None:
                continue
            return self._make_task(rng, split, index, steps, cases)
        raise ValueError(
            f"pipelines: could not generate task {split}/{index} with steps in "
            f"[{self.min_steps}, {self.max_steps}] and ops {[o.name for o in self.ops_list]} "
            f"after {_MAX_ATTEMPTS} attempts; widen the step range or the operation set"
        )

    def _draw_param(self, rng: random.Random, op: Op, states: list[list[int]]) -> int | None:
        if op.param == "none":
            return 0
        if op.param == "int":
            return op.domain[rng.randrange(len(op.domain))]
        s = states[rng.randrange(len(states))]
        if not s:
            s = next((t for t in states if t), s)
            if not s:
                return None
        return s[rng.randrange(len(s))]

    @staticmethod
    def _apply_checked(step: Step, states: list[list[int]]) -> list[list[int]] | None:
        """``states`` after ``step``, or None if the step is (nearly) a no-op on them, empties
        too many lists or lets values grow past the bound."""
        op, k = step
        fn = op.fn
        total = len(states)
        new = [fn(s, k) for s in states]
        changed = list(map(operator.ne, new, states)).count(True)
        if changed * 3 < total:
            return None  # (nearly) a no-op on typical inputs
        if [len(s) >= 2 for s in new].count(True) * 3 < total * 2:
            return None  # empties too many lists or leaves too little to work on
        if op.category == "map":
            hi = max(map(max, filter(None, new)), default=0)
            lo = min(map(min, filter(None, new)), default=0)
            if max(hi, -lo) > _MAX_ABS_VALUE:
                return None  # (inputs hold values up to ~30: room for a few products)
        return new

    def _draw_steps(
        self, rng: random.Random, n: int, states: list[list[int]], split: str
    ) -> list[Step] | None:
        """Draw ``n - 1`` operations and a return form whose sequence lies in ``split``.

        1. The return form is drawn first (uniformly), then the operations *backwards*,
           each one that can matter given what the rest of the program observes of the
           list (no reordering before an order-blind return, no map before ``len``, ...)
           and that does not merge with its successor: every step matters by construction.
        2. Parameters are drawn *forwards*, simulating the pipeline on ``states`` so that
           each step changes typical inputs and the list rarely empties; thresholds are
           values the list holds at that point.
        3. Until the sequence hashes to ``split``, the parameter of one of the last two
           parametrised steps is redrawn (and the steps after it re-simulated).
        """
        if n == 1:
            order = list(self.returns)
            rng.shuffle(order)
            for ret_op in order:
                if split_of([(ret_op, 0)]) == split and _distinct(ret_op, states) >= 3:
                    return [(ret_op, 0)]
            return None
        ret: Step = (self.returns[rng.randrange(len(self.returns))], 0)
        ops: list[Op] = []
        seen = _observed_by_return(ret[0])
        for _ in range(n - 1):
            nxt = _merge_group(ops[-1]) if ops else None
            # the next step that is not an element-wise map: a reordering there overrides
            # (or undoes) one here ("reverse, add 3, reverse" is just "add 3")
            after = next((_merge_group(o) for o in reversed(ops) if o.name not in _ELEMENTWISE), None)
            cands = [
                o for o in self.transforms
                if _is_alive(o, seen) and _merge_group(o) != nxt
                and not (after == "order" and _merge_group(o) == "order")
            ]
            if not cands:
                return None
            ops.append(cands[rng.randrange(len(cands))])
            seen = _observed_before(ops[-1], seen)
        ops.reverse()
        trace = [states]  # trace[i]: states before step i
        steps: list[Step] = []
        for i, planned in enumerate(ops):
            drawn = self._draw_feasible(rng, planned, trace[-1])
            op = planned
            if drawn is None:  # e.g. a filter on lists already short: substitute an operation
                others = [o for o in self.transforms if o is not planned]
                rng.shuffle(others)
                rest = [(o, 0) for o in ops[i + 1 :]]
                for op in others:
                    prev = _merge_group(steps[-1][0]) if steps else None
                    nxt = _merge_group(ops[i + 1]) if i + 1 < len(ops) else None
                    if _merge_group(op) in (prev, nxt):
                        continue
                    if _has_dead_line([*steps, (op, 0), *rest, ret]):
                        continue
                    drawn = self._draw_feasible(rng, op, trace[-1], tries=3)
                    if drawn is not None:
                        break
                if drawn is None:
                    return None
            steps.append((op, drawn[0]))
            trace.append(drawn[1])
        params = [i for i, (op, _) in enumerate(steps) if op.param != "none"]
        for _try in range(48):
            if split_of([*steps, ret]) == split:
                return [*steps, ret] if _distinct(ret[0], trace[-1]) >= 3 else None
            if not params:
                return None
            j = params[-1] if len(params) == 1 or rng.random() < 0.6 else params[-2]
            drawn = self._draw_feasible(rng, steps[j][0], trace[j], tries=1)
            if drawn is None:
                continue
            new_steps = [*steps[:j], (steps[j][0], drawn[0]), *steps[j + 1 :]]
            new_trace = [*trace[: j + 1], drawn[1]]
            for step in new_steps[j + 1 :]:
                nxt_states = self._apply_checked(step, new_trace[-1])
                if nxt_states is None:
                    break
                new_trace.append(nxt_states)
            else:
                steps, trace = new_steps, new_trace
        return None

    def _draw_feasible(
        self, rng: random.Random, op: Op, states: list[list[int]], tries: int = 8
    ) -> tuple[int, list[list[int]]] | None:
        """A parameter for ``op`` under which it passes :meth:`_apply_checked` on ``states``,
        with the resulting states."""
        for _try in range(tries):
            k = self._draw_param(rng, op, states)
            if k is None:
                continue
            new = self._apply_checked((op, k), states)
            if new is not None:
                return k, new
        return None

    def _mutants(self, rng: random.Random, steps: list[Step]) -> list[_Mutant]:
        """Single-line mutants of the reference (see the module docstring): delete,
        duplicate, swap with the next line, replace by another operation or parameter, by an
        edit of the line's text (digits, signs, operators), by a copy of another line, or by
        an early return; plus "skip every step" programs."""
        n = len(steps)
        code = [step_code(s) for s in steps]
        muts: list[_Mutant] = []
        for j in range(n):
            muts.append(_Mutant(j, (), j + 1, is_delete=True))
            if j < n - 1:  # (skipping those equivalent by algebra: idempotent, commuting)
                if steps[j][0].name not in _IDEMPOTENT:
                    muts.append(_Mutant(j + 1, (code[j],), j + 1))  # duplicate
                if not _commute(steps[j][0], steps[j + 1][0]):
                    muts.append(_Mutant(j, (code[j + 1], code[j]), j + 2))  # swap
            alts = [step_code(a) for a in self._replacements(rng, steps, j)]
            alts += textual_variants(code[j])
            alts += code  # a copy of another line
            for alt in dict.fromkeys(alts):
                if alt != code[j]:
                    muts.append(_Mutant(j, (alt,), j + 1))
        for r in self.returns:  # skip every step
            if n > 1 or r is not steps[-1][0]:
                muts.append(_Mutant(0, (step_code((r, 0)),), 1))
        return muts

    def _replacements(self, rng: random.Random, steps: list[Step], j: int) -> list[Step]:
        op, k = steps[j]
        out: list[Step] = []
        if op.is_return:
            return [(r, 0) for r in self.returns if r is not op]
        for alt in self.transforms:
            if alt.param == "none":
                if alt is not op:
                    out.append((alt, 0))
            elif alt is op:
                near = (k - 2, k - 1, k + 1, k + 2)
                if alt.param == "int":
                    near = tuple(v for v in near if v in alt.domain or 1 <= v <= 12)
                out.extend((alt, v) for v in near)
            else:
                cands = [k] if k != 0 else []
                if alt.param == "int":
                    cands = [v for v in cands if v in alt.domain]
                    cands.append(alt.domain[rng.randrange(len(alt.domain))])
                else:
                    cands.append(k + rng.choice((-2, -1, 1, 2)))
                out.extend((alt, v) for v in dict.fromkeys(cands))
        out.append(steps[-1])  # early return
        return out

    def _select_cases(
        self,
        rng: random.Random,
        steps: list[Step],
        pool: list[list[int]],
        wide: Sequence[list[int]] = (),
    ) -> list[IOCase] | None:
        """Greedily choose test inputs from ``pool`` (then ``wide``, for mutants no input of
        ``pool`` kills) until every behaviour-changing mutant fails some case; None if the
        task must be regenerated (see the module docstring)."""
        n = len(steps)
        n_main = len(pool)
        pool = [*pool, *wide]
        # reference states before each line, and outputs (for `wide` inputs: on demand)
        traces: list[list[list[int]]] = [[] for _ in pool]
        outs: list[Any] = [None] * len(pool)

        def trace(i: int) -> None:
            states = [pool[i]]
            cur = pool[i]
            for op, k in steps:
                if op.is_return:
                    outs[i] = op.fn(cur, k)
                    break
                cur = op.fn(cur, k)
                states.append(cur)
            traces[i] = states

        for i in range(n_main):
            trace(i)
        nonempty_inputs = [i for i, xs in enumerate(pool[:n_main]) if xs]
        empties = sum(1 for i in nonempty_inputs if not traces[i][-1])
        if empties * 4 > len(nonempty_inputs):
            self.stats["too_empty"] += 1
            return None  # the pipeline empties the list too often
        keys = [repr(o) for o in outs[:n_main]]
        if len(set(keys)) < 3:
            self.stats["few_outputs"] += 1
            return None

        prog = [(op.fn, k, op.is_return) for op, k in steps]

        memo: dict[tuple[int, int, tuple[Any, ...]], bool] = {}

        def suffix_kills(i: int, r0: int, cur: Any) -> bool:
            """Whether the reference lines from ``r0`` on, run from state ``cur``, end with
            something else than the reference's output on input i."""
            st = traces[i]
            for r in range(r0, n):
                ref = st[r]
                if cur == ref and type(cur) is type(ref):
                    return False  # back on the reference's track: same result
                fn, k, is_ret = prog[r]
                if is_ret:
                    return _differs(fn(cur, k), outs[i])
                cur = fn(cur, k)
            return outs[i] is not None  # no return reached: None

        def kills(m: _Mutant, i: int) -> bool:
            """Whether mutant ``m`` returns something else than the reference on input i
            (or raises, or does not compile)."""
            if not traces[i]:
                trace(i)
            cur: Any = traces[i][m.start]
            try:
                for line in m.head:
                    compiled = _line_fn(line)
                    if compiled is None:
                        return True
                    if compiled[1]:
                        return _differs(compiled[0](cur), outs[i])
                    cur = compiled[0](cur)
                if type(cur) is not list:
                    return suffix_kills(i, m.resume, cur)
                # many mutants of one line reach the same state: evaluate the rest once
                try:
                    key = (i, m.resume, tuple(cur))
                    hash(key)
                except TypeError:
                    return suffix_kills(i, m.resume, cur)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = suffix_kills(i, m.resume, cur)
                return hit
            except Exception:  # noqa: BLE001 - a mutant that raises fails the test
                return True

        order = list(range(n_main))
        rng.shuffle(order)
        order += range(n_main, len(pool))
        chosen: list[int] = []
        seen: set[str] = set()
        for i in order[:n_main]:  # >= 3 distinct expected outputs first, from typical inputs
            if keys[i] not in seen and len(pool[i]) >= 3:
                chosen.append(i)
                seen.add(keys[i])
                if len(seen) == 3:
                    break
        if len(seen) < 3:
            return None
        for m in self._mutants(rng, steps):
            if any(kills(m, i) for i in chosen):
                continue
            killer = next((i for i in order if i not in chosen and kills(m, i)), None)
            if killer is None:
                if m.is_delete:
                    self.stats["dead_line"] += 1
                    return None  # a line that does nothing: regenerate
                continue  # equivalent on every candidate input
            chosen.append(killer)
            if len(chosen) > self.max_cases:
                self.stats["too_many_cases"] += 1
                return None
        main = order[:n_main]
        for i in main:  # pad, preferring new outputs
            if len(chosen) >= self.min_cases:
                break
            if i not in chosen and keys[i] not in seen:
                chosen.append(i)
                seen.add(keys[i])
        for i in main:
            if len(chosen) >= self.min_cases:
                break
            if i not in chosen:
                chosen.append(i)
        return [IOCase(args=(list(pool[i]),), expected=outs[i]) for i in chosen]

    def _make_task(
        self, rng: random.Random, split: str, index: int, steps: list[Step], cases: list[IOCase]
    ) -> Task:
        lines = []
        for num, (op, k) in enumerate(steps, 1):
            phr = op.phrasings[rng.randrange(len(op.phrasings))] if self.varied_phrasing else op.phrasings[0]
            lines.append(f"    {num}. {phr.format(k=k)}")
        prefix = (
            "def solve(xs):\n"
            '    """Apply these steps, in order, to the list of integers xs.\n'
            "\n" + "\n".join(lines) + '\n    """\n'
        )
        solution = "\n".join(step_code(s) for s in steps)
        return Task(
            task_id=f"pipelines/{split}/{index}",
            prompt=prefix,
            code_prefix=prefix,
            entry_point="solve",
            tests=TestSuite(kind="io", entry_point="solve", cases=tuple(cases)),
            solution=solution,
            metadata={
                "suite": "pipelines",
                "split": split,
                "index": index,
                "steps": len(steps),
                "ops": [step_key(s) for s in steps],
                "seed": self.seed,
            },
        )
