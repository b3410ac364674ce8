"""What pipeline operations do to what a program observes of its list.

Static reasoning over :class:`~codegym.tasks.pipelines.ops.Op` sequences, used to draw
sequences where every step matters and to skip mutants that are equivalent by algebra:
which operations merge when adjacent, what a return form observes of the list (its values
as a multiset, their order, its length), whether a step can matter given what follows it,
which adjacent operations commute and which are idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

from codegym.tasks.pipelines.ops import Op, Step


def merge_group(op: Op) -> str:
    """Operations of one group merge or override each other when adjacent."""
    if op.name in ("add", "sub"):
        return "shift"
    if op.category == "order" and op.name != "rotate":
        return "order"
    return op.name


ORDER_FREE_RETURNS = frozenset(
    {"ret_sum", "ret_len", "ret_max", "ret_min", "ret_count_even", "ret_distinct", "ret_range"}
)
ELEMENTWISE = frozenset(
    {"add", "sub", "mul", "negate", "abs", "square", "mod", "floordiv", "clamp_max", "clamp_min"}
)


def observed_by_return(ret: Op) -> frozenset[str]:
    """What a return form observes of the list: ``vals`` (the multiset of values),
    ``order``, ``len``."""
    if ret.name == "ret_len":
        return frozenset({"len"})
    if ret.name in ORDER_FREE_RETURNS:
        return frozenset({"vals"})
    return frozenset({"vals", "order"})


def is_alive(op: Op, seen: frozenset[str]) -> bool:
    """Whether ``op`` can matter when the rest of the program observes ``seen``."""
    if op.name in ELEMENTWISE or op.name == "cumsum":
        return seen != {"len"}  # maps keep the length
    if op.category == "order":
        return "order" in seen
    return True


def observed_before(op: Op, seen: frozenset[str]) -> frozenset[str]:
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


def has_dead_line(steps: Sequence[Step]) -> bool:
    """A cheap structural test for a line whose deletion cannot change the result.

    Walks backwards tracking what the rest of the program observes of the list: its
    values (as a multiset), their order, its length. A reordering is dead when order is
    not observed; a map that keeps the length is dead when only the length is. This only
    pre-filters candidates; the mutant check on real inputs is the authority.
    """
    seen = observed_by_return(steps[-1][0])
    for op, _k in reversed(steps[:-1]):
        if not is_alive(op, seen):
            return True
        seen = observed_before(op, seen)
    return False



VALUE_FILTERS = frozenset(
    {"keep_gt", "keep_lt", "keep_even", "keep_odd", "remove_eq", "keep_multiple"}
)
MONOTONE_MAPS = frozenset({"add", "sub", "mul", "floordiv", "clamp_max", "clamp_min"})
IDEMPOTENT = VALUE_FILTERS | {"sort", "sort_desc", "abs", "clamp_max", "clamp_min", "dedupe"}


def commute(a: Op, b: Op) -> bool:
    """Whether two adjacent operations commute (their swap is not a behaviour change):
    value filters with each other, with sorting and with reversal; reversal with element-
    wise maps; sorting with non-decreasing maps (all ``int`` parameters are positive)."""
    names = {a.name, b.name}
    if len(names) == 1:
        return True
    if a.name in VALUE_FILTERS and b.name in VALUE_FILTERS:
        return True
    for x, y in ((a.name, b.name), (b.name, a.name)):
        if x == "reverse" and (y in VALUE_FILTERS or y in ELEMENTWISE):
            return True
        if x in ("sort", "sort_desc") and (y in VALUE_FILTERS or y in MONOTONE_MAPS):
            return True
    return False
